"""`tfedge budget MODEL --budget 200KB [--data EVAL.npz] [-o OUT] [--report R.json]
[--plot PREFIX]`: plan a model into a byte budget, print the plan and the per-layer
bytes, optionally write the packed file, the JSON report and the two plots."""

from __future__ import annotations

import json
import os

import numpy as np


def load_eval_data(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) from a .npz file holding arrays `x` and `y`."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such data file: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files if k in ("x", "y")}
            files = sorted(f.files)
    except (OSError, EOFError, ValueError) as e:
        raise ValueError(f"{path} is not a readable .npz file ({e})") from e
    if len(arrays) != 2:
        raise ValueError(
            f"{path}: expected arrays 'x' and 'y' (np.savez(path, x=..., y=...)); "
            f"it holds {files}"
        )
    return arrays["x"], arrays["y"]


def run_budget(
    model,
    *,
    budget: int,
    data: str | None = None,
    output: str | None = None,
    report: str | None = None,
    plot: str | None = None,
) -> str:
    """Runs the subcommand; returns the text to print. Files are written as asked."""
    from tfedge.budget import plan, plot_breakdown, plot_tradeoff

    if isinstance(model, str) and not os.path.exists(model):
        raise FileNotFoundError(f"No such model file: {model}")
    eval_data = load_eval_data(data) if data else None
    result = plan(model, budget, eval_data)
    packed = result.apply()
    report_ = result.breakdown(packed)
    lines = [result.table(), "", report_.table()]
    if eval_data is None:
        lines.append(
            "note: no --data: the metric is top-1 agreement with the float model on "
            "generated inputs"
        )
    if output:
        packed.save(output)
        lines.append(f"wrote {output} ({len(packed)} bytes)")
    if report:
        with open(report, "w") as f:
            json.dump(
                {"plan": result.to_dict(), "bytes": report_.to_dict()}, f, indent=2
            )
        lines.append(f"wrote {report}")
    if plot:
        for suffix, fig in (
            ("_bytes.png", plot_breakdown(report_)),
            (
                "_tradeoff.png",
                plot_tradeoff(
                    result.tradeoff, budget_bytes=budget, metric=result.metric
                ),
            ),
        ):
            fig.savefig(plot + suffix, dpi=120)
            lines.append(f"wrote {plot + suffix}")
    return "\n".join(lines)
