"""Figures of the report: pure functions from run records to matplotlib Figures.

Nothing here saves or shows a figure; the renderer turns them into PNGs. Figures are
built with ``matplotlib.figure.Figure`` directly (Agg canvas, no pyplot state), so they
are safe to build in tests and in parallel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter  # noqa: E402

from kdrepro.report.collect import RunRecord  # noqa: E402
from kdrepro.report.stats import Measure  # noqa: E402

PALETTE = ("#1f5fa8", "#d1495b", "#2e8b57", "#edae49", "#6c4f9e", "#00798c")
STYLE = {"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
         "axes.grid": True, "grid.alpha": 0.3, "axes.titlesize": 10}


def new_figure(width: float, height: float, ncols: int = 1):
    """A figure and its axes in the report's style."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
        axes = fig.subplots(1, ncols, squeeze=False)[0]
        for ax in axes:  # rc_context only applies while the axes are created
            ax.grid(True, alpha=0.3)
            ax.spines[["top", "right"]].set_visible(False)
    return fig, axes


def _headline_panel(ax, row: dict) -> None:
    """One count claim on its own scale: our seeds, their prediction interval, the paper."""
    m, unit = row["measure"], "%" if row["unit"] == "%" else ""
    xs = [row["paper"]] + ([row["blog"]] if row["blog"] is not None else [])
    if m is not None and m.n:
        if m.interval is not None:
            low, high = m.interval
            ax.plot([low, high], [0, 0], color="#1f5fa8", lw=2.5, alpha=0.45,
                    solid_capstyle="butt", label="95% prediction interval")
            xs += [low, high]
        ax.plot(m.values, [0] * m.n, "o", color="#1f5fa8", ms=4.5, label="our runs")
        xs += m.values
    if row["blog"] is not None:
        ax.plot([row["blog"]], [0], "s", color="#888888", ms=5, label="blog 2020")
    ax.plot([row["paper"]], [0], "D", color="#d1495b", ms=6, label="paper")
    span = (max(xs) - min(xs)) or max(abs(max(xs)), 1.0) * 0.1
    ax.set_xlim(min(xs) - 0.08 * span, max(xs) + 0.08 * span)
    ax.set_ylim(-1, 1)
    ax.set_yticks([0], [row["label"]], fontsize=7)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}{unit}"))
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(True, axis="x", alpha=0.3)
    ax.grid(False, axis="y")
    ax.text(1.01, 0.5, row["verdict"], transform=ax.transAxes, fontsize=7, va="center")


def headline_figure(rows: Sequence[Mapping]) -> Figure:
    """Every count claim of section 3: the paper's value against our runs, one panel each.

    ``rows`` hold label, paper, blog (or None), unit, verdict and our Measure (or None)."""
    count = max(len(rows), 1)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7.6, 0.42 * count + 0.7), dpi=110, layout="constrained")
        axes = fig.subplots(count, 1, squeeze=False)[:, 0]
    for ax, row in zip(axes, rows):
        ax.spines[["top", "right", "left"]].set_visible(False)
        _headline_panel(ax, row)
    fig.suptitle("♦ paper   ● our runs, one per seed   ▬ 95% prediction interval   "
                 "■ blog 2020", fontsize=8)
    return fig


NICE_TICKS = (10, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000, 1500, 2000, 3000, 5000)


