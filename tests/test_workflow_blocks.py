"""The workflow's dry run groups the temperature grid into student blocks (plan.grid_blocks)."""

from __future__ import annotations

import re

import yaml
from test_workflow import ROOT, _project_copy, _snakemake

from kdrepro import plan
from kdrepro.config import validate_config

JOB = re.compile(r"^rule (\S+):\n(?:    input: .*\n)?    output: (.*)$", re.MULTILINE)


def _planned_outputs(tmp_path) -> dict[str, str]:
    """Every output file of a dry run of the default profile -> the rule that makes it."""
    workdir = _project_copy(tmp_path)
    result = _snakemake(workdir, "reports/report.html", "-n", "--forcerun", "report")
    assert result.returncode == 0, result.stderr[-2000:]
    return {path: rule for rule, outputs in JOB.findall(result.stdout + result.stderr)
            for path in outputs.split(", ")}


def test_dry_run_trains_the_grid_in_blocks_and_every_run_once(tmp_path):
    config = validate_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()),
                             ROOT / "workflow" / "schemas" / "config.schema.yaml")
    made_by = _planned_outputs(tmp_path)
    runs = plan.experiment_runs(config)
    for run in runs:
        assert f"results/{run}/metrics.json" in made_by, run
    training = {rule for path, rule in made_by.items() if path.endswith("/metrics.json")}
    jobs = {rule if rule.startswith("train_block_") else path  # one job per block, else per run
            for path, rule in made_by.items() if path.endswith("/metrics.json")}
    assert len(jobs) < len(runs), "blocks must plan fewer training jobs than run folders"
    for block in plan.grid_blocks(config):
        for run in block["runs"]:
            assert made_by[f"results/{run}/metrics.json"] == f"train_block_{block['name']}"
    # the paper profile's grid is decided at 300 and 30 units: the 800-unit T = 20 students
    # are the distilled runs, one job each
    shared = f"distilled/h{config['student']['width']}/T20"
    assert 800 not in {block["width"] for block in plan.grid_blocks(config)}
    for seed in config["seeds"]:
        assert made_by[f"results/{shared}/seed{seed}/metrics.json"] == "train_distilled"
    assert "train_teacher" in training
