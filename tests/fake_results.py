"""A deterministic fake results directory that follows docs/results.md exactly.

The error counts are loosely shaped like the paper's section 3 (teacher near 67,
hard-label student near 146, distilled near 74, the omit-3 and keep-78 bias sweeps), so
every claim, table and figure of the report has something to show. Seeded ``random``
makes the files identical on every call.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

CLASS_TOTALS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TEST_TOTAL = sum(CLASS_TOTALS)
SEEDS = (1, 2, 3)
WIDTHS = (800, 300, 30)
TEMPERATURES = (1.0, 2.5, 4.0, 8.0, 20.0)
BASELINE_ERRORS = {800: 146, 300: 160, 30: 330}
DISTILLED_ERRORS = {
    800: {1.0: 112, 2.5: 92, 4.0: 84, 8.0: 77, 20.0: 75},
    300: {1.0: 125, 2.5: 101, 4.0: 92, 8.0: 86, 20.0: 84},
    30: {1.0: 300, 2.5: 226, 4.0: 222, 8.0: 262, 20.0: 281},
}
BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"


def fake_test_labels(seed: int = 0) -> list[int]:
    """10,000 test labels with MNIST's class counts, in a seeded order."""
    labels = [c for c, n in enumerate(CLASS_TOTALS) for _ in range(n)]
    random.Random(seed).shuffle(labels)
    return labels


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")


class FakeWriter:
    """Writes runs into one results directory; hard images are shared across runs."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.labels = fake_test_labels()
        hardness = random.Random(1).sample(range(TEST_TOTAL), TEST_TOTAL)
        self.by_class = {c: [i for i in hardness if self.labels[i] == c] for c in range(10)}

    def evaluation(self, rng: random.Random, per_class: list[int],
                   omitted: tuple[int, ...] = ()) -> dict:
        """Scores for given per-class error counts: wrong images drawn from the hard ones."""
        wrong, confusion = [], [[0] * 10 for _ in range(10)]
        for c, errors in enumerate(per_class):
            pool = self.by_class[c][: max(3 * errors, errors)]
            picked = rng.sample(pool, errors)
            wrong += picked
            confusion[c][c] = CLASS_TOTALS[c] - errors
            choices = [d for d in range(10) if d != c and d not in omitted]
            for _ in picked:
                confusion[c][rng.choice(choices)] += 1
        return {"test_errors": sum(per_class), "test_total": TEST_TOTAL,
                "per_class_errors": per_class, "confusion": confusion,
                "wrong_indices": sorted(wrong)}

    def spread(self, rng: random.Random, total: int, fixed: dict[int, int] | None = None):
        """Per-class error counts summing to ``total`` (``fixed`` classes set exactly)."""
        fixed = fixed or {}
        free = [c for c in range(10) if c not in fixed]
        counts = [fixed.get(c, 0) for c in range(10)]
        for _ in range(max(0, total - sum(counts))):
            counts[rng.choice(free)] += 1
        return [min(n, CLASS_TOTALS[c]) for c, n in enumerate(counts)]

    def run(self, run_id: str, role: str, hidden: int, seed: int, errors: int, *,
            temperature: float | None = None, omit=(), keep=(), fixed=None) -> dict:
        """Write metrics.json and manifest.json of one run; return the metrics."""
        rng = random.Random(f"{run_id}")
        per_class = self.spread(rng, errors, fixed)
        scores = self.evaluation(rng, per_class, tuple(omit))
        size = 60000 - 6131 * bool(omit) if not keep else 12116
        epochs = 6
        metrics = {
            "schema": 1, "run": run_id, "role": role, "hidden": [hidden, hidden], "seed": seed,
            "temperature": temperature, "hard_weight": None if temperature is None else 0.0,
            "transfer_set": {"omit": list(omit), "keep": list(keep), "size": size},
            "epochs": epochs, **scores, "per_class_total": CLASS_TOTALS,
            "history": [{"epoch": e, "loss": round(0.3 * math.exp(-e / 3), 4),
                         "test_errors": round(scores["test_errors"] * (1 + 3 * math.exp(-e))
                                              if e < epochs else scores["test_errors"]),
                         "lr": round(0.1 * 0.95 ** (e - 1), 5), "momentum": 0.5 + 0.08 * e,
                         "seconds": 2.0 + rng.random()} for e in range(1, epochs + 1)],
            "train_seconds": round(12 + 30 * rng.random(), 1),
        }
        directory = self.root / run_id
        _write(directory / "metrics.json", metrics)
        _write(directory / "manifest.json", manifest(run_id, role, hidden, seed, temperature,
                                                     omit, keep))
        self.benchmark(f"train_{role}", run_id.split("/", 1)[1], rng)
        return metrics

    def benchmark(self, rule: str, job: str, rng: random.Random) -> None:
        """results/benchmarks/{rule}/{job}.tsv as Snakemake's benchmark directive writes it."""
        seconds = 10 + 50 * rng.random()
        path = self.root / "benchmarks" / rule / f"{job}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{BENCH_HEADER}\n{seconds:.4f}\t0:00:{int(seconds):02d}\t"
                        f"{800 + 400 * rng.random():.2f}\t2000.1\t700.0\t710.0\t0.1\t5.2\t"
                        f"95.0\t{seconds * 0.9:.2f}\n", encoding="utf-8")


