"""Training speed of kdrepro on this machine (issue 6), in five parts, one run.

    python benchmarks/train_speed.py [--quick] [--wait-quiet S] [--out FILE.json]

1. peak float32 matmul GFLOP/s; the teacher's and student's roofline s/epoch;
2. a teacher epoch (dropout + jitter + max-norm) with kdrepro's own training
   code, and its fraction of the roofline;
3. the same epoch in the 2020 reference style (benchmarks/reference_style.py);
4. a distillation epoch from cached teacher logits, from a live teacher
   forward per batch, and a plain hard-label epoch of the same student;
5. two `kdrepro train --threads 1` jobs side by side vs in series;
6. the teacher epoch per GEMM path (fp32 MKL, bf16, the default engine path)
   and a plain-PyTorch in-memory loop (benchmarks/engine_paths.py);
7. the default-path teacher epoch quiet vs beside one busy core;
8. (hook) 30-unit students per CPU-second, block vs one process per cell,
   from benchmarks/blocks.py's `measure_grid30` where that module exists.

The networks and optimiser settings are read from the workflow's config, so
the timed maths is what the experiments train. Epochs are timed on a slice
of the training set (without --quick: all of it, 20,000 rows for the slow
reference style) and scaled to 60,000 rows; every time is the best of a few
repeats, and each part records how busy other processes kept the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

# as the CLI does, before torch loads MKL: float32 bits independent of the thread count
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import torch  # noqa: E402
import yaml  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules, run as a script

import engine_paths  # noqa: E402
import jobs  # noqa: E402
import load  # noqa: E402
import phases  # noqa: E402
import reference_style as ref  # noqa: E402
import roofline  # noqa: E402
import summary  # noqa: E402

from kdrepro.data.mnist import load_mnist, normalize  # noqa: E402
from kdrepro.training.engine import BatchSource, TrainConfig, make_optimizer, predict_logits  # noqa: E402
from kdrepro.training.engine import train_epoch as kd_train_epoch  # noqa: E402
from kdrepro.training.losses import distillation_loss, hard_label_loss, soft_targets  # noqa: E402
from kdrepro.training.models import MLP  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN = 60_000
SEED = 1


def load_setup(config: Path) -> dict:
    """Teacher, student and distillation settings from the workflow config."""
    cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
    teacher, student = cfg["teacher"], cfg["student"]
    known = {f.name for f in dataclasses.fields(TrainConfig)}  # the config may omit some

    def train_config(optimizer: dict, **extra) -> TrainConfig:
        return TrainConfig(**{k: v for k, v in optimizer.items() if k in known}, **extra)

    return {
        "teacher": {"hidden": tuple(teacher["hidden"]), "input_dropout": teacher["input_dropout"],
                    "hidden_dropout": teacher["hidden_dropout"], "max_norm": teacher["max_norm"],
                    "train": train_config(teacher["optimizer"], jitter=teacher["jitter"])},
        "student": {"hidden": (student["width"],) * 2,
                    "train": train_config(student["optimizer"]),
                    "optimizer_spec": dict(student["optimizer"])},
        "temperature": cfg["distill"]["temperature"],
        "hard_weight": cfg["distill"].get("hard_weight") or 0.0,
        "precision": cfg.get("precision", "fp32"),
    }


def best_epoch_seconds(make_run, rows: int, repeats: int) -> float:
    """Best time of `make_run()()` over `repeats`, scaled from `rows` to 60,000 rows.

    `make_run` builds fresh state (model, optimiser) and returns the epoch to
    time, so set-up cost stays out of the figure.
    """
    best = float("inf")
    for _ in range(repeats):
        run = make_run()
        tic = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - tic)
    return best * N_TRAIN / rows


def kd_state(net: dict, images, targets, loss_fn, warm_rows: int = 500):
    """Fresh (model, optimiser, batches) as kdrepro.training.engine.fit builds them, warmed up."""
    torch.manual_seed(SEED)
    model = MLP(net["hidden"], net.get("input_dropout", 0.0), net.get("hidden_dropout", 0.0),
                net.get("max_norm"))
    model.generator = torch.Generator().manual_seed(SEED)
    cfg = net["train"]
    optimizer = make_optimizer(model, cfg)
    batches = BatchSource(images, cfg.jitter)
    warm = [t[:warm_rows] for t in targets]  # first-touch allocations, MKL set-up
    kd_train_epoch(model, optimizer, batches, warm, loss_fn, cfg.batch_size, model.generator)
    return model, optimizer, batches


def kd_epoch(net: dict, images, targets, loss_fn):
    """A `make_run` for best_epoch_seconds: kdrepro's own train_epoch."""
    def make_run():
        model, optimizer, batches = kd_state(net, images, targets, loss_fn)
        return lambda: kd_train_epoch(model, optimizer, batches, targets, loss_fn,
                                      net["train"].batch_size, model.generator)
    return make_run


