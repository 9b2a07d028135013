"""The planner's result: `Plan`, one `LayerChoice` per weight tensor."""

from __future__ import annotations

import dataclasses
import json

from tfedge.budget._options import pack_lossless
from tfedge.budget._units import format_size


@dataclasses.dataclass
class LayerChoice:
    """The plan for one weight tensor.

    Attributes:
        tensor: the .tflite tensor name.
        layer: the Keras layer it belongs to (when known).
        shape: the tensor's shape.
        sparsity, coding, bits, ternary: the chosen option (coding "float", "<b>-bit",
            "ternary", "ecsq <e>" for entropy-constrained quantization aimed at
            relative weight error e, or "lossless" for tensors the planner does not
            tune).
        bytes_before: the tensor's raw bytes.
        bytes_after: its exact payload bytes (raw bytes when it is not packed).
        loss: metric drop measured with this tensor alone changed.
        weight_error: ||w - w'|| / ||w||.
    """

    tensor: str
    layer: str
    shape: list[int]
    sparsity: float
    coding: str
    bits: int | None
    ternary: bool
    bytes_before: int
    bytes_after: int
    loss: float
    weight_error: float


@dataclasses.dataclass
class Plan:
    """A planned compression of one model into a byte budget.

    Attributes:
        budget_bytes: the budget.
        predicted_bytes: the exact size of the packed file (`len(plan.apply())`).
        floor_bytes: the smallest file the options reach (every kernel at its smallest
            option; graph, biases and other constants as they pack losslessly).
        original_bytes: the float .tflite's size.
        metric: the metric's name ("accuracy", or "agreement" with the float model's
            top-1 on generated inputs when no eval data was given).
        baseline: the metric of the float model.
        measured: the metric of the planned model, all choices together, measured.
        accuracy_cost: baseline - measured.
        choices: one `LayerChoice` per weight tensor.
        tradeoff: measured points `{"bytes", "metric", "predicted_loss"}` of the
            size/metric curve (cheapest first), the plan's own point among them.
    """

    budget_bytes: int
    predicted_bytes: int
    floor_bytes: int
    original_bytes: int
    metric: str
    baseline: float
    measured: float
    choices: list[LayerChoice]
    tradeoff: list[dict]
    _tflite: bytes = dataclasses.field(repr=False, default=b"")
    _original: bytes = dataclasses.field(repr=False, default=b"")
    _min_bytes: int = dataclasses.field(repr=False, default=256)

    @property
    def accuracy_cost(self) -> float:
        return self.baseline - self.measured

    @property
    def tflite(self) -> bytes:
        """The planned model as a plain .tflite (pruned, shared or ternary weights)."""
        return self._tflite

    def apply(self):
        """Packs the planned model: a `tfedge.Packed` of exactly `predicted_bytes`."""
        return pack_lossless(self._tflite, self._min_bytes)

    def layers(self) -> dict[str, str]:
        """Tensor name -> layer name, for `tfedge.budget.breakdown`."""
        return {c.tensor: c.layer for c in self.choices}

    def breakdown(self, packed=None):
        """Per-layer bytes before and after (`tfedge.budget.Breakdown`)."""
        from tfedge.budget._report import breakdown

        packed = self.apply() if packed is None else packed
        return breakdown(bytes(packed), self._original, layers=self.layers())

    def to_dict(self) -> dict:
        d = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if not f.name.startswith("_")
        }
        d["choices"] = [dataclasses.asdict(c) for c in self.choices]
        d["accuracy_cost"] = self.accuracy_cost
        return d

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), indent=kwargs.pop("indent", 2), **kwargs)

    def table(self) -> str:
        """The choices, one row per weight tensor, then the totals."""
        from tfedge._table import Column, render

        columns = [
            Column("layer", max_width=16),
            Column("tensor", max_width=30),
            Column("coding"),
            Column("pruned", ">"),
            Column("before", ">"),
            Column("after", ">"),
            Column("loss", ">"),
            Column("w.err", ">"),
        ]
        rows = [
            [
                c.layer,
                c.tensor.split(";")[0],
                c.coding,
                f"{c.sparsity:.0%}",
                c.bytes_before,
                c.bytes_after,
                f"{c.loss:.4f}",
                f"{c.weight_error:.3f}",
            ]
            for c in self.choices
        ]
        return render(
            columns,
            rows,
            footer=[
                f"budget {format_size(self.budget_bytes)}; packed file "
                f"{format_size(self.predicted_bytes)} (floor {self.floor_bytes:,}, "
                f"float {self.original_bytes:,})",
                f"{self.metric}: {self.baseline:.4f} float -> {self.measured:.4f} "
                f"planned (cost {self.accuracy_cost:+.4f})",
                "columns: loss = the metric's measured drop with this layer alone so "
                "coded; w.err = ||w - w'|| / ||w||",
            ],
        )

    def __str__(self) -> str:
        return self.table()
