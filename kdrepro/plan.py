"""The experiment plan of section 3: every run folder and its run spec, from a config.

The Snakefile asks this module what to train (its rules only wire), and the tests
ask it what a workflow run must have produced, so the plan exists once. Run names
are relative to the results folder (``teacher/seed1``, ``distilled/h30/T2.5/seed3``);
where that folder lives is the workflow's business, not the config's.
"""

from __future__ import annotations

import copy
import json

TRANSFER_KINDS = ("omit", "keep")


def temp_tag(temperature: float) -> str:
    """A temperature as written in run names: 20 -> '20', 2.5 -> '2.5'."""
    return f"{float(temperature):g}"


def class_tag(classes) -> str:
    """Digits as written in run names: [8, 7] -> '78'."""
    return "".join(str(c) for c in sorted(classes))


def merge_config(base: dict, overlay: dict) -> dict:
    """`base` updated by `overlay` recursively, as Snakemake applies a --configfile overlay."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _spec_json(config: dict, **spec) -> str:
    return json.dumps({**spec, "device": config["device"],
                       "precision": config.get("precision", "fp32")}, sort_keys=True)


def teacher_spec(config: dict, seed: int) -> str:
    """Run spec (JSON) of the 1200-1200 teacher: dropout, max-norm, jitter (section 3)."""
    t = config["teacher"]
    return _spec_json(config, role="teacher", hidden=t["hidden"],
                      input_dropout=t["input_dropout"], hidden_dropout=t["hidden_dropout"],
                      max_norm=t["max_norm"], jitter=t["jitter"], seed=int(seed),
                      **t["optimizer"])


def transfer_spec(config: dict, kind: str, classes) -> dict:
    """The omit/keep students' transfer set, with the validation split held out."""
    return {kind: [int(c) for c in classes],
            "validation_fraction": config["validation"]["fraction"],
            "validation_seed": config["validation"]["seed"]}


def student_spec(config: dict, role: str, width: int, seed: int,
                 temperature: float | None = None, **transfer) -> str:
    """Run spec (JSON) of a width-W student: hard labels, or soft targets at `temperature`."""
    hard = config["distill"]["hard_weight"] if temperature is not None else None
    return _spec_json(config, role=role, hidden=[int(width)] * 2, seed=int(seed),
                      temperature=temperature, hard_weight=hard, **transfer,
                      **config["student"]["optimizer"])


def grid_cells(config: dict, width: int) -> list[tuple[float, int]]:
    """(temperature, seed) pairs of one grid width: its `per_width` entry, else the grid's lists."""
    grid = config["temperature_grid"]
    entry = next((e for e in grid["per_width"] if e["width"] == width), {})
    temps = entry.get("temperatures", grid["temperatures"])
    seeds = entry.get("seeds", grid["seeds"])
    return [(t, s) for t in temps for s in seeds]


def grid_blocks(config: dict) -> list[dict]:
    """The temperature grid as student blocks: one per (width, seed), every T of that width.

    A block is trained by one `kdrepro train-block` job (kdrepro.training.blocks):
    its students share initialisation and batch order, a paired design across T.
    Each entry: name (a rule-name suffix), width, seed, temperatures, runs.
    """
    blocks = []
    for width in dict.fromkeys(config["temperature_grid"]["widths"]):
        cells = grid_cells(config, width)
        for seed in dict.fromkeys(s for _, s in cells):
            temps = list(dict.fromkeys(float(t) for t, s in cells if s == seed))
            blocks.append({"name": f"h{width}_seed{seed}", "width": width, "seed": seed,
                           "temperatures": temps,
                           "runs": [f"distilled/h{width}/T{temp_tag(t)}/seed{seed}"
                                    for t in temps]})
    return blocks


def transfer_runs(config: dict) -> list[str]:
    """Run names of the omit/keep students (section 3's transfer-set ablations)."""
    return [f"{kind}/c{class_tag(config[kind]['classes'])}/seed{s}"
            for kind in TRANSFER_KINDS for s in config["seeds"]]


def experiment_runs(config: dict) -> list[str]:
    """Every run name of section 3 under this config, each once."""
    seeds, grid = config["seeds"], config["temperature_grid"]
    width, temp = config["student"]["width"], temp_tag(config["distill"]["temperature"])
    runs = [f"teacher/seed{s}" for s in config["teacher"]["seeds"]]
    runs += [f"baseline/h{width}/seed{s}" for s in seeds]
    runs += [f"distilled/h{width}/T{temp}/seed{s}" for s in seeds]
    runs += [f"distilled/h{w}/T{temp_tag(t)}/seed{s}"
             for w in grid["widths"] for t, s in grid_cells(config, w)]
    runs += transfer_runs(config)
    return list(dict.fromkeys(runs))  # the distilled run is also a grid cell: train it once


def experiment_targets(config: dict, results: str = "results") -> list[str]:
    """metrics.json of every run, and bias.json of the omit/keep runs."""
    transfer = set(transfer_runs(config))
    targets = []
    for run in experiment_runs(config):
        targets.append(f"{results}/{run}/metrics.json")
        if run in transfer:
            targets.append(f"{results}/{run}/bias.json")
    return targets