def part_teacher(setup, mnist, rows: int, repeats: int) -> dict:
    teacher = setup["teacher"]
    images, labels = mnist.train_images[:rows], mnist.train_labels[:rows]
    seconds = best_epoch_seconds(kd_epoch(teacher, images, [labels], hard_label_loss),
                                 rows, repeats)
    model, optimizer, batches = kd_state(teacher, images, [labels], hard_label_loss)
    step_ms = phases.step_phases(model, optimizer, batches, [labels[:3000]], hard_label_loss,
                                 teacher["train"].batch_size, model.generator)
    tic = time.perf_counter()
    predict_logits(model, mnist.test_images)
    return {"epoch_s": seconds, "rows_timed": rows, "step_phases_ms": step_ms,
            "eval_10k_s": time.perf_counter() - tic}


def part_reference(setup, mnist, rows: int, repeats: int) -> dict:
    teacher = setup["teacher"]
    cfg = teacher["train"]

    def make_run():
        torch.manual_seed(SEED)
        model = ref.make_mlp(teacher["hidden"], teacher["input_dropout"],
                             teacher["hidden_dropout"])
        loader = ref.make_loader(mnist.train_images[:rows], mnist.train_labels[:rows],
                                 cfg.jitter, SEED, cfg.batch_size)
        opt = ref.make_optimizer(model, cfg.lr, cfg.momentum_at(0))
        warm = ref.make_loader(mnist.train_images[:300], mnist.train_labels[:300], cfg.jitter, SEED)
        ref.train_epoch(model, warm, opt, teacher["max_norm"])
        return lambda: ref.train_epoch(model, loader, opt, teacher["max_norm"])
    return {"epoch_s": best_epoch_seconds(make_run, rows, repeats), "rows_timed": rows}


def part_distill(setup, mnist, rows: int, repeats: int) -> dict:
    """Cached-logit vs live-teacher distillation vs hard labels, one student."""
    student, temp, weight = setup["student"], setup["temperature"], setup["hard_weight"]
    images, labels = mnist.train_images[:rows], mnist.train_labels[:rows]
    teacher = MLP(setup["teacher"]["hidden"]).eval()  # untrained: same cost as trained
    tic = time.perf_counter()
    probs = soft_targets(predict_logits(teacher, images), temp)
    cache_s = (time.perf_counter() - tic) * N_TRAIN / rows

    def cached(out, target_probs, target_labels):
        return distillation_loss(out, target_probs, target_labels, temp, weight)

    def live(out, inputs, target_labels):
        with torch.no_grad():
            live_probs = soft_targets(teacher(inputs), temp)
        return distillation_loss(out, live_probs, target_labels, temp, weight)

    result = {"rows_timed": rows, "soft_target_cache_s": cache_s}
    variants = {"cached_s": ([probs, labels], cached), "live_teacher_s": (
        [normalize(images), labels], live), "plain_s": ([labels], hard_label_loss)}
    for _ in range(repeats):  # interleaved, so outside load hits all three alike
        for name, (targets, loss_fn) in variants.items():
            seconds = best_epoch_seconds(kd_epoch(student, images, targets, loss_fn), rows, 1)
            result[name] = min(result.get(name, float("inf")), seconds)
    result["cached_over_plain"] = result["cached_s"] / result["plain_s"]
    result["live_over_cached"] = result["live_teacher_s"] / result["cached_s"]
    return result