def plain_log_axis(axis, values: Sequence[float] | None = None) -> None:
    """A log axis labelled with plain numbers (given ``values`` or the nice ticks in range)."""
    low, high = axis.get_view_interval()
    ticks = [v for v in (values or NICE_TICKS) if low <= v <= high]
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def temperature_figure(grid: Mapping[int, Mapping[float, Measure]],
                       baselines: Mapping[int, Measure]) -> Figure:
    """Section 3, paragraph 2: distilled test errors against temperature, one line per width.

    Dashed lines are the hard-label student of the same width.
    """
    fig, (ax,) = new_figure(6.4, 3.6)
    for color, (width, temps) in zip(PALETTE, grid.items()):
        ts = sorted(temps)
        ax.errorbar(ts, [temps[t].mean for t in ts], yerr=[temps[t].sd or 0 for t in ts],
                    marker="o", ms=4, capsize=3, color=color, label=f"{width}-{width} distilled")
        if width in baselines:
            ax.axhline(baselines[width].mean, color=color, ls="--", lw=1,
                       label=f"{width}-{width} hard labels")
    ax.axvspan(2.5, 4, color="#999999", alpha=0.15, label="paper: best T for 30 units")
    ax.axvline(8, color="#555555", lw=0.8, ls=":", label="paper: T ≥ 8 similar (300+ units)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_axis(ax.xaxis, sorted({t for temps in grid.values() for t in temps}))
    plain_log_axis(ax.yaxis)
    ax.set_xlabel("temperature T")
    ax.set_ylabel("test errors (mean ± sd over seeds)")
    handles, labels = ax.get_legend_handles_labels()
    rank = [0 if "distilled" in lb else 1 if "hard" in lb else 2 for lb in labels]
    order = sorted(range(len(labels)), key=lambda i: rank[i])
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=7,
              loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig


def _mark_choices(ax, run: RunRecord, key: str, color: str) -> None:
    sweep = {row["shift"]: row for row in run.bias.get("sweep", [])}
    marks = (("test_tuned", "v", "#d1495b"), ("validation", "o", "#2e8b57"))
    for name, marker, mark_color in marks:
        shift = run.bias.get("protocols", {}).get(name, {}).get("shift")
        if shift in sweep and key in sweep[shift]:
            ax.plot(shift, sweep[shift][key], marker, color=mark_color, ms=6, mfc="none")


def bias_sweep_figure(runs: Sequence[RunRecord], title: str) -> Figure:
    """Section 3, paragraph 3: test and validation errors against the bias shift.

    Each line is a seed; ▽ marks the test-tuned shift, ○ the validation-chosen shift and
    the dashed line the paper's shift.
    """
    fig, axes = new_figure(7.2, 3.0, ncols=2)
    for ax, key, label in zip(axes, ("test_errors", "val_errors"), ("test", "validation")):
        for color, run in zip(PALETTE, (r for r in runs if r.bias)):
            rows = [row for row in run.bias.get("sweep", []) if key in row]
            ax.plot([r["shift"] for r in rows], [r[key] for r in rows], color=color, lw=1.2,
                    label=f"seed {run.metrics.get('seed')}")
            _mark_choices(ax, run, key, color)
        paper = next((r.bias["paper_shift"] for r in runs if r.bias), None)
        if paper is not None:
            ax.axvline(paper, color="#333333", ls="--", lw=1, label=f"paper shift {paper:+g}")
        ax.set_xlabel("shift added to the output bias")
        ax.set_ylabel(f"{label} errors")
        ax.set_title(f"{title}: {label} set")
    axes[0].legend(fontsize=7, frameon=False)
    return fig


def training_curves_figure(series: Mapping[str, Sequence[RunRecord]]) -> Figure:
    """Test errors after each epoch (mean over seeds) for the networks of paragraph 1."""
    fig, (ax,) = new_figure(6.4, 3.4)
    for color, (label, runs) in zip(PALETTE, series.items()):
        by_epoch: dict[int, list[float]] = {}
        for run in runs:
            for point in run.metrics.get("history", []):
                by_epoch.setdefault(point["epoch"], []).append(point["test_errors"])
        if by_epoch:
            epochs = sorted(by_epoch)
            ax.plot(epochs, [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs],
                    color=color, marker=".", label=f"{label} ({len(runs)} seeds)")
    ax.set_yscale("log")
    plain_log_axis(ax.yaxis)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test errors")
    ax.legend(fontsize=8, frameon=False)
    return fig


def per_class_figure(per_class: Mapping[str, Sequence[float]]) -> Figure:
    """Grouped bars of test errors per digit, one group member per bias protocol."""
    fig, (ax,) = new_figure(6.4, 3.0)
    count = max(len(per_class), 1)
    width = 0.8 / count
    for i, (color, (label, errors)) in enumerate(zip(PALETTE, per_class.items())):
        xs = [d + (i - (count - 1) / 2) * width for d in range(len(errors))]
        ax.bar(xs, errors, width=width, color=color, label=label)
    ax.set_xticks(range(10))
    ax.set_xlabel("true digit")
    ax.set_ylabel("test errors (mean over seeds)")
    ax.legend(fontsize=8, frameon=False)
    return fig


def confusion_figure(matrices: Mapping[str, Sequence[Sequence[int]]]) -> Figure:
    """Confusion matrices (true digit by predicted digit, summed over seeds), log colour."""
    fig, axes = new_figure(3.4 * max(len(matrices), 1), 3.4, ncols=max(len(matrices), 1))
    for ax, (title, matrix) in zip(axes, matrices.items()):
        ax.grid(False)
        peak = max(max(row) for row in matrix) or 1
        ax.imshow([[max(v, 0.5) for v in row] for row in matrix], cmap="Blues",
                  norm=LogNorm(vmin=0.5, vmax=peak))
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                if value:
                    ax.text(j, i, str(value), ha="center", va="center", fontsize=5.5,
                            color="white" if value > peak ** 0.6 else "#222222")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        ax.set_xlabel("predicted digit")
        ax.set_ylabel("true digit")
        ax.set_title(title)
    return fig


def image_grid_figure(images, title: str, columns: int = 16) -> Figure:
    """A grid of 28x28 uint8 images (torchvision.utils.make_grid), white on black."""
    import torch
    from torchvision.utils import make_grid

    batch = torch.as_tensor(images, dtype=torch.uint8)[:, None].float() / 255.0
    grid = make_grid(batch, nrow=columns, padding=2, pad_value=1.0)
    rows = (len(batch) + columns - 1) // columns
    fig, (ax,) = new_figure(min(columns, len(batch)) * 0.45 + 0.4, rows * 0.45 + 0.5)
    ax.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title)
    return fig
