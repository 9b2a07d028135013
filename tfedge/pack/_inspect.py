"""`tfedge inspect`: what a .tflite file holds, packed or plain."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from tfedge.pack._graph import decode_ops, packed_format_version
from tfedge.tflite import TYPES, buffer_data, opcode_name, read, tensor_name


@dataclass
class PayloadInfo:
    subgraph: int
    tensor: str
    layout: str
    value_kind: str
    element_type: str
    decoded_bytes: int
    payload_bytes: int


@dataclass
class ModelInfo:
    file_bytes: int
    format_version: int | None
    subgraphs: list[dict] = field(default_factory=list)
    operators: dict[str, int] = field(default_factory=dict)
    buffer_bytes: int = 0
    metadata: list[str] = field(default_factory=list)
    payloads: list[PayloadInfo] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
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
        lines.append(f"operators: {ops}")
        if self.metadata:
            lines.append(f"metadata: {', '.join(self.metadata)}")
        for p in self.payloads:
            lines.append(
                f"  {p.tensor}: {p.element_type} {p.layout}/{p.value_kind}, "
                f"{p.payload_bytes} -> {p.decoded_bytes} bytes"
            )
        return "\n".join(lines)


def inspect_model(data: bytes) -> ModelInfo:
    from tfedge.codecs import read_header

    model = read(data)
    info = ModelInfo(file_bytes=len(data), format_version=packed_format_version(model))
    counts: Counter[str] = Counter()
    for si, sg in enumerate(model.subgraphs):
        name = sg.name.decode() if isinstance(sg.name, bytes) else (sg.name or "")
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
    for si, _oi, p_index, w_index in decode_ops(model):
        sg = model.subgraphs[si]
        payload = bytes(buffer_data(model, sg.tensors[p_index].buffer))
        weight = sg.tensors[w_index]
        h = read_header(payload, name=tensor_name(weight))
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
            )
        )
    return info
