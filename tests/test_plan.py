"""Tests of kdrepro.plan: the run folders and run specs the workflow trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kdrepro import plan
from kdrepro.config import validate_config
from kdrepro.training.spec import spec_from_dict

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def _config(overlay: dict | None = None) -> dict:
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return validate_config(plan.merge_config(base, overlay or {}), SCHEMA)


def test_merge_config_is_recursive_and_leaves_the_base_alone():
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    merged = plan.merge_config(base, {"a": {"b": 5}, "d": [2, 3]})
    assert merged == {"a": {"b": 5, "c": 2}, "d": [2, 3]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1]}


def test_default_plan_trains_the_shared_cell_once():
    config = _config()
    runs = plan.experiment_runs(config)
    assert len(runs) == len(set(runs))
    temp = plan.temp_tag(config["distill"]["temperature"])
    shared = f"distilled/h{config['student']['width']}/T{temp}/seed1"
    assert runs.count(shared) == 1
    assert runs[0] == "teacher/seed1"
    assert "omit/c3/seed2" in runs and "keep/c78/seed2" in runs


def test_per_width_entries_override_the_grid_lists():
    config = _config({"temperature_grid": {"widths": [30, 300], "temperatures": [1, 2],
                                           "seeds": [1],
                                           "per_width": [{"width": 30, "seeds": [4, 5]}]}})
    assert plan.grid_cells(config, 30) == [(1, 4), (1, 5), (2, 4), (2, 5)]
    assert plan.grid_cells(config, 300) == [(1, 1), (2, 1)]
    runs = plan.experiment_runs(config)
    assert "distilled/h30/T2/seed5" in runs and "distilled/h300/T2/seed1" in runs
    assert "distilled/h30/T2/seed1" not in runs


def test_targets_add_bias_sweeps_for_transfer_runs_only():
    config = _config({"omit": {"classes": [2, 5]}})
    targets = plan.experiment_targets(config, results="out")
    assert "out/omit/c25/seed1/bias.json" in targets
    assert "out/teacher/seed1/metrics.json" in targets
    assert not any(t.startswith("out/teacher") and t.endswith("bias.json") for t in targets)
    assert sum(t.endswith("metrics.json") for t in targets) == len(plan.experiment_runs(config))


@pytest.mark.parametrize("make", [
    lambda c: plan.teacher_spec(c, 3),
    lambda c: plan.student_spec(c, "baseline", 800, 2),
    lambda c: plan.student_spec(c, "distilled", 30, 1, 2.5),
    lambda c: plan.student_spec(c, "omit", 800, 1, 20.0, **plan.transfer_spec(c, "omit", [3])),
])
def test_every_spec_is_a_valid_run_spec(make):
    spec = spec_from_dict(json.loads(make(_config())))
    assert spec.seed in (1, 2, 3)


def test_teacher_spec_carries_the_papers_regularisers():
    spec = spec_from_dict(json.loads(plan.teacher_spec(_config(), 1)))
    assert spec.hidden == (1200, 1200) and spec.jitter == 2
    assert spec.input_dropout > 0 and spec.hidden_dropout > 0 and spec.max_norm is not None


def test_grid_blocks_cover_the_grid_once_by_width_and_seed():
    config = _config()
    blocks = plan.grid_blocks(config)
    grid_runs = [f"distilled/h{w}/T{plan.temp_tag(t)}/seed{s}"
                 for w in config["temperature_grid"]["widths"]
                 for t, s in plan.grid_cells(config, w)]
    block_runs = [run for block in blocks for run in block["runs"]]
    assert sorted(block_runs) == sorted(grid_runs) and len(set(block_runs)) == len(block_runs)
    assert set(block_runs) <= set(plan.experiment_runs(config))
    keys = [(b["width"], b["seed"]) for b in blocks]
    assert len(set(keys)) == len(keys) == len({b["name"] for b in blocks})
    for block in blocks:
        assert all(f"/h{block['width']}/" in r and r.endswith(f"/seed{block['seed']}")
                   for r in block["runs"])
        assert len(block["runs"]) == len(block["temperatures"])


def test_grid_blocks_group_temperatures_per_width_and_seed():
    config = _config({"temperature_grid": {"widths": [30, 300, 30], "temperatures": [1, 2.5],
                                           "seeds": [1],
                                           "per_width": [{"width": 30, "seeds": [4, 5]}]}})
    blocks = {b["name"]: b for b in plan.grid_blocks(config)}
    assert sorted(blocks) == ["h300_seed1", "h30_seed4", "h30_seed5"]
    assert blocks["h30_seed5"]["temperatures"] == [1.0, 2.5]
    assert blocks["h30_seed5"]["runs"] == ["distilled/h30/T1/seed5", "distilled/h30/T2.5/seed5"]


def test_grid_trains_as_blocks_only_when_its_students_are_block_compatible():
    assert plan.grid_blocks(_config())
    blog = yaml.safe_load((ROOT / "config" / "blog2020.yaml").read_text())
    config = _config(blog)
    assert not plan.blockable(config) and plan.grid_blocks(config) == []
    runs = plan.experiment_runs(config)
    assert any(r.startswith("distilled/h30/") for r in runs)  # trained one by one instead
