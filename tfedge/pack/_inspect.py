"""`tfedge inspect`: what a .tflite file holds, packed or plain."""

from __future__ import annotations

import math
import textwrap
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from tfedge._table import MAX_WIDTH
from tfedge.tflite import (
    TYPES,
    buffer_data,
    decode_ops,
    opcode_name,
    packed_format_version,
    read,
    tensor_name,
)


@dataclass
class PayloadInfo:
    """One packed tensor: its coding (`encoding`, as in the compress report),
    codebook index width (`bits`, None for raw values) and packed bits per weight."""

    subgraph: int
    tensor: str
    layout: str
    value_kind: str
    element_type: str
    decoded_bytes: int
    payload_bytes: int
    shape: list[int] = field(default_factory=list)
    encoding: str = ""
    bits: int | None = None
    bits_per_weight: float = 0.0


@dataclass
class TensorSpec:
    """A model input or output: name, shape (-1 where the batch or another dimension
    is dynamic), element type, and its quantization (scale and zero point, one per
    channel for per-channel tensors; empty for float tensors)."""

    subgraph: int
    name: str
    shape: list[int]
    dtype: str
    scale: list[float] = field(default_factory=list)
    zero_point: list[int] = field(default_factory=list)

    def quantization(self) -> str:
        if not self.scale:
            return "-"
        if len(self.scale) == 1:
            return f"scale {self.scale[0]:.6g}, zero point {self.zero_point[0]}"
        return f"per channel ({len(self.scale)} scales)"


@dataclass
class ModelInfo:
    file_bytes: int
    format_version: int | None
    subgraphs: list[dict] = field(default_factory=list)
    operators: dict[str, int] = field(default_factory=dict)
    buffer_bytes: int = 0
    metadata: list[str] = field(default_factory=list)
    payloads: list[PayloadInfo] = field(default_factory=list)
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        from tfedge._table import Column, render
        from tfedge.pack._report import _short_coding

        lines = [
            f"file: {self.file_bytes} bytes; constant data: {self.buffer_bytes} bytes"
        ]
        if self.format_version is None:
            lines.append("packed: no (a plain .tflite)")
        else:
            lines.append(
                f"packed: tfedge format {self.format_version}, "
                f"{len(self.payloads)} TFEDGE_DECODE payloads"
            )
        for sg in self.subgraphs:
            lines.append(
                f"subgraph {sg['index']} {sg['name']!r}: {sg['tensors']} tensors, "
                f"{sg['operators']} operators"
            )
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(self.operators.items()))
        lines += textwrap.wrap(f"operators: {ops}", MAX_WIDTH, subsequent_indent="  ")
        if self.metadata:
            lines.append(f"metadata: {', '.join(self.metadata)}")
        io_columns = [
            Column("", max_width=6),
            Column("name", max_width=40),
            Column("shape"),
            Column("type"),
            Column("quantization"),
        ]
        io_rows = [
            [kind, t.name, _shape(t.shape), t.dtype, t.quantization()]
            for kind, specs in (("input", self.inputs), ("output", self.outputs))
            for t in specs
        ]
        lines += ["", render(io_columns, io_rows)]
        if self.payloads:
            columns = [
                Column("packed tensor", max_width=36),
                Column("shape", max_width=14),
                Column("type"),
                Column("coding", max_width=24),
                Column("bits", ">"),
                Column("bytes", ">"),
                Column("packed", ">"),
                Column("b/w", ">"),
            ]
            rows = [
                [
                    p.tensor,
                    _shape(p.shape),
                    p.element_type,
                    _short_coding(p.encoding),
                    p.bits or "-",
                    p.decoded_bytes,
                    p.payload_bytes,
                    f"{p.bits_per_weight:.2f}",
                ]
                for p in self.payloads
            ]
            footer = [
                "coding = layout/values/streams (cb = shared-weight codebook, ch-cb = "
                "one per output channel,",
                "planes = byte planes, huff = Huffman, rans = rANS); bits = codebook "
                "index width; b/w = packed bits per weight",
            ]
            lines += ["", render(columns, rows, footer=footer)]
        return "\n".join(lines)


def _shape(shape: list[int]) -> str:
    return "x".join("?" if d < 0 else str(d) for d in shape) or "scalar"


def _specs(model, si: int, indices) -> list[TensorSpec]:
    sg = model.subgraphs[si]
    out = []
    for i in np.asarray(indices if indices is not None else [], np.int64):
        t = sg.tensors[int(i)]
        sig = t.shapeSignature if t.shapeSignature is not None else t.shape
        shape = [int(d) for d in np.asarray(sig if sig is not None else [])]
        q = t.quantization
        scale = [] if q is None or q.scale is None else [float(x) for x in q.scale]
        zero = [] if q is None or q.zeroPoint is None else [int(x) for x in q.zeroPoint]
        info = TYPES.get(t.type)
        out.append(
            TensorSpec(
                subgraph=si,
                name=tensor_name(t),
                shape=shape,
                dtype=info.name if info else f"type{t.type}",
                scale=scale,
                zero_point=zero[: len(scale)],
            )
        )
    return out


def inspect_model(data: bytes) -> ModelInfo:
    """What a .tflite holds; raises FormatError for any file that is not a
    well-formed model (never another exception)."""
    from tfedge.tflite import foreign_errors_as_format_errors

    with foreign_errors_as_format_errors():
        return _inspect_model(data)


def _inspect_model(data: bytes) -> ModelInfo:
    from tfedge.codecs import inspect_payload

    model = read(data)
    info = ModelInfo(file_bytes=len(data), format_version=packed_format_version(model))
    counts: Counter[str] = Counter()
    for si, sg in enumerate(model.subgraphs):
        name = tensor_name(sg)  # a forged name need not be UTF-8
        info.subgraphs.append(
            {
                "index": si,
                "name": name,
                "tensors": len(sg.tensors or []),
                "operators": len(sg.operators or []),
            }
        )
        for op in sg.operators or []:
            counts[opcode_name(model, op.opcodeIndex)] += 1
    info.operators = dict(counts)
    info.buffer_bytes = int(
        sum(buffer_data(model, i).size for i in range(len(model.buffers)))
    )
    info.metadata = [tensor_name(m) for m in model.metadata or []]
    if model.subgraphs:
        info.inputs = _specs(model, 0, model.subgraphs[0].inputs)
        info.outputs = _specs(model, 0, model.subgraphs[0].outputs)
    for si, _oi, p_index, w_index in decode_ops(model):
        sg = model.subgraphs[si]
        payload = bytes(buffer_data(model, sg.tensors[p_index].buffer))
        weight = sg.tensors[w_index]
        parts = inspect_payload(payload, name=tensor_name(weight))
        h = parts.header
        count = int(h.decoded_size) // max(int(h.element_size), 1)
        info.payloads.append(
            PayloadInfo(
                subgraph=si,
                tensor=tensor_name(weight),
                layout=h.layout,
                value_kind=h.value_kind,
                element_type=TYPES[h.element_type].name
                if h.element_type in TYPES
                else str(h.element_type),
                decoded_bytes=int(h.decoded_size),
                payload_bytes=len(payload),
                shape=[
                    int(d)
                    for d in np.asarray(
                        weight.shape if weight.shape is not None else []
                    )
                ],
                encoding=parts.encoding,
                bits=math.ceil(math.log2(parts.k)) if parts.k and parts.k > 1 else None,
                bits_per_weight=8.0 * len(payload) / max(count, 1),
            )
        )
    return info
