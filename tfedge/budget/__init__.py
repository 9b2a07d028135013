"""tfedge.budget: plan a model into a byte budget and report where the bytes go.

* `plan(model, budget_bytes, eval_data, ...) -> Plan`: per-layer sparsity, sharing bits
  and ternary coding (with `ecsq=True`, entropy-constrained quantization too) chosen
  from measured per-layer sensitivity and exact packed sizes;
  `Plan.apply()` returns the `tfedge.Packed` model, of exactly `Plan.predicted_bytes`.
  `analyze(model, eval_data) -> Analysis` measures once; `Analysis.plan(budget)` then
  plans any number of budgets.
* `floor_bytes(model)`: the smallest packed size the planner can reach.
* `breakdown(packed, original, layers=...) -> Breakdown`: per-layer bytes before and
  after, split into weights, indices, codebooks, Huffman tables, headers and flatbuffer
  overhead; `plot_breakdown` and `plot_tradeoff` draw it (matplotlib).
* `parse_size("200KB")`: byte counts from strings with units.

* `SizeBudget`: the training callback that projects the packed size each epoch (also
  reachable as `tfedge.keras.SizeBudget`).
"""

from __future__ import annotations

from tfedge.budget._analyze import analyze, floor_bytes, plan
from tfedge.budget._options import (
    DEFAULT_BITS,
    DEFAULT_ECSQ_ERRORS,
    DEFAULT_SPARSITIES,
    Option,
    transform,
)
from tfedge.budget._plan import LayerChoice, Plan
from tfedge.budget._plot import plot_breakdown, plot_tradeoff
from tfedge.budget._report import PARTS, Breakdown, LayerBytes, breakdown
from tfedge.budget._search import Analysis
from tfedge.budget._size import packed_size
from tfedge.budget._units import parse_size

__all__ = [
    "DEFAULT_BITS",
    "DEFAULT_ECSQ_ERRORS",
    "DEFAULT_SPARSITIES",
    "PARTS",
    "Analysis",
    "Breakdown",
    "LayerBytes",
    "LayerChoice",
    "Option",
    "Plan",
    "SizeBudget",
    "analyze",
    "breakdown",
    "floor_bytes",
    "packed_size",
    "parse_size",
    "plan",
    "plot_breakdown",
    "plot_tradeoff",
    "transform",
]


def __getattr__(name: str):
    # The callback imports Keras: resolved on first use, so that planning a .tflite
    # does not import Keras.
    if name == "SizeBudget":
        from tfedge.budget._callback import SizeBudget

        globals()[name] = SizeBudget
        return SizeBudget
    raise AttributeError(f"module 'tfedge.budget' has no attribute {name!r}")
