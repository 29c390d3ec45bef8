"""The committed tuning runs (tuning/results) were scored on validation and back docs/tuning.md."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from kdrepro.training.spec import spec_from_dict

ROOT = Path(__file__).resolve().parents[1]


def _table_module():
    spec = importlib.util.spec_from_file_location("tuning_table", ROOT / "tuning" / "table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_tuning_run_scored_the_validation_split_only():
    results = sorted((ROOT / "tuning" / "results").glob("*.json"))
    assert len(results) >= 14
    for path in results:
        run = json.loads(path.read_text())
        spec = spec_from_dict(run["spec"])
        assert spec.scored_on == "validation" and spec.validation_fraction > 0, path.name
        assert all("test_errors" not in r for r in run["history"]), path.name
        assert run["history"][-1]["val_errors"] == run["val_errors"], path.name


def test_docs_tables_are_the_committed_runs():
    table = _table_module()
    docs = (ROOT / "docs" / "tuning.md").read_text()
    for stage in ("teacher", "student"):
        for line in table.table(stage).splitlines():
            if line.startswith("| ") and "---" not in line:
                assert line in docs, line
