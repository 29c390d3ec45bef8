"""Choose the profile's recipes on a validation split, never on the test set (issue 15).

Each tuning run is the default profile's spec (kdrepro.plan, config/config.yaml)
with a few settings overridden, trained on the training set minus a stratified
validation split (`validation_fraction`, 10,000 images) and scored on that split
after every epoch (`scored_on: validation`); the test set is not read. The
variants live in tuning/plan.yaml; each run's metrics (validation errors per
epoch, final validation errors) are copied to tuning/results/<name>.json, which
docs/tuning.md's tables are made from (`python tuning/table.py`).

    python tuning/tune.py --data results/data/mnist.pt --stage teacher --jobs 2
    python tuning/tune.py --data results/data/mnist.pt --stage student --jobs 2

Runs that already have a results file are skipped (delete it to re-run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdrepro import plan  # noqa: E402
from kdrepro.config import validate_config  # noqa: E402

HERE = Path(__file__).resolve().parent
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def load_plan() -> tuple[dict, dict]:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return validate_config(config, SCHEMA), yaml.safe_load((HERE / "plan.yaml").read_text())


def run_spec(config: dict, tuning: dict, stage: str, variant: dict, seed: int) -> dict:
    """The profile's spec of this stage with the variant's overrides, scored on validation."""
    split = {"validation_fraction": tuning["validation_fraction"],
             "validation_seed": tuning["validation_seed"], "scored_on": "validation"}
    if stage == "teacher":
        spec = json.loads(plan.teacher_spec(config, seed))
    else:
        temperature = variant.get("temperature")
        role = "distilled" if temperature is not None else "baseline"
        spec = json.loads(plan.student_spec(config, role, config["student"]["width"], seed,
                                            temperature))
    overrides = {k: v for k, v in variant.items() if k not in ("name", "temperature")}
    return {**spec, **overrides, **split}


def jobs(config: dict, tuning: dict, stage: str) -> list[tuple[str, dict]]:
    out = []
    for variant in tuning[stage]["variants"]:
        for seed in tuning[stage]["seeds"]:
            out.append((f"{stage}-{variant['name']}-seed{seed}",
                        run_spec(config, tuning, stage, variant, seed)))
    return out


def train(name: str, spec: dict, data: Path, teacher: dict, threads: int) -> str:
    result = HERE / "results" / f"{name}.json"
    if result.exists():
        return f"{name}: done before"
    out = ROOT / "tuning" / "runs" / name
    cmd = ["kdrepro", "train", "--spec", json.dumps(spec), "--data", str(data),
           "--out", str(out), "--label", name, "--threads", str(threads),
           "--progress", str(ROOT / "results" / "progress" / f"tuning-{name}.json")]
    if spec.get("temperature") is not None:
        cmd += ["--teacher", str(teacher["model"]), "--soft-targets", str(teacher["soft"])]
    log = HERE / "runs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    if not (out / "metrics.json").exists():  # a finished run folder is only harvested
        with log.open("w") as handle:
            code = subprocess.call(cmd, stdout=handle, stderr=subprocess.STDOUT)
        if code != 0 or not (out / "metrics.json").exists():
            return f"{name}: FAILED (exit {code}, see {log})"
    metrics = json.loads((out / "metrics.json").read_text())
    keep = {k: metrics[k] for k in ("run", "seed", "epochs", "val_errors", "val_total",
                                    "per_class_errors", "train_seconds")}
    keep["spec"], keep["history"] = spec, [
        {k: r[k] for k in ("epoch", "loss", "lr", "val_errors")} for r in metrics["history"]]
    result.parent.mkdir(parents=True, exist_ok=True)
    result.write_text(json.dumps(keep, indent=1) + "\n")
    return f"{name}: {metrics['val_errors']} validation errors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "results" / "data" / "mnist.pt")
    parser.add_argument("--stage", choices=("teacher", "student"), required=True)
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, 1 thread each")
    args = parser.parse_args()
    config, tuning = load_plan()
    teacher = {}
    if args.stage == "student":
        model = HERE / "runs" / tuning["student"]["teacher"] / "model.pt"
        teacher = {"model": model, "soft": model.parent / "soft_targets.pt"}
        if not teacher["soft"].exists():
            subprocess.check_call(["kdrepro", "soft-targets", "--teacher", str(model),
                                   "--data", str(args.data), "--out", str(teacher["soft"])])
    threads = 1 if args.jobs > 1 else 2
    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(lambda job: train(*job, args.data, teacher, threads),
                             jobs(config, tuning, args.stage)):
            print(line, flush=True)


if __name__ == "__main__":
    main()
