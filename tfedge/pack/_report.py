"""What `compress` did, per tensor and in total: as dataclasses, a text table and
JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

# The text tables' columns, explained once under each table.
LEGEND = (
    "columns: bytes before, packed after; coding = layout/values/streams: dense or "
    "sparse; raw, cb (a shared-weight codebook), ch-cb (one per output channel) or "
    "planes (byte planes); fixed-width, huff (Huffman) or rans (rANS) streams (x*3: "
    "three x streams); bits = "
    "codebook index width; b/w = packed "
    "bits per weight; w.err = ||w - w'|| / ||w||, the relative weight error"
)
_SHORT_TYPES = {
    "FLOAT32": "f32",
    "FLOAT16": "f16",
    "INT8": "i8",
    "UINT8": "u8",
    "INT16": "i16",
    "INT32": "i32",
    "INT64": "i64",
}


@dataclass
class TensorReport:
    """One weight buffer of the model (tensors sharing a buffer share its row).

    `encoding` is "raw" when the tensor was carried through unchanged (`reason` says
    why), else "<layout>/<values>/<coding>", e.g. "sparse/codebook/huffman". `bits` is
    the codebook index width (None for raw values). `sparsity` is the fraction of
    elements that are zero. `entropy_bytes` is the Shannon floor of the coded symbol
    streams plus the codebook. `weight_error` is ||w - w'|| / ||w|| (0 when lossless).
    `quantizer` names the lossy coding chosen ("5 bits", "4 bits/channel" for k-means
    codebooks, "ecsq 0.045" for the ECSQ point aimed at that weight error, "12 bits
    grid" for the uniform power-of-two grid of that width; "" when exact).
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
    keras_name: str = ""  # "fc1.kernel" when the source was a Keras model
    quantizer: str = ""

    @property
    def label(self) -> str:
        """The Keras layer and weight when known, else the TFLite tensor's name (its
        first part, when the converter joined several with ';')."""
        return self.keras_name or self.name.split(";")[0]

    @property
    def bytes_after(self) -> int:
        return self.packed_bytes if self.packed else self.original_bytes

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
    # `drift` is the written file's drift on the search samples; `held_out_drift` on
    # samples the search never saw (None when there were none); `search_drift` what
    # the search measured for the same values (equal by construction).
    held_out_drift: float | None = None
    search_drift: float | None = None
    # Wall-clock and CPU seconds of each stage (reading, encoding, samples,
    # sensitivity, search, writing, final check).
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_cpu_seconds: dict[str, float] = field(default_factory=dict)

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
        """Every weight buffer, one row each, then the totals and the legend."""
        return self._text(self.tensors, every=True)

    def summary(self, *, largest: int = 5) -> str:
        """The totals, the `largest` tensors by packed size, and what was backed off or
        left raw and why (what `tfedge compress` prints without --verbose)."""
        order = sorted(self.tensors, key=lambda t: -t.bytes_after)
        return self._text(order[:largest], every=False)

    def _text(self, rows: list[TensorReport], *, every: bool) -> str:
        from tfedge._table import Column, render

        columns = [
            Column("tensor", max_width=30),
            Column("shape", max_width=14),
            Column("type"),
            Column("bytes", ">"),
            Column("packed", ">"),
            Column("coding", max_width=24),
            Column("bits", ">"),
            Column("b/w", ">"),
            Column("w.err", ">"),
        ]
        cells = [
            [
                t.label,
                "x".join(str(d) for d in t.shape) or "scalar",
                _SHORT_TYPES.get(t.dtype, t.dtype.lower()),
                t.original_bytes,
                t.bytes_after,
                _short_coding(t.encoding),
                t.bits or "-",
                f"{t.bits_per_weight:.2f}",
                f"{t.weight_error:.4f}" if t.packed else "-",
            ]
            for t in rows
        ]
        wb, wa = self.weight_bytes
        mode = "lossless" if self.lossless else f"lossy, tolerance {self.tolerance:g}"
        drift = "not measured" if self.drift is None else f"{self.drift:.3g}"
        if self.held_out_drift is not None:
            drift += f" (held-out samples: {self.held_out_drift:.3g})"
        footer = [
            f"weights: {wb} -> {wa} bytes ({wb / max(wa, 1):.2f}x); file: "
            f"{self.original_bytes} -> {self.packed_bytes} bytes ({self.ratio:.2f}x)",
            f"mode: {mode}; measured output drift: {drift}",
        ]
        if self.stage_seconds:
            stages = ", ".join(f"{k} {v:.1f}" for k, v in self.stage_seconds.items())
            footer.append(f"seconds: {stages}")
        if not every and len(rows) < len(self.tensors):
            footer.insert(
                0,
                f"(the {len(rows)} largest of {len(self.tensors)} weight tensors; "
                "--verbose or .table() lists all)",
            )
        names = {t.name: t.label for t in self.tensors if t.label != t.name}
        footer += [f"backed off: {_relabel(b, names)}" for b in self.backed_off]
        raw = [t for t in self.tensors if t.reason]
        if every:
            footer += [f"kept: {t.label}: {t.reason}" for t in raw]
        elif raw:
            reasons: dict[str, list[str]] = {}
            for t in raw:
                reasons.setdefault(_reason_kind(t.reason), []).append(t.label)
            for why, labels in reasons.items():
                shown = ", ".join(labels[:3]) + (
                    f" and {len(labels) - 3} more" if len(labels) > 3 else ""
                )
                footer.append(f"kept as is ({why}): {shown}")
        footer += [f"note: {_relabel(n, names)}" for n in self.notes]
        footer.append(LEGEND)
        return render(columns, cells, footer=footer)

    def __str__(self) -> str:
        return self.table()


def _short_coding(encoding: str) -> str:
    short = (
        encoding.replace("channel_codebook", "ch-cb")
        .replace("codebook", "cb")
        .replace("huffman", "huff")
    )
    # Byte planes list one coding per plane: runs of one coding as "fixed*3".
    head, _, streams = short.rpartition("/")
    runs: list[list] = []
    for coding in streams.split("+"):
        if runs and runs[-1][0] == coding:
            runs[-1][1] += 1
        else:
            runs.append([coding, 1])
    joined = "+".join(c if n == 1 else f"{c}*{n}" for c, n in runs)
    return f"{head}/{joined}" if head else joined


def _relabel(text: str, names: dict[str, str]) -> str:
    """Backed-off lines and notes name TFLite tensors: use the rows' labels."""
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, names[name])
    return text


def _reason_kind(reason: str) -> str:
    """A reason without its per-tensor details (after the first colon), so that
    like reasons group: "no gain: best payload 96 bytes ..." -> "no gain"."""
    return reason.split(":")[0]
