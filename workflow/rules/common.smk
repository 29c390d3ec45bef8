# Configuration check, run specs and target lists. Pure wiring: every
# computation happens in the `kdrepro` CLI that the rules call.
import json
from pathlib import Path

from kdrepro.config import ConfigError, validate_config

try:
    validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))
except ConfigError as error:
    raise WorkflowError(f"bad configuration: {error}") from None

DATA = "results/data/mnist.pt"

if Path("reports/report.html").exists() and not Path("results/metrics.csv").exists():
    # a fresh clone: reports/ holds the committed reference report, which Snakemake takes
    # as up to date, so `snakemake reports/report.html` alone would run nothing
    logger.info("note: reports/report.html is the committed reference report and results/ is "
                "empty; add --forcerun report to run the workflow and replace it")
# SLURM: training jobs ask for one GPU (sbatch --gpus=1) when device is cuda; 0 asks for none.
GPUS = 1 if config["device"] == "cuda" else 0
RUN_FILES = ("model.pt", "metrics.json", "manifest.json")


wildcard_constraints:
    seed=r"\d+",
    width=r"\d+",
    temp=r"\d+(\.\d+)?",
    classes=r"\d+",
    kind=r"omit|keep",


def temp_tag(t):
    """Temperature as written in paths: 20 -> '20', 2.5 -> '2.5'."""
    return f"{float(t):g}"


def class_tag(classes):
    return "".join(str(c) for c in sorted(classes))


def run_files(prefix):
    return [f"{prefix}/{name}" for name in RUN_FILES]


def optimizer(section):
    return dict(config[section]["optimizer"])


def spec_json(**spec):
    return json.dumps({**spec, "device": config["device"]}, sort_keys=True)


def teacher_spec(wc):
    t = config["teacher"]
    return spec_json(role="teacher", hidden=t["hidden"], input_dropout=t["input_dropout"],
                     hidden_dropout=t["hidden_dropout"], max_norm=t["max_norm"],
                     jitter=t["jitter"], seed=int(wc.seed), **optimizer("teacher"))


def student_spec(role, width, seed, temperature=None, **transfer):
    hard = config["distill"]["hard_weight"] if temperature is not None else None
    return spec_json(role=role, hidden=[int(width)] * 2, seed=int(seed), temperature=temperature,
                     hard_weight=hard, **transfer, **optimizer("student"))


def transfer_spec(kind, classes):
    """The omit/keep students: distilled at the paper's T, validation split held out."""
    return {kind: [int(c) for c in classes], "validation_fraction": config["validation"]["fraction"],
            "validation_seed": config["validation"]["seed"]}


# One command line for every training rule; distilled rules add the soft targets.
TRAIN = (
    "kdrepro train --spec {params.spec:q} --data {input.data} --out-dir results/{params.run}"
    " --checkpoint results/checkpoints/{params.run}.pt --label {params.run}"
    " --threads {threads}"
)
DISTIL = " --soft-targets {input.soft_targets} --teacher {input.teacher}"
LOG = " > {log} 2>&1"


def by_width(wc):
    """Scheduling priority: wider (slower) students first, so the last job to
    finish under --cores 2 is a short one and no core idles at the end."""
    return 2 if int(wc.width) >= 800 else 1 if int(wc.width) >= 300 else 0


TEACHER_SEED = config["teacher"]["seeds"][0]
TEACHER = f"results/teacher/seed{TEACHER_SEED}"
SOFT_TARGETS = f"{TEACHER}/soft_targets.pt"


def grid_cells(width):
    """(temperature, seed) pairs of one grid width: its `per_width` entry, else the grid's lists."""
    grid = config["temperature_grid"]
    entry = next((e for e in grid["per_width"] if e["width"] == width), {})
    temps, seeds = entry.get("temperatures", grid["temperatures"]), entry.get("seeds", grid["seeds"])
    return [(t, s) for t in temps for s in seeds]


def experiment_dirs():
    """Every run folder of the paper's section 3 under this config."""
    seeds, grid = config["seeds"], config["temperature_grid"]
    width, temp = config["student"]["width"], temp_tag(config["distill"]["temperature"])
    dirs = [f"results/teacher/seed{s}" for s in config["teacher"]["seeds"]]
    dirs += [f"results/baseline/h{width}/seed{s}" for s in seeds]
    dirs += [f"results/distilled/h{width}/T{temp}/seed{s}" for s in seeds]
    dirs += [f"results/distilled/h{w}/T{temp_tag(t)}/seed{s}"
             for w in grid["widths"] for t, s in grid_cells(w)]
    for kind in ("omit", "keep"):
        dirs += [f"results/{kind}/c{class_tag(config[kind]['classes'])}/seed{s}" for s in seeds]
    return list(dict.fromkeys(dirs))  # the distilled run is also a grid cell: train it once


def experiment_targets():
    """metrics.json of every run, bias.json of omit/keep runs."""
    targets = []
    for d in experiment_dirs():
        targets.append(f"{d}/metrics.json")
        if d.startswith(("results/omit/", "results/keep/")):
            targets.append(f"{d}/bias.json")
    return targets
