"""Shared fixtures: synthetic IDX files written by the tests, and the real MNIST if present."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path

import pytest
import torch

from kdrepro.data.fetch import fetch_mnist
from kdrepro.data.mnist import MNIST, MNIST_FILES

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO_ROOT.parent / "shared" / "datasets" / "mnist"
SYNTHETIC_TRAIN, SYNTHETIC_TEST = 200, 50


def idx_bytes(array) -> bytes:
    """The IDX encoding (unsigned bytes) of a uint8 tensor or array-like."""
    tensor = torch.as_tensor(array).to(torch.uint8).contiguous()
    header = struct.pack(f">BBBB{tensor.dim()}I", 0, 0, 0x08, tensor.dim(), *tensor.shape)
    return header + tensor.numpy().tobytes()


def write_idx(path: Path, array, gz: bool = False) -> str:
    """Write ``array`` as an IDX file (gzip-compressed if ``gz``); return the raw SHA-256."""
    raw = idx_bytes(array)
    Path(path).write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return hashlib.sha256(raw).hexdigest()


def synthetic_arrays(seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic small MNIST-shaped arrays; labels cover all 10 classes in each split."""
    gen = torch.Generator().manual_seed(seed)
    arrays = {}
    for split, n in (("train", SYNTHETIC_TRAIN), ("test", SYNTHETIC_TEST)):
        labels = (torch.arange(n) % 10)[torch.randperm(n, generator=gen)]
        arrays[f"{split}_images"] = torch.randint(0, 256, (n, 28, 28), generator=gen,
                                                  dtype=torch.uint8)
        arrays[f"{split}_labels"] = labels.to(torch.uint8)
    return arrays


def write_synthetic_dir(directory: Path, seed: int = 0) -> dict[str, str]:
    """Write the four synthetic files (train images gzipped, the rest raw); return hashes."""
    directory.mkdir(parents=True, exist_ok=True)
    expected = {}
    for key, array in synthetic_arrays(seed).items():
        name = MNIST_FILES[key]
        gz = key == "train_images"
        expected[name] = write_idx(directory / (name + (".gz" if gz else "")), array, gz=gz)
    return expected


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny test networks run far faster on one thread than on a busy pair of cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """CLI commands set the thread count (--threads); put it back after each test."""
    yield
    torch.set_num_threads(1)


@pytest.fixture
def idx_writer():
    """The :func:`write_idx` helper, for tests that prefer a fixture to an import."""
    return write_idx


@pytest.fixture
def synthetic_mnist_dir(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """(directory with four small synthetic IDX files, their raw SHA-256 by file name)."""
    directory = tmp_path / "synthetic-mnist"
    return directory, write_synthetic_dir(directory)


@pytest.fixture
def synthetic_mnist(tmp_path: Path, synthetic_mnist_dir) -> tuple[Path, MNIST]:
    """(cache path, MNIST) built from the synthetic directory by fetch_mnist."""
    directory, expected = synthetic_mnist_dir
    cache = tmp_path / "cache" / "mnist.pt"
    return cache, fetch_mnist(cache, directory, expected=expected, sources=("dir",))


@pytest.fixture(scope="session")
def real_mnist_dir() -> Path:
    """The real MNIST IDX files: $KDREPRO_MNIST_DIR, else ../shared/datasets/mnist."""
    env = os.environ.get("KDREPRO_MNIST_DIR")
    if env:
        return Path(env)
    if SHARED_MNIST.is_dir():
        return SHARED_MNIST
    pytest.skip(f"real MNIST not found: set KDREPRO_MNIST_DIR or provide {SHARED_MNIST}")


@pytest.fixture(scope="session")
def real_mnist(tmp_path_factory, real_mnist_dir: Path) -> MNIST:
    """The real MNIST, decoded once per session into a session-temporary cache."""
    cache = tmp_path_factory.mktemp("real-mnist") / "mnist.pt"
    return fetch_mnist(cache, real_mnist_dir, sources=("dir",))
