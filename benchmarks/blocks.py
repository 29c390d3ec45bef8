"""Student blocks vs one process per grid cell: 30-unit students trained per CPU-second.

    python benchmarks/blocks.py [--quick] [--data results/data/mnist.pt] [--epochs N]

The 30-unit row of section 3's temperature grid, as the workflow trains it: one
`kdrepro train-block` process for every temperature of one seed, against one
`kdrepro train` process per (temperature, seed) cell as before. Both include
process start-up, data load and checks, training, evaluation and writing the
run folders; both use 1 thread and the same epochs. CPU seconds are the
children's user + system time (resource.getrusage), so other load on the
machine inflates wall time but not the figure. Target (issue 12): >= 3.0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kdrepro import plan  # noqa: E402
from kdrepro.config import validate_config  # noqa: E402

TARGET = 3.0
WIDTH = 30


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(commands: list[list[str]]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of running `commands` one after the other."""
    cpu, tic = _children_cpu(), time.perf_counter()
    for command in commands:
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise RuntimeError(f"{command[3]} failed ({proc.returncode}): {tail}")
    return _children_cpu() - cpu, time.perf_counter() - tic


def _teacher(data: Path, tmp: Path) -> tuple[Path, Path]:
    """A small teacher and its soft targets (untimed: both cases share them)."""
    from kdrepro.training.runs import soft_targets_run, train_run
    from kdrepro.training.spec import spec_from_dict

    spec = spec_from_dict({"role": "teacher", "hidden": [64], "epochs": 1, "lr": 0.05})
    train_run(spec, data, tmp / "teacher", label="teacher")
    soft_targets_run(tmp / "teacher" / "model.pt", data, tmp / "soft.pt")
    return tmp / "teacher" / "model.pt", tmp / "soft.pt"


def _commands(config: dict, data: Path, tmp: Path, temps: list[float], epochs: int):
    teacher, soft = _teacher(data, tmp)
    seed = plan.grid_cells(config, WIDTH)[0][1]
    spec = lambda t: {**json.loads(plan.student_spec(config, "distilled", WIDTH, seed, t)),  # noqa: E731
                      "epochs": epochs}
    base = [sys.executable, "-m", "kdrepro"]
    common = ["--data", str(data), "--soft-targets", str(soft), "--teacher", str(teacher),
              "--threads", "1"]
    singles = [[*base, "train", "--spec", json.dumps(spec(t)), "--out",
                str(tmp / "single" / f"T{t:g}"), *common] for t in temps]
    block = [*base, "train-block", "--spec", json.dumps(spec(temps[0])), "--temperatures",
             ",".join(f"{t:g}" for t in temps), *common]
    for t in temps:
        block += ["--out", str(tmp / "block" / f"T{t:g}")]
    return singles, block


def measure_grid30(data_path: Path, quick: bool, epochs: int | None = None) -> dict:
    """Speedup in 30-unit students per CPU-second: one block vs one process per cell.

    quick: three temperatures, one epoch (well under a minute); otherwise every
    temperature of the profile's 30-unit row and the student's epochs.
    """
    config = validate_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()),
                             ROOT / "workflow" / "schemas" / "config.schema.yaml")  # + defaults
    seed = plan.grid_cells(config, WIDTH)[0][1]
    temps = [float(t) for t, s in plan.grid_cells(config, WIDTH) if s == seed]
    temps = temps[:3] if quick else temps
    epochs = epochs or (1 if quick else config["student"]["optimizer"]["epochs"])
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="kdrepro-blocks-") as tmp:
        singles, block = _commands(config, Path(data_path), Path(tmp), temps, epochs)
        single_cpu, single_wall = _timed(singles)
        block_cpu, block_wall = _timed([block])
    value = single_cpu / block_cpu
    return {"value": round(value, 3), "threshold": TARGET, "passed": value >= TARGET,
            "students": len(temps), "epochs": epochs, "width": WIDTH,
            "single_seconds": round(single_cpu, 2), "block_seconds": round(block_cpu, 2),
            "single_wall_seconds": round(single_wall, 2), "block_wall_seconds": round(block_wall, 2),
            "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 temperatures, 1 epoch")
    parser.add_argument("--data", type=Path, default=ROOT / "results/data/mnist.pt")
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs")
    args = parser.parse_args(argv)
    print(json.dumps(measure_grid30(args.data, args.quick, args.epochs), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