def part_jobs(setup, data: Path, quick: bool) -> dict:
    fraction, repeats = (0.1, 1) if quick else (1.0, 2)
    specs = [jobs.job_spec(setup["student"], 300, seed, 1, fraction) for seed in (1, 2)]
    return jobs.side_by_side(specs, data, repeats)


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version(), "host": platform.node(),
            "mkl": torch.backends.mkl.is_available()}


def part_grid30(data: Path, quick: bool) -> dict | None:
    """HOOK (issue 12 item 3): benchmarks/blocks.py's measure_grid30, where it exists."""
    try:
        blocks = importlib.import_module("blocks")
    except ImportError:
        return None
    measure = getattr(blocks, "measure_grid30", None)
    return measure(data, quick=quick) if measure else None


# rows timed and repeats per part: (smoke, quick, full)
SIZES = {"teacher": ((200, 1), (3000, 2), (N_TRAIN, 3)),
         "reference": ((100, 1), (2000, 2), (20_000, 2)),
         "distill": ((200, 1), (6000, 4), (N_TRAIN, 3)),
         "precision": ((200, 1), (3000, 2), (12_000, 3)),
         "contention": ((200, 1), (3000, 2), (12_000, 3))}


def _steps(args, setup, mnist) -> list:
    level = 0 if args.smoke else 1 if args.quick else 2
    size = {part: sizes[level] for part, sizes in SIZES.items()}
    nets = {"teacher": setup["teacher"]["hidden"], "student": setup["student"]["hidden"]}
    return [("peak", lambda: roofline.measure_peak(nets, args.quick or args.smoke)),
            ("teacher", lambda: part_teacher(setup, mnist, *size["teacher"])),
            ("reference", lambda: part_reference(setup, mnist, *size["reference"])),
            ("distill", lambda: part_distill(setup, mnist, *size["distill"])),
            ("jobs", lambda: part_jobs(setup, args.data, args.quick or args.smoke)),
            ("precision", lambda: engine_paths.part_precision(
                setup, mnist, *size["precision"], best_epoch_seconds, kd_epoch)),
            ("contention", lambda: engine_paths.part_contention(
                setup, mnist, *size["contention"], args.threads, best_epoch_seconds, kd_epoch)),
            ("grid30", lambda: part_grid30(args.data, args.quick or args.smoke))]


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    setup = load_setup(args.config)
    mnist = load_mnist(args.data)
    quick = args.quick or args.smoke
    meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "quick": quick,
            "threads": args.threads, "load_before": os.getloadavg(), **machine()}
    nets = {"teacher": setup["teacher"]["hidden"], "student": setup["student"]["hidden"]}
    results: dict = {"meta": meta}
    for name, step in _steps(args, setup, mnist):
        if name in args.skip:
            continue
        waited = load.wait_quiet(args.wait_quiet)
        with load.OutsideLoad() as outside:
            figures = step()
        if figures is None:  # a hook whose module is not there
            continue
        results[name] = figures
        results[name].update(outside_load_cores=outside.cores, waited_for_quiet_s=waited)
        print(f"  [{name} done; other processes used {outside.cores or 0:.2f} cores]",
              file=sys.stderr)
    if "peak" in results:
        results["roofline"] = roofline.roofline(nets, results["peak"])
    meta["load_after"] = os.getloadavg()
    results["targets"] = summary.targets(results)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small slices; a minute or two")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny slices, one repeat: checks the benchmark runs (tests), no figures")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/train_speed.json")
    parser.add_argument("--data", type=Path, default=ROOT / "results/data/mnist.pt")
    parser.add_argument("--config", type=Path, default=ROOT / "config/config.yaml")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                        help="before each part, wait up to S s for other processes to go quiet")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["peak", "teacher", "reference", "distill", "jobs", "precision",
                                 "contention", "grid30"])
    args = parser.parse_args(argv)
    tic = time.perf_counter()
    results = run(args)
    results["meta"]["wall_s"] = time.perf_counter() - tic
    summary.write_json(args.out, results)
    print(summary.table(results))
    print(f"figures -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
