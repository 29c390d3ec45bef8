"""Issue 6's and issue 12's targets, a readable table and the JSON file of the benchmark's figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

PARTS = ("peak", "teacher", "reference", "distill", "jobs", "precision", "contention", "grid30")
# (key, description, comparison, threshold, parts whose figures it uses)
TARGETS = [
    ("teacher_roofline_fraction", "teacher epoch >= 60% of the matmul roofline", ">=", 0.60,
     ("peak", "teacher")),
    ("reference_speedup", "teacher epoch >= 2.5x faster than reference style", ">=", 2.5,
     ("teacher", "reference")),
    ("cached_over_plain", "cached-logit distillation epoch <= 1.15x plain epoch", "<=", 1.15,
     ("distill",)),
    ("parallel_over_series", "two jobs side by side not slower than in series", "<=", 1.0,
     ("jobs",)),
    ("teacher_speedup_vs_fp32_mkl", "default engine path >= 1.5x plain float32 MKL (teacher "
     "epoch; where bf16 is native)", ">=", 1.5, ("precision",)),
    ("engine_speedup_vs_plain", "default engine path >= 2x a plain in-memory PyTorch loop",
     ">=", 2.0, ("precision",)),
    ("contention_slowdown", "teacher epoch beside one busy core <= 1.5x its quiet time", "<=",
     1.5, ("contention",)),
    # HOOK (issue 12 item 3): filled by benchmarks/blocks.py's measure_grid30 where it exists
    ("grid30_speedup", "30-unit students per CPU-second, block vs one process per cell >= 3x",
     ">=", 3.0, ("grid30",)),
]
TAINTED_CORES = 0.1  # other processes' CPU use above which a part's figures are suspect


def _values(results: dict) -> dict:
    """The figures the targets are stated in, where their parts ran."""
    values = {}
    teacher = results.get("teacher", {}).get("epoch_s")
    if teacher and "roofline" in results:
        values["teacher_roofline_fraction"] = results["roofline"]["teacher"]["roofline_s"] / teacher
    if teacher and "reference" in results:
        values["reference_speedup"] = results["reference"]["epoch_s"] / teacher
    if "distill" in results:
        values["cached_over_plain"] = results["distill"]["cached_over_plain"]
    if "jobs" in results:
        values["parallel_over_series"] = results["jobs"]["parallel_over_series"]
    precision = results.get("precision")
    if precision:
        if precision["bf16_native"]:
            values["teacher_speedup_vs_fp32_mkl"] = precision["speedup_vs_fp32_mkl"]
        values["engine_speedup_vs_plain"] = precision["speedup_vs_plain"]
    if "contention" in results:
        values["contention_slowdown"] = results["contention"]["contention_slowdown"]
    if "grid30" in results:
        values["grid30_speedup"] = results["grid30"]["value"]
    return values


def _tainted(results: dict, parts) -> list[str]:
    return [p for p in parts if (results.get(p, {}).get("outside_load_cores") or 0) > TAINTED_CORES]


def targets(results: dict) -> dict:
    """{key: {target, value, op, threshold, passed, tainted_by}} for the parts that ran.

    `tainted_by` names the parts that ran while other processes were busy:
    their figures, and this verdict, say more about the neighbours than the code.
    """
    values = _values(results)
    out = {}
    for key, text, op, threshold, parts in TARGETS:
        if key in values:
            value = values[key]
            passed = value >= threshold if op == ">=" else value <= threshold
            out[key] = {"target": text, "value": value, "op": op, "threshold": threshold,
                        "passed": bool(passed), "tainted_by": _tainted(results, parts)}
    return out


def _rows(results: dict) -> list[tuple[str, str]]:
    rows = []
    if "peak" in results:
        peak = results["peak"]
        rows.append(("peak float32 matmul", f"{peak['peak_gflops']:.0f} GFLOP/s "
                     f"({peak['peak_shape']}, {peak['threads']} threads)"))
        for name, roof in results.get("roofline", {}).items():
            rows.append((f"{name} {'-'.join(map(str, roof['hidden']))} roofline",
                         f"{roof['roofline_s']:.2f} s/epoch ({roof['train_per_epoch'] / 1e12:.3f}"
                         f" TFLOP; GEMMs at their own shapes: {roof['gemm_floor_s']:.2f} s)"))
    if "teacher" in results:
        rows.append(("teacher epoch (kdrepro)", f"{results['teacher']['epoch_s']:.2f} s"))
        step = results["teacher"]["step_phases_ms"]
        gemm = results.get("peak", {}).get("gemm_step_seconds", {}).get("teacher")
        rows.append(("  one step, ms", f"{sum(step.values()):.2f} = " + " + ".join(
            f"{v:.2f} {k}" for k, v in step.items())
            + (f"; its GEMMs alone: {gemm * 1e3:.2f}" if gemm else "")))
        rows.append(("  test-set evaluation", f"{results['teacher']['eval_10k_s']:.2f} s"))
    if "reference" in results:
        rows.append(("teacher epoch (reference style)", f"{results['reference']['epoch_s']:.2f} s"))
    if "distill" in results:
        d = results["distill"]
        rows += [("student epoch, cached logits", f"{d['cached_s']:.2f} s"),
                 ("student epoch, live teacher", f"{d['live_teacher_s']:.2f} s"),
                 ("student epoch, hard labels", f"{d['plain_s']:.2f} s"),
                 ("  soft-target cache (once)", f"{d['soft_target_cache_s']:.2f} s")]
    if "jobs" in results:
        j = results["jobs"]
        rows += [("2 jobs side by side, 1 thread each", f"{j['parallel_1_thread_s']:.1f} s"),
                 ("2 jobs in series, 1 thread each", f"{j['series_1_thread_s']:.1f} s"),
                 ("2 jobs in series, 2 threads each", f"{j['series_2_threads_s']:.1f} s")]
    return rows + _engine_rows(results)


def _engine_rows(results: dict) -> list[tuple[str, str]]:
    rows = []
    if "precision" in results:
        p = results["precision"]
        rows += [("teacher epoch, fp32 (MKL)", f"{p['fp32_mkl_s']:.2f} s"),
                 ("teacher epoch, bf16 (oneDNN)", f"{p['bf16_s']:.2f} s"
                  + ("" if p["bf16_native"] else " (not native: ran fp32)")),
                 (f"teacher epoch, default path ({p['default_precision']}, "
                  f"{p['default_gemm_path']})", f"{p['default_s']:.2f} s"),
                 ("teacher epoch, plain PyTorch loop (fp32)", f"{p['plain_pytorch_s']:.2f} s")]
    if "contention" in results:
        c = results["contention"]
        rows += [("teacher epoch quiet, threads used", f"{c['quiet_s']:.2f} s {c['quiet_threads']}"),
                 ("  beside one busy core, thread policy", f"{c['busy_s']:.2f} s {c['busy_threads']}"),
                 (f"  beside one busy core, fixed {c['threads']} threads",
                  f"{c['busy_fixed_threads_s']:.2f} s")]
    return rows


def table(results: dict) -> str:
    """Figures, then targets with PASS/MISS, as plain text."""
    meta = results["meta"]
    quick = ", quick" if meta["quick"] else ""
    lines = [f"kdrepro training speed  {meta['date']}  {meta['cpu']}  ({meta['cores']} cores, "
             f"{meta['threads']} threads, torch {meta['torch']}{quick})",
             f"load average before/after: {meta['load_before'][0]:.2f} / "
             f"{meta['load_after'][0]:.2f}", ""]
    rows = _rows(results)
    width = max((len(name) for name, _ in rows), default=0)
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    loads = {part: results[part].get("outside_load_cores") for part in PARTS if part in results}
    lines.append("other processes' CPU use during each part (cores; > 0.1 taints it): " + ", ".join(
        f"{part} {'?' if v is None else f'{v:.2f}'}{' (!)' if (v or 0) > TAINTED_CORES else ''}"
        for part, v in loads.items()))
    lines.append("")
    for t in results["targets"].values():
        mark = "PASS" if t["passed"] else "MISS"
        note = (f"  (under outside load: {', '.join(t['tainted_by'])}; rerun with --wait-quiet)"
                if t["tainted_by"] else "")
        lines.append(f"[{mark}] {t['target']}: {t['value']:.2f} ({t['op']} {t['threshold']})"
                     + note)
    return "\n".join(lines)


def _clean(value):
    """JSON-safe: tuples to lists, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, results: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(results), indent=2, sort_keys=True) + "\n", encoding="utf-8")
