"""What the result reports: each stage's size and accuracy in the paper's accounting,
and one row per packed tensor read back from its payload."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from tfedge._deep_compress._result import STAGE_NAMES, LayerRow, Stage
from tfedge._deep_compress._training import sublayers
from tfedge.errors import PackError

__all__ = ["layer_rows", "stage_rows", "weight_bytes"]


def stage_rows(
    snapshots, packed, packed_accuracy: float, float_weight_bytes: int
) -> list[Stage]:
    """One `Stage` per entry of `STAGE_NAMES`: the Keras stages' `snapshots` ("float",
    "pruned", "shared") and the `packed` file with its measured accuracy; the weight
    ratios are against `float_weight_bytes`.

    "float" is the float .tflite; "pruned" and "shared" are their .tflite files with
    the finally packed tensors in fixed-width payloads (`_stage_bytes`).
    """
    report = packed.report
    final = snapshots["shared"].tflite
    sizes = {
        "float": len(snapshots["float"].tflite),
        "pruned": _stage_bytes(snapshots["pruned"].tflite, final, packed, report),
        "shared": _stage_bytes(final, final, packed, report),
        "tfedge": len(packed),
    }
    accuracies = {name: s.accuracy for name, s in snapshots.items()}
    accuracies["tfedge"] = packed_accuracy
    return [
        Stage(
            name,
            accuracies[name],
            sizes[name],
            sizes["float"] / sizes[name],
            float_weight_bytes / sizes[name],
        )
        for name in STAGE_NAMES
    ]


def layer_rows(packed, model, shared_bits: dict[str, int]) -> list[LayerRow]:
    """One `LayerRow` per packed tensor of `packed`, the file of the final `model`
    whose layers were shared with `shared_bits` (layer name: bits)."""
    return _payload_rows(
        bytes(packed),
        packed.report,
        [lyr.name for lyr in sublayers(model)],
        {
            name: (b, int(np.prod(model.get_layer(name).kernel.shape)))
            for name, b in shared_bits.items()
        },
    )


def weight_bytes(model) -> int:
    """The model's weights as float32: 4 bytes per parameter (the paper's base)."""
    return 4 * int(sum(int(np.prod(w.shape)) for w in model.weights))


def _fixed_width_bytes(values: np.ndarray, ttype: int) -> int:
    """Smallest payload of `values` with fixed-width streams only (no Huffman)."""
    from tfedge import codecs

    n = values.size
    size = values.dtype.itemsize
    common = dict(element_type=ttype, element_size=size, count=n)
    fixed = dict(value_coding="fixed", gap_coding="fixed")
    sizes = [
        len(
            codecs.encode_payload(
                layout="dense", value_kind="raw", elements=values, **common, **fixed
            )
        )
    ]
    u = values.view(np.dtype(f"<u{size}"))
    uniq, inverse = np.unique(u, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse, minlength=uniq.size)
    mode = int(np.argmax(counts))
    sparse_ok = counts[mode] / max(n, 1) >= 0.05
    if sparse_ok:
        sizes.append(
            len(
                codecs.encode_payload(
                    layout="sparse",
                    value_kind="raw",
                    elements=values,
                    fill=uniq[mode : mode + 1].view(values.dtype),
                    **common,
                    **fixed,
                )
            )
        )
    if uniq.size <= codecs.MAX_CODEBOOK:
        book = dict(
            value_kind="codebook", codebook=uniq.view(values.dtype), indices=inverse
        )
        sizes.append(
            len(codecs.encode_payload(layout="dense", **book, **common, **fixed))
        )
        if sparse_ok:
            sizes.append(
                len(
                    codecs.encode_payload(
                        layout="sparse", fill=mode, **book, **common, **fixed
                    )
                )
            )
    return min(sizes)


def _payload_rows(
    packed_bytes: bytes,
    report,
    layer_names: Sequence[str],
    shared_bits: dict[str, tuple[int, int]],
) -> list[LayerRow]:
    """One `LayerRow` per packed tensor, read from the payloads themselves.

    `shared_bits` maps a layer name to (sharing bits, kernel size): a tensor of that
    layer with the kernel's size is its kernel (a bias is never shared).
    """
    from tfedge import codecs
    from tfedge.tflite import buffer_data, read, tensor_name

    model = read(packed_bytes)
    payloads = {}
    for sg in model.subgraphs:
        for t in sg.tensors or []:
            name = tensor_name(t)
            if name.endswith("/tfedge_payload"):
                payloads[name[: -len("/tfedge_payload")]] = buffer_data(model, t.buffer)
    rows = []
    for t in report.tensors:
        if not t.packed or t.name not in payloads:
            continue
        payload = bytes(payloads[t.name])
        info = codecs.inspect_payload(payload)
        n = int(np.prod(t.shape)) if t.shape else 1
        index_bits = coded_index = index_entropy = value_entropy = None
        if info.gaps is not None:
            index_bits = info.gaps.bits
            coded_index = 8.0 * info.gaps.size / max(info.gaps.count, 1)
            index_entropy = _stream_entropy(payload, info.gaps, t.name)
        values = info.values
        stored = (
            values.count
            if info.codebook is not None or info.planes
            else values.count // info.header.element_size
        )
        if info.codebook is not None:
            value_entropy = _stream_entropy(payload, values, t.name)
        nonzero = n * (1.0 - t.sparsity)
        value_bytes = sum(s.size for s in info.value_streams)
        layer = _layer_of(t.name, layer_names)
        rows.append(
            LayerRow(
                tensor=t.name,
                layer=layer,
                shape=tuple(t.shape),
                weights=n,
                kept=1.0 - t.sparsity,
                shared_bits=(
                    shared_bits[layer][0]
                    if layer in shared_bits and shared_bits[layer][1] == n
                    else None
                ),
                bits=t.bits,
                value_bits=8.0 * value_bytes / max(stored, 1),
                index_bits=index_bits,
                coded_index_bits=coded_index,
                encoding=t.encoding,
                packed_bytes=len(payload),
                value_entropy=value_entropy,
                index_entropy=index_entropy,
                nonzero_bits=8.0 * len(payload) / nonzero if nonzero else None,
            )
        )
    return rows


def _stream_entropy(payload: bytes, stream, name: str) -> float:
    """Entropy, bits per symbol, of a payload's stream (decoded for the report)."""
    from tfedge import codecs

    symbols, _ = codecs.decode_stream(payload, stream.offset, name=name)
    return codecs.entropy_bits(symbols)


