"""Where the bytes of a .tflite file go, per layer, before and after packing.

Every byte of the file is in exactly one column of one row, so the rows sum to the file
size: per layer, its weight tensors' bytes split into

- `weights`: the coded value stream (codebook indices, or raw element bytes);
- `indices`: the coded sparse relative index (gap stream);
- `codebooks`: codebook entries with their count, and the fill value of a sparse layout;
- `huffman`: Huffman stream extras (block size, code-length table, block offsets);
- `headers`: payload headers (docs/FORMAT.md 2.1) and stream headers (2.2);

and one row "(flatbuffer)" whose `flatbuffer` column holds everything else: the
graph, tensor and operator tables, names, payload tensors and decode operators,
metadata and alignment padding.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

from tfedge import codecs
from tfedge.tflite import buffer_data, read, tensor_name

PARTS = ("weights", "indices", "codebooks", "huffman", "headers", "flatbuffer")
FLATBUFFER_ROW = "(flatbuffer)"
OTHER_ROW = "(other constants)"
_PAYLOAD_SUFFIX = "/tfedge_payload"
_FIXED_STREAM_HEADER = 10  # codec stream header: coding, bits, count, data size


@dataclass
class LayerBytes:
    """One layer's bytes (the sum of its weight buffers), before and after packing."""

    layer: str
    tensors: list[str] = field(default_factory=list)
    before: int = 0
    weights: int = 0
    indices: int = 0
    codebooks: int = 0
    huffman: int = 0
    headers: int = 0
    flatbuffer: int = 0

    @property
    def after(self) -> int:
        return sum(getattr(self, p) for p in PARTS)


@dataclass
class Breakdown:
    """Per-layer bytes of a model before and after; rows sum to the file sizes."""

    rows: list[LayerBytes]
    file_before: int
    file_after: int

    def row(self, layer: str) -> LayerBytes:
        for r in self.rows:
            if r.layer == layer:
                return r
        raise KeyError(layer)

    def to_dict(self) -> dict:
        rows = []
        for r in self.rows:
            d = asdict(r)
            d["after"] = r.after
            rows.append(d)
        return {
            "file_before": self.file_before,
            "file_after": self.file_after,
            "rows": rows,
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), indent=kwargs.pop("indent", 2), **kwargs)

    def table(self) -> str:
        """One row per layer (bytes before, after, and what the after is made of),
        then the file's totals."""
        from tfedge._table import Column, render

        columns = [Column("layer", max_width=24)] + [
            Column(t, ">")
            for t in (
                "before",
                "after",
                "weights",
                "indices",
                "codebook",
                "huffman",
                "headers",
                "flatbuf",
                "ratio",
            )
        ]
        rows = [
            [
                r.layer,
                r.before,
                r.after,
                r.weights,
                r.indices,
                r.codebooks,
                r.huffman,
                r.headers,
                r.flatbuffer,
                f"{r.before / r.after:.1f}x" if r.after else "-",
            ]
            for r in self.rows
        ]
        return render(
            columns,
            rows,
            footer=[
                f"file: {self.file_before} -> {self.file_after} bytes "
                f"({self.file_before / max(self.file_after, 1):.1f}x)",
                "columns: bytes before and after packing; the after split into "
                "weight values, sparse indices, codebooks, Huffman tables, payload "
                "headers and the flatbuffer's own bytes",
            ],
        )

    def __str__(self) -> str:
        return self.table()


def _payload_parts(payload) -> dict[str, int]:
    """Splits one payload's bytes into PARTS (exactly: they sum to its length)."""
    info = codecs.inspect_payload(payload)
    parts = dict.fromkeys(PARTS, 0)
    parts["headers"] = codecs.HEADER_SIZE
    if info.codebook is not None:
        parts["codebooks"] += info.codebook_bytes
    if info.fill is not None:
        parts["codebooks"] += len(info.fill)
    if info.rotation is not None:
        parts["headers"] += 1  # the byte-planes kind's rotation byte (version 3)
    streams = [("indices", info.gaps)] + [("weights", s) for s in info.value_streams]
    for key, stream in streams:
        if stream is None:
            continue
        parts[key] += stream.data_size
        parts["headers"] += _FIXED_STREAM_HEADER
        parts["huffman"] += stream.size - stream.data_size - _FIXED_STREAM_HEADER
    total = sum(parts.values())
    if total != payload.size:  # every byte is accounted for, or the format changed
        raise ValueError(
            f"payload of {payload.size} bytes split into {total}: the payload layout "
            "is not the one this report knows (docs/FORMAT.md)"
        )
    return parts


def _rows(model_bytes: bytes, layer_of: Callable[[str], str]) -> tuple[dict, int]:
    model = read(model_bytes)
    rows: dict[str, LayerBytes] = {}
    seen: set[int] = set()
    counted = 0
    for sg in model.subgraphs:
        for t in sg.tensors or []:
            if t.buffer <= 0 or t.buffer in seen:
                continue
            data = buffer_data(model, t.buffer)
            if not data.size:
                continue
            seen.add(t.buffer)
            name = tensor_name(t)
            if name.endswith(_PAYLOAD_SUFFIX):
                base = name[: -len(_PAYLOAD_SUFFIX)]
                parts = _payload_parts(data)
            else:
                base = name
                parts = dict.fromkeys(PARTS, 0)
                parts["weights"] = int(data.size)
            layer = layer_of(base)
            row = rows.setdefault(layer, LayerBytes(layer))
            row.tensors.append(base)
            for p, v in parts.items():
                setattr(row, p, getattr(row, p) + v)
            counted += int(data.size)
    return rows, len(model_bytes) - counted


def breakdown(
    packed: bytes,
    original: bytes,
    *,
    layers: Mapping[str, str] | Callable[[str], str] | None = None,
) -> Breakdown:
    """Per-layer bytes of `original` (.tflite) and of `packed` (its packed form).

    Args:
        packed: the packed .tflite bytes (`bytes(tfedge.Packed)`).
        original: the plain .tflite it was packed from.
        layers: tensor name -> layer name (a mapping or a function); tensors it does not
            name are grouped as "(other constants)". Default: one row per tensor.
    """
    if layers is None:
        layer_of = lambda name: name  # noqa: E731
    elif callable(layers):
        layer_of = layers
    else:
        table = dict(layers)
        layer_of = lambda name: table.get(name, OTHER_ROW)  # noqa: E731
    packed, original = bytes(packed), bytes(original)
    after, graph_after = _rows(packed, layer_of)
    before, graph_before = _rows(original, layer_of)
    names = list(dict.fromkeys([*before, *after]))
    rows = []
    for name in names:
        row = after.get(name, LayerBytes(name))
        if name in before:
            row.before = before[name].after
            if not row.tensors:
                row.tensors = before[name].tensors
        rows.append(row)
    graph = LayerBytes(FLATBUFFER_ROW, before=graph_before, flatbuffer=graph_after)
    rows.append(graph)
    rows.sort(key=lambda r: (r.layer in (FLATBUFFER_ROW, OTHER_ROW), -r.before))
    result = Breakdown(rows, len(original), len(packed))
    sums = sum(r.after for r in rows), sum(r.before for r in rows)
    if sums != (len(packed), len(original)):
        raise ValueError("internal error: the breakdown does not sum to the file sizes")
    return result