def manifest(run_id, role, hidden, seed, temperature, omit, keep) -> dict:
    """A manifest whose spec has every key the training side writes."""
    teacher = role == "teacher"
    spec = {
        "role": role, "hidden": [hidden, hidden], "input_dropout": 0.2 if teacher else 0.0,
        "hidden_dropout": 0.5 if teacher else 0.0, "max_norm": 3.5 if teacher else None,
        "jitter": 2 if teacher else 0, "epochs": 6, "batch_size": 100,
        "lr": 1.0 if teacher else 0.1, "lr_decay": 0.95, "momentum_start": 0.5,
        "momentum_end": 0.99 if teacher else 0.9, "momentum_ramp_epochs": 3,
        "weight_decay": 0.0, "seed": seed, "temperature": temperature,
        "hard_weight": None if temperature is None else 0.0, "omit": list(omit),
        "keep": list(keep), "validation_fraction": 0.1 if (omit or keep) else 0.0,
        "validation_seed": 0, "device": "cpu",
    }
    return {"spec": spec, "seed": seed,
            "versions": {"python": "3.11.2", "torch": "2.14.1", "kdrepro": "0.1.0"},
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "data_sha256": "f" * 64, "device": "cpu", "threads": 2,
            "wall_seconds": 40.5, "started": "2025-01-01T00:00:00Z", "host": "testhost",
            "slurm_job_id": None, "outputs": {"model.pt": "a" * 64}}


def _omit3_counts(shift: float) -> tuple[int, int]:
    """(errors on 3s, errors on other digits) of the omit-3 student at a class-3 shift."""
    on_threes = min(1010, round(12 + 125 * math.exp(-0.85 * shift)))
    others = round(75 + 3.0 * max(0.0, shift - 2.0) ** 2)
    return on_threes, others


def _keep78_errors(shift: float) -> int:
    """Test errors of the keep-78 student when the biases of 7 and 8 are lowered by -shift."""
    return min(9000, round(1250 + 3480 * ((shift + 7.0) / 7.0) ** 2))


def _bias(writer: FakeWriter, run_id: str, classes: tuple[int, ...], paper_shift: float,
          shifts: list[float], count, seed: int) -> None:
    """bias.json: a sweep plus the four protocols, each scored like metrics.json."""
    rng = random.Random(f"bias-{run_id}")
    sweep = []
    for s in shifts:
        inside, outside = count(s)
        val = round((inside + outside) * 0.6 + rng.randint(-4, 4))
        sweep.append({"shift": s, "test_errors": inside + outside,
                      "test_errors_in_classes": inside, "val_errors": val,
                      "val_errors_in_classes": round(inside * 0.6)})
    chosen = {"as_trained": (0.0, "no shift"),
              "paper": (paper_shift, "the paper's published value"),
              "test_tuned": (min(sweep, key=lambda r: r["test_errors"])["shift"],
                             "fewest test errors (the paper's protocol; tuned on the test set)"),
              "validation": (min(sweep, key=lambda r: r["val_errors"])["shift"],
                             "fewest errors on the held-out validation split")}
    protocols = {}
    for name, (shift, why) in chosen.items():
        inside, outside = count(shift)
        fixed = {c: inside // len(classes) + (i < inside % len(classes))
                 for i, c in enumerate(classes)}
        per_class = writer.spread(rng, inside + outside, fixed)
        scores = writer.evaluation(rng, per_class)
        protocols[name] = {"shift": shift, "selected_by": why, **scores,
                           "errors_in_classes": sum(per_class[c] for c in classes),
                           "class_total": sum(CLASS_TOTALS[c] for c in classes)}
    _write(writer.root / run_id / "bias.json",
           {"schema": 1, "run": run_id, "classes": list(classes), "paper_shift": paper_shift,
            "sweep": sweep, "protocols": protocols})
    writer.benchmark("bias_sweep", run_id, rng)


def _grid(seed: int, offset: int) -> float:
    return offset + (seed - 2) * 3


def write_fake_results(root: Path, *, seeds=SEEDS, widths=WIDTHS, temperatures=TEMPERATURES,
                       partial: bool = False) -> Path:
    """Write the fake results tree under ``root`` and return ``root``.

    ``partial`` writes only what an interrupted run would have: the teacher, the 800-unit
    hard-label student and one distilled student, all for the first seed.
    """
    writer = FakeWriter(root)
    (Path(root) / "data").mkdir(parents=True, exist_ok=True)
    if partial:
        seeds, widths, temperatures = seeds[:1], (800,), (20.0,)
    for seed in seeds:
        writer.run(f"teacher/seed{seed}", "teacher", 1200, seed, round(_grid(seed, 70)))
        for width in widths:
            writer.run(f"baseline/h{width}/seed{seed}", "baseline", width, seed,
                       round(_grid(seed, BASELINE_ERRORS[width])))
            for t in temperatures:
                writer.run(f"distilled/h{width}/T{t:g}/seed{seed}", "distilled", width, seed,
                           round(_grid(seed, DISTILLED_ERRORS[width][t])), temperature=t)
        if partial:
            continue
        on3, others = _omit3_counts(0.0)
        run_id = f"omit/c3/seed{seed}"
        writer.run(run_id, "omit", 800, seed, on3 + others, temperature=20.0, omit=(3,),
                   fixed={3: on3})
        _bias(writer, run_id, (3,), 3.5, [x / 4 for x in range(-8, 25)], _omit3_counts, seed)
        run_id = f"keep/c78/seed{seed}"
        total = _keep78_errors(0.0)
        writer.run(run_id, "keep", 800, seed, total, temperature=20.0, keep=(7, 8))
        _bias(writer, run_id, (7, 8), -7.6, [x / 2 for x in range(-24, 5)],
              lambda s: (round(_keep78_errors(s) * 0.1), _keep78_errors(s)
                         - round(_keep78_errors(s) * 0.1)), seed)
    return Path(root)
