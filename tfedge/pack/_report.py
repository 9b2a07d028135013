"""What `compress` did, per tensor and in total: as dataclasses, a text table and
JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class TensorReport:
    """One weight buffer of the model (tensors sharing a buffer share its row).

    `encoding` is "raw" when the tensor was carried through unchanged (`reason` says
    why), else "<layout>/<values>/<coding>", e.g. "sparse/codebook/huffman". `bits` is
    the codebook index width (None for raw values). `sparsity` is the fraction of
    elements that are zero. `entropy_bytes` is the Shannon floor of the coded symbol
    streams plus the codebook. `weight_error` is ||w - w'|| / ||w|| (0 when lossless).
    """

    subgraph: int
    tensor: int
    name: str
    shape: list[int]
    dtype: str
    original_bytes: int
    encoding: str = "raw"
    bits: int | None = None
    sparsity: float = 0.0
    packed_bytes: int = 0
    entropy_bytes: float = 0.0
    weight_error: float = 0.0
    reason: str = ""

    @property
    def packed(self) -> bool:
        return self.encoding != "raw"

    @property
    def bits_per_weight(self) -> float:
        n = 1
        for d in self.shape:
            n *= max(int(d), 1)
        size = self.packed_bytes if self.packed else self.original_bytes
        return 8.0 * size / max(n, 1)


@dataclass
class Report:
    """The whole conversion: sizes, the drift the tolerance allowed, and what was backed
    off."""

    original_bytes: int
    packed_bytes: int
    lossless: bool
    tolerance: float | None
    drift: float | None
    tensors: list[TensorReport] = field(default_factory=list)
    backed_off: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    format_version: int = 1
    tflm_scratch_bytes: int | None = None  # target="tflm": TFLM_DECODE scratch memory

    @property
    def ratio(self) -> float:
        return self.original_bytes / max(self.packed_bytes, 1)

    @property
    def weight_bytes(self) -> tuple[int, int]:
        """(original, packed) bytes of the weight buffers alone."""
        before = sum(t.original_bytes for t in self.tensors)
        after = sum(
            t.packed_bytes if t.packed else t.original_bytes for t in self.tensors
        )
        return before, after

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ratio"] = self.ratio
        wb, wa = self.weight_bytes
        d["weight_bytes_before"], d["weight_bytes_after"] = wb, wa
        for row, t in zip(d["tensors"], self.tensors, strict=True):
            row["bits_per_weight"] = t.bits_per_weight
        return d

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), indent=kwargs.pop("indent", 2), **kwargs)

    def table(self) -> str:
        """A fixed-width text table, one row per weight buffer, then the totals."""
        head = (
            f"{'tensor':<34} {'shape':<16} {'dtype':<8} {'bytes':>10} "
            f"{'encoding':<24} {'bits':>4} {'sparse':>6} {'packed':>9} {'floor':>9} "
            f"{'b/w':>5} {'w.err':>7}"
        )
        lines = [head, "-" * len(head)]
        for t in self.tensors:
            name = t.name if len(t.name) <= 34 else "…" + t.name[-33:]
            shape = "x".join(str(d) for d in t.shape) or "scalar"
            lines.append(
                f"{name:<34} {shape[:16]:<16} {t.dtype:<8} {t.original_bytes:>10} "
                f"{t.encoding:<24} {t.bits if t.bits else '-':>4} {t.sparsity:>6.1%} "
                f"{(t.packed_bytes if t.packed else t.original_bytes):>9} "
                f"{t.entropy_bytes:>9.0f} {t.bits_per_weight:>5.2f} "
                f"{t.weight_error:>7.4f}"
            )
            if t.reason:
                lines.append(f"{'':<4}↳ {t.reason}")
        wb, wa = self.weight_bytes
        lines.append("-" * len(head))
        lines.append(
            f"weights: {wb} -> {wa} bytes ({wb / max(wa, 1):.2f}x); file: "
            f"{self.original_bytes} -> {self.packed_bytes} bytes ({self.ratio:.2f}x)"
        )
        mode = "lossless" if self.lossless else f"lossy, tolerance {self.tolerance:g}"
        drift = "n/a" if self.drift is None else f"{self.drift:.3g}"
        lines.append(f"mode: {mode}; measured output drift: {drift}")
        for b in self.backed_off:
            lines.append(f"backed off: {b}")
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
