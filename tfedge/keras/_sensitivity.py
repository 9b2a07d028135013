"""Per-layer sensitivity analysis (Han et al. 2015, fig. 5; Deep Compression fig. 6).

`sensitivity` prunes one layer at a time (one-shot, no retraining) to each sparsity and
evaluates the model; `choose_sparsity` turns the table into per-layer targets (the
highest sparsity whose loss stays within a budget); `plot_sensitivity` draws accuracy
against sparsity, one line per layer (needs matplotlib, the `plot` extra).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import keras

from tfedge._checks import top1_accuracy
from tfedge._layers import walk_layers
from tfedge._progress import progress, resolve_verbose
from tfedge.keras._prune import PruningWrapper, prune
from tfedge.keras._schedules import ConstantSparsity

__all__ = ["SensitivityTable", "choose_sparsity", "plot_sensitivity", "sensitivity"]

DEFAULT_SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


@dataclasses.dataclass(frozen=True)
class SensitivityTable:
    """Metric of the model with one layer pruned, per layer and sparsity.

    Attributes:
        metric: name of the metric (higher is better).
        baseline: metric of the unpruned model.
        sparsities: the sparsities tried, increasing.
        scores: `{layer name: [metric at each sparsity]}`.
        criterion: "magnitude" or "obd".
    """

    metric: str
    baseline: float
    sparsities: tuple[float, ...]
    scores: dict[str, list[float]]
    criterion: str

    def table(self) -> str:
        """The metric per layer (rows) and sparsity (columns), then the baseline."""
        from tfedge._table import Column, render

        columns = [Column("layer", max_width=30)] + [
            Column(f"{s:.0%}" if 100 * s == round(100 * s) else f"{s:.1%}", ">")
            for s in self.sparsities
        ]
        rows = [
            [name] + [f"{v:.4f}" for v in vals] for name, vals in self.scores.items()
        ]
        return render(
            columns,
            rows,
            footer=[
                f"{self.metric} with one layer pruned ({self.criterion}) to each "
                f"sparsity, no retraining; unpruned: {self.baseline:.4f}"
            ],
        )

    def __str__(self) -> str:
        return self.table()

    def rows(self) -> list[dict]:
        """One dict per layer: {"layer", then "s=<sparsity>": metric}."""
        rows = []
        for name, vals in self.scores.items():
            pairs = zip(self.sparsities, vals, strict=True)
            rows.append({"layer": name, **{f"s={s:g}": v for s, v in pairs}})
        return rows


def sensitivity(
    model: keras.Model,
    eval_data: tuple,
    *,
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
    layers: Sequence[str] | None = None,
    metric: str | Callable = "accuracy",
    criterion: str = "magnitude",
    hessian_data=None,
    loss=None,
    hessian_method: str = "gauss_newton",
    batch_size: int = 256,
    verbose: int | str = "auto",
) -> SensitivityTable:
    """Prune each layer alone to each sparsity (no retraining) and evaluate.

    Args:
        model: a trained, plain Sequential or functional model (not changed).
        eval_data: `(x, y)` arrays to evaluate on (held-out data).
        sparsities: increasing sparsities in [0, 1).
        layers: names of the layers to analyse (default: every prunable layer).
        metric: "accuracy" (argmax of the outputs against integer or one-hot labels)
            or a callable `(y_true, y_pred) -> float`, higher is better.
        criterion: "magnitude" or "obd" (then `hessian_data` and `loss` are needed).
        hessian_data, loss, hessian_method: as in `prune`, for criterion "obd".
        batch_size: prediction batch size.
        verbose: as in Keras: 0 silent, 1 a progress bar over the (layer, sparsity)
            evaluations on a terminal (one line when stderr is not one), 2 one line;
            "auto" is 1.

    Returns:
        A `SensitivityTable`.
    """
    values = [float(s) for s in sparsities]
    if not values or any(not 0.0 <= s < 1.0 for s in values):
        raise ValueError(
            f"Expected `sparsities` in [0, 1). Received: sparsities={list(sparsities)}"
        )
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(
            f"Expected `sparsities` increasing. Received: sparsities={list(sparsities)}"
        )
    if not (isinstance(eval_data, tuple) and len(eval_data) == 2):
        raise ValueError("Expected `eval_data` to be a tuple (x, y) of arrays.")
    if metric == "accuracy":
        metric_fn, metric_name = top1_accuracy, "accuracy"
    elif callable(metric):
        metric_fn, metric_name = metric, getattr(metric, "__name__", "metric")
    else:
        raise ValueError(
            f"Expected `metric` 'accuracy' or a callable. Received: metric={metric!r}"
        )
    # A zero-sparsity schedule gives wrappers whose masks start all ones; masks are
    # then set directly with `prune_now`, never by training.
    if layers is None:
        schedule = ConstantSparsity(0.0, begin_step=0)
    else:
        schedule = {name: ConstantSparsity(0.0, begin_step=0) for name in layers}
    probe = prune(
        model,
        schedule=schedule,
        criterion=criterion,
        hessian_data=hessian_data,
        loss=loss,
        hessian_method=hessian_method,
    )
    wrappers = [x for x in walk_layers(probe) if isinstance(x, PruningWrapper)]
    x, y = eval_data

    def evaluate() -> float:
        return float(metric_fn(y, probe.predict(x, batch_size=batch_size, verbose=0)))

    resolve_verbose(verbose)
    baseline = evaluate()
    scores: dict[str, list[float]] = {w.name: [] for w in wrappers}
    jobs = [(w, s) for w in wrappers for s in values]
    for w, s in progress(jobs, desc="sensitivity", verbose=verbose):
        w.prune_now(s)
        scores[w.name].append(evaluate())
        if s == values[-1]:
            w.prune_now(0.0)
    return SensitivityTable(
        metric=metric_name,
        baseline=baseline,
        sparsities=tuple(values),
        scores=scores,
        criterion=criterion,
    )


def choose_sparsity(table: SensitivityTable, *, max_loss: float = 0.01) -> dict:
    """Per layer, the highest sparsity whose metric is within `max_loss` of baseline.

    A sparsity counts only if every lower sparsity in the table also stays within the
    budget (sensitivity curves are noisy). Layers that tolerate none get 0.0.

    Args:
        table: from `sensitivity`.
        max_loss: allowed drop of the metric (absolute, e.g. 0.01 = one point of
            accuracy), >= 0.

    Returns:
        `{layer name: sparsity}`, ready for
        `prune(model, schedule={n: ConstantSparsity(s, 0) for n, s in ... if s > 0})`.
    """
    if not isinstance(table, SensitivityTable):
        raise ValueError(
            f"Expected a SensitivityTable from `sensitivity`. Received: {table!r}"
        )
    if isinstance(max_loss, bool) or not isinstance(max_loss, (int, float)):
        raise ValueError(f"Expected `max_loss` >= 0. Received: max_loss={max_loss!r}")
    if max_loss < 0:
        raise ValueError(f"Expected `max_loss` >= 0. Received: max_loss={max_loss}")
    chosen = {}
    for name, row in table.scores.items():
        best = 0.0
        for s, score in zip(table.sparsities, row, strict=True):
            if table.baseline - score > max_loss:
                break
            best = s
        chosen[name] = best
    return chosen


def plot_sensitivity(table: SensitivityTable, *, ax=None):
    """Plot the metric against sparsity, one line per layer; returns the Figure.

    Needs matplotlib (`pip install tfedge[plot]`). Does not save or show the figure.
    """
    try:
        import matplotlib.figure
    except ImportError as e:
        raise ImportError(
            "plot_sensitivity needs matplotlib: pip install 'tfedge[plot]'"
        ) from e
    if ax is None:
        fig = matplotlib.figure.Figure(figsize=(6, 4))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    xs = [0.0, *table.sparsities]
    for name, row in table.scores.items():
        ax.plot([100 * s for s in xs], [table.baseline, *row], marker="o", label=name)
    ax.axhline(table.baseline, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("parameters pruned away (%)")
    ax.set_ylabel(table.metric)
    ax.set_title(f"Sensitivity per layer ({table.criterion})")
    ax.legend()
    ax.grid(True, alpha=0.3)
    return fig