def _layer_of(tensor: str, layer_names: Sequence[str]) -> str:
    """The Keras layer named in a converted tensor's name ("seq_1/fc1_1/MatMul": fc1).

    The converter names tensors by the traced layer paths, where Keras may have added
    a "_<n>" suffix to keep names unique.
    """
    for part in re.split(r"[/;]", tensor):
        base = re.sub(r"_\d+$", "", part)
        for candidate in (part, base):
            if candidate in layer_names:
                return candidate
    return ""


def _stage_bytes(stage_tflite: bytes, final_tflite: bytes, packed, report) -> int:
    """The stage's file with the finally packed tensors in fixed-width sparse payloads.

    The graph overhead of packing (payload tensors, decode operators, metadata) is taken
    from the final packed file, so the stages differ only in how weights are coded.
    """
    from tfedge.tflite import TYPES, buffer_data, read

    stage = read(stage_tflite)
    final = read(final_tflite)
    rows = [t for t in report.tensors if t.packed]
    overhead = len(packed) - (
        report.original_bytes
        - sum(t.original_bytes for t in rows)
        + sum(t.packed_bytes for t in rows)
    )
    total = len(stage_tflite) - sum(t.original_bytes for t in rows) + overhead
    for t in rows:
        ours = stage.subgraphs[t.subgraph].tensors[t.tensor]
        theirs = final.subgraphs[t.subgraph].tensors[t.tensor]
        if list(np.asarray(ours.shape)) != list(np.asarray(theirs.shape)) or (
            ours.type != theirs.type
        ):
            raise PackError(
                f"tensor {t.name!r}: the stage's .tflite does not have the final "
                "model's graph (a tfedge bug; please report it)"
            )
        values = np.ascontiguousarray(buffer_data(stage, ours.buffer)).view(
            TYPES[ours.type].dtype
        )
        total += _fixed_width_bytes(values.reshape(-1), ours.type)
    return int(total)
