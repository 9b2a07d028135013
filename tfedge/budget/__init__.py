"""tfedge.budget: plan a model into a byte budget and report where the bytes go.

* `plan(model, budget_bytes, eval_data, ...) -> Plan`: per-layer sparsity, sharing bits
  and ternary coding chosen from measured per-layer sensitivity and exact packed sizes;
  `Plan.apply()` returns the `tfedge.Packed` model, of exactly `Plan.predicted_bytes`.
  `analyze(model, eval_data) -> Analysis` measures once; `Analysis.plan(budget)` then
  plans any number of budgets.
* `floor_bytes(model)`: the smallest packed size the planner can reach.
* `breakdown(packed, original, layers=...) -> Breakdown`: per-layer bytes before and
  after, split into weights, indices, codebooks, Huffman tables, headers and flatbuffer
  overhead; `plot_breakdown` and `plot_tradeoff` draw it (matplotlib).
* `parse_size("200KB")`: byte counts from strings with units.

The training callback that projects the packed size each epoch is
`tfedge.keras.SizeBudget`.
"""

from __future__ import annotations

from tfedge.budget._plan import (
    DEFAULT_BITS,
    DEFAULT_SPARSITIES,
    Analysis,
    LayerChoice,
    Option,
    Plan,
    analyze,
    floor_bytes,
    plan,
    transform,
)
from tfedge.budget._plot import plot_breakdown, plot_tradeoff
from tfedge.budget._report import PARTS, Breakdown, LayerBytes, breakdown
from tfedge.budget._size import packed_size
from tfedge.budget._units import parse_size

__all__ = [
    "DEFAULT_BITS",
    "DEFAULT_SPARSITIES",
    "PARTS",
    "Analysis",
    "Breakdown",
    "LayerBytes",
    "LayerChoice",
    "Option",
    "Plan",
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
