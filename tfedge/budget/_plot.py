"""Plots of a budget report (matplotlib, the `plot` extra): where the bytes go, and the
size/accuracy trade-off. Each returns a matplotlib Figure; none saves or shows it."""

from __future__ import annotations

from tfedge.budget._report import PARTS, Breakdown

_COLORS = {
    "weights": "#4c72b0",
    "indices": "#dd8452",
    "codebooks": "#55a868",
    "huffman": "#c44e52",
    "headers": "#8172b3",
    "flatbuffer": "#937860",
}


def _figure(ax, size):
    try:
        import matplotlib.figure
    except ImportError as e:
        raise ImportError(
            "tfedge.budget plots need matplotlib: pip install 'tfedge[plot]'"
        ) from e
    if ax is None:
        fig = matplotlib.figure.Figure(figsize=size)
        return fig, fig.add_subplot()
    return ax.figure, ax


def plot_breakdown(report: Breakdown, *, ax=None, title: str | None = None):
    """A stacked bar per layer: its packed bytes split into `PARTS`, next to a hollow
    bar of its bytes before packing. Returns the Figure."""
    if not isinstance(report, Breakdown):
        raise ValueError(
            f"Expected a Breakdown (tfedge.budget.breakdown). Received: {report!r}"
        )
    fig, ax = _figure(ax, (max(6.0, 1.1 * len(report.rows) + 2), 4.5))
    names = [r.layer for r in report.rows]
    xs = list(range(len(names)))
    width = 0.38
    ax.bar(
        [x - width / 2 for x in xs],
        [r.before for r in report.rows],
        width,
        fill=False,
        edgecolor="black",
        label="before",
    )
    bottom = [0] * len(names)
    for part in PARTS:
        values = [getattr(r, part) for r in report.rows]
        if not any(values):
            continue
        ax.bar(
            [x + width / 2 for x in xs],
            values,
            width,
            bottom=bottom,
            color=_COLORS[part],
            label=f"after: {part}",
        )
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("bytes (log scale)")
    ax.set_title(
        title
        or (
            f"bytes per layer: {report.file_before:,} -> "
            f"{report.file_after:,} "
            f"({report.file_before / max(report.file_after, 1):.1f}x)"
        )
    )
    ax.legend(fontsize="small")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_tradeoff(
    points,
    *,
    budget_bytes: int | None = None,
    metric: str = "accuracy",
    ax=None,
    label: str | None = None,
    title: str | None = None,
):
    """The metric against packed size: `points` is `Plan.tradeoff` (or a list of dicts
    with "bytes" and "metric"; a point with "chosen" True is ringed). Returns the
    Figure; call again with `ax=` to draw several models on one plot."""
    points = sorted(points, key=lambda p: p["bytes"])
    if not points:
        raise ValueError("Expected at least one trade-off point. Received: []")
    fig, ax = _figure(ax, (6, 4))
    xs = [p["bytes"] / 1000 for p in points]
    ys = [p["metric"] for p in points]
    (line,) = ax.plot(xs, ys, marker="o", label=label)
    for p in points:
        if p.get("chosen"):
            ax.plot(
                [p["bytes"] / 1000],
                [p["metric"]],
                marker="o",
                markersize=12,
                fillstyle="none",
                color=line.get_color(),
            )
    if budget_bytes is not None:
        ax.axvline(budget_bytes / 1000, color="gray", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("packed file (KB, log scale)")
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} against packed size")
    if label is not None:
        ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig
