"""Output guards: an output path never aliases an input, a file of another kind, or a
file of another run, so a command never destroys a file the user did not ask to replace.

Kinds are told apart by content, cheaply: a kdrepro torch file is a zip archive whose
small ``data.pkl`` names its keys (the tensors live in other members and are not read);
JSON files are told apart by their keys.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from kdrepro.io import OutputError

RUN_FILES = ("model.pt", "metrics.json", "manifest.json")
# (marker in a torch file's data.pkl, kind), first match wins
_TORCH_MARKERS = ((b"kdrepro-mnist-v1", "MNIST cache"), (b"fingerprint", "checkpoint"),
                  (b"teacher_sha256", "soft-target file"), (b"architecture", "model file"))
_JSON_MARKERS = (({"history", "run"}, "run's metrics.json"), ({"spec", "outputs"}, "manifest"),
                 ({"protocols", "paper_shift"}, "bias.json"),
                 ({"model", "bias_shift"}, "evaluation JSON"))
_JSON_SNIFF_BYTES = 64 << 20  # metrics files are a few MB; never parse a huge file
# Files kdrepro writes; an output replaces only its own kind of them. Anything else
# (an empty file, foreign JSON, other bytes) is the user's to overwrite by naming it.
KDREPRO_KINDS = tuple(k for _, k in _TORCH_MARKERS) + tuple(k for _, k in _JSON_MARKERS)


def _torch_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            pickled = next((n for n in archive.namelist() if n.endswith("/data.pkl")), None)
            head = archive.read(pickled) if pickled else b""
    except (zipfile.BadZipFile, OSError, KeyError, EOFError):
        return "unreadable zip file"
    return next((kind for marker, kind in _TORCH_MARKERS if marker in head), "torch file")


def _json_kind(path: Path) -> str:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return "file"
    if isinstance(data, dict):
        return next((kind for keys, kind in _JSON_MARKERS if keys <= data.keys()), "JSON file")
    return "JSON file"


def file_kind(path: Path) -> str:
    """'missing', 'folder', 'empty file', 'MNIST cache', 'checkpoint', 'soft-target file',
    'model file', "run's metrics.json", 'manifest', 'bias.json', 'evaluation JSON',
    'torch file', 'JSON file' or 'file' (anything else)."""
    path = Path(path)
    if not path.exists():
        return "missing"
    if path.is_dir():
        return "folder"
    size = path.stat().st_size
    if size == 0:
        return "empty file"
    with open(path, "rb") as handle:
        head = handle.read(64).lstrip()
    if head.startswith(b"PK"):
        return _torch_kind(path)
    if head[:1] in (b"{", b"[") and size <= _JSON_SNIFF_BYTES:
        return _json_kind(path)
    return "file"


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def is_run_folder(folder: Path) -> bool:
    """A folder holding a manifest.json written by `kdrepro train` (spec and outputs)."""
    return file_kind(Path(folder) / "manifest.json") == "manifest"


def run_folder_of(path: Path) -> Path | None:
    """The nearest run folder above ``path``, or None."""
    for folder in Path(path).resolve().parents:
        if (folder / "manifest.json").is_file() and is_run_folder(folder):
            return folder
    return None


def check_not_input(path: Path, option: str, inputs: Mapping[str, Path | None]) -> None:
    """Refuse an output that is also one of the command's inputs."""
    for name, source in inputs.items():
        if source is not None and _same(Path(path), Path(source)):
            raise OutputError(f"{option} {path} is also the {name} input of this command; "
                              "choose another path")


def check_output_file(path: Path, option: str, *, inputs: Mapping[str, Path | None],
                      replaceable: Iterable[str], own_folders: Iterable[Path | None] = ()) -> None:
    """Refuse writing ``path`` when it is an input, a kdrepro file of a kind this output
    does not write (see KDREPRO_KINDS; ``replaceable`` names the ones it does), a file
    of a run, or inside the folder of a run that is not one of ``own_folders``."""
    path = Path(path)
    check_not_input(path, option, inputs)
    kind = file_kind(path)
    if kind == "folder":
        raise OutputError(f"{option} {path} is a folder; expected a file path")
    if kind in KDREPRO_KINDS and kind not in replaceable:
        raise OutputError(f"{option} {path} is a {kind}, which this command does not write; "
                          "choose another path")
    folder = run_folder_of(path)
    if folder is None:
        return
    if path.name in RUN_FILES and path.resolve().parent == folder:
        raise OutputError(f"{option} {path} is a file of the run in {folder}; choose another path")
    own = {Path(f).resolve() for f in own_folders if f is not None}
    if folder not in own:
        raise OutputError(f"{option} {path} is inside the folder of another run ({folder}); "
                          "choose a path outside it")


def check_run_folder(out_dir: Path, option: str, inputs: Mapping[str, Path | None]) -> None:
    """Refuse a run folder that would replace an input, is a file, or lies in another run."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{option} {out_dir} is a {file_kind(out_dir)}, not a folder; "
                          "choose another output folder")
    for name in RUN_FILES:
        check_not_input(out_dir / name, option, inputs)
    for source in inputs.values():
        if source is not None and _same(out_dir, Path(source)):
            raise OutputError(f"{option} {out_dir} is an input of this command")
    outer = run_folder_of(out_dir)
    if outer is not None:
        raise OutputError(f"{option} {out_dir} is inside the folder of another run ({outer}); "
                          "choose a folder outside it")
