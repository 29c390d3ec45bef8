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


# Run settings added after the committed reference run (the 2020 blog's knobs, issue 16;
# input dropout space, issue 15) and their RunSpec defaults: a spec carries one only when
# it differs, so a profile that leaves them alone plans byte-identical specs (Snakemake
# re-runs a job whose params change).
LATER_DEFAULTS = {"input_scaling": "standardize", "input_dropout_space": "normalized",
                  "jitter_axes": "both", "lr_step_size": 30, "lr_gamma": 0.1,
                  "soft_weight": 1.0, "teacher_inputs": "cached", "student_jitter": 0}
# The teacher ablation (issue 16): the paper's teacher with exactly one ingredient removed.
ABLATIONS = {"no_jitter": {"jitter": 0},
             "no_dropout": {"input_dropout": 0.0, "hidden_dropout": 0.0},
             "no_max_norm": {"max_norm": None}}


def _spec_json(config: dict, **spec) -> str:
    shown = {"lr_step_size", "lr_gamma"} if spec.get("lr_schedule") == "step" else set()
    spec = {k: v for k, v in spec.items()
            if k not in LATER_DEFAULTS or k in shown or v != LATER_DEFAULTS[k]}
    return json.dumps({**spec, "device": config["device"],
                       "precision": config.get("precision", "fp32")}, sort_keys=True)


def teacher_spec(config: dict, seed: int, **overrides) -> str:
    """Run spec (JSON) of the 1200-1200 teacher: dropout, max-norm, jitter (section 3);
    `overrides` replace settings (the teacher ablation)."""
    t = config["teacher"]
    settings = dict(input_dropout=t["input_dropout"], hidden_dropout=t["hidden_dropout"],
                    max_norm=t["max_norm"], jitter=t["jitter"], jitter_axes=t["jitter_axes"],
                    input_dropout_space=t["input_dropout_space"],
                    input_scaling=config["input_scaling"])
    return _spec_json(config, role="teacher", hidden=t["hidden"], seed=int(seed),
                      **{**settings, **overrides}, **t["optimizer"])


def transfer_spec(config: dict, kind: str, classes) -> dict:
    """The omit/keep students' transfer set, with the validation split held out."""
    return {kind: [int(c) for c in classes],
            "validation_fraction": config["validation"]["fraction"],
            "validation_seed": config["validation"]["seed"]}


def student_spec(config: dict, role: str, width: int, seed: int,
                 temperature: float | None = None, **transfer) -> str:
    """Run spec (JSON) of a width-W student: hard labels, or soft targets at `temperature`."""
    d, st = config["distill"], config["student"]
    distilled = temperature is not None
    extra = {"soft_weight": d["soft_weight"], "teacher_inputs": d["teacher_inputs"]} if distilled else {}
    if st["jitter"] != LATER_DEFAULTS["student_jitter"]:  # students of section 3 see no jitter
        extra.update(jitter=st["jitter"], jitter_axes=st["jitter_axes"])
    return _spec_json(config, role=role, hidden=[int(width)] * 2, seed=int(seed),
                      temperature=temperature, hard_weight=d["hard_weight"] if distilled else None,
                      input_scaling=config["input_scaling"], **extra, **transfer, **st["optimizer"])


def grid_cells(config: dict, width: int) -> list[tuple[float, int]]:
    """(temperature, seed) pairs of one grid width: its `per_width` entry, else the grid's lists."""
    grid = config["temperature_grid"]
    entry = next((e for e in grid["per_width"] if e["width"] == width), {})
    temps = entry.get("temperatures", grid["temperatures"])
    seeds = entry.get("seeds", grid["seeds"])
    return [(t, s) for t in temps for s in seeds]


def blockable(config: dict) -> bool:
    """Whether the grid's students can train as blocks: a block batches students that see
    the same standardised, unjittered inputs and cached soft targets under today's loss
    (kdrepro.training.blocks); the blog's knobs (issue 16) need single runs."""
    d = config["distill"]
    return (config["student"]["jitter"] == 0 and config["input_scaling"] == "standardize"
            and d["teacher_inputs"] == "cached" and d["soft_weight"] == 1.0)


def grid_blocks(config: dict) -> list[dict]:
    """The temperature grid as student blocks: one per (width, seed), every T of that width.

    A block is trained by one `kdrepro train-block` job (kdrepro.training.blocks):
    its students share initialisation and batch order, a paired design across T.
    Each entry: name (a rule-name suffix), width, seed, temperatures, runs.
    """
    if not blockable(config):
        return []  # every grid cell is then a single `train_distilled` job
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


def ablation_variants(config: dict) -> list[str]:
    """The teacher-ablation variants this config asks for (issue 16)."""
    return list(config["ablation"]["variants"])


def ablation_teacher_spec(config: dict, variant: str) -> str:
    """Run spec of the paper's teacher without one ingredient (its first seed)."""
    if variant not in ABLATIONS:
        raise ValueError(f"ablation variant {variant!r}: expected one of {', '.join(ABLATIONS)}")
    return teacher_spec(config, config["teacher"]["seeds"][0], **ABLATIONS[variant])


def ablation_student_spec(config: dict) -> str:
    """Run spec of the distilled student each ablated teacher yields (width, T of `distill`)."""
    return student_spec(config, "distilled", config["student"]["width"], config["seeds"][0],
                        float(config["distill"]["temperature"]))


def ablation_targets(config: dict, results: str = "results") -> list[str]:
    """metrics.json of every ablated teacher and of its distilled student."""
    return [f"{results}/ablation/{v}/{net}/metrics.json"
            for v in ablation_variants(config) for net in ("teacher", "distilled")]
