"""Model surgery for the packed format (docs/FORMAT.md section 1), both ways.

`insert_decoders` turns chosen weight buffers into payload tensors plus TFEDGE_DECODE
ops and writes the `tfedge` metadata entry (the format version); `remove_decoders`
undoes it given the decoded bytes; `decode_ops` and `packed_format_version` read a
packed graph. `tfedge.pack` writes with it, `tfedge.runtime` reads with it. No policy,
no codecs here.
"""

from __future__ import annotations

import json

import numpy as np

from tfedge.errors import FormatError
from tfedge.tflite._densify import (
    DENSIFY_FORMAT_VERSION,
    densify_op,
    densify_options,
    densify_target,
    strip_index,
)
from tfedge.tflite._model import (
    aligned_buffer_class,
    buffer_data,
    opcode_index,
    tensor_name,
)
from tfedge.tflite._packed_checks import metadata_format_version
from tfedge.tflite._schema import schema

DECODE_OP = "TFEDGE_DECODE"
METADATA_NAME = "tfedge"
PAYLOAD_SUFFIX = "/tfedge_payload"


def new_buffer(data: np.ndarray | bytes | None):
    """A buffer object holding `data` (None: empty), written 16-byte aligned."""
    b = aligned_buffer_class()()
    b.data = None if data is None else np.frombuffer(bytes(data), np.uint8)
    b.offset = b.size = 0
    return b


def insert_decoders(model, payloads: dict[int, bytes], producer: str) -> int:
    """Replace each buffer in `payloads` (buffer index -> payload) by decode
    operators; returns the format version written to the metadata.

    A buffer of a DENSIFY-sparse tensor S (tfedge.tflite._densify) has a payload of
    the dense tensor D: its DENSIFY operator becomes, in place, a decoder of D that
    names S (docs/FORMAT.md section 1.1)."""
    s = schema()
    op_index = opcode_index(model, DECODE_OP)
    payload_buffer: dict[int, int] = {}
    for b_index, payload in payloads.items():
        model.buffers.append(new_buffer(payload))
        payload_buffer[b_index] = len(model.buffers) - 1
    densified = False
    for sg in model.subgraphs:
        for oi, op in enumerate(list(sg.operators or [])):
            code = model.operatorCodes[op.opcodeIndex]
            if (
                max(code.builtinCode, code.deprecatedBuiltinCode)
                != s.BuiltinOperator.DENSIFY
            ):
                continue
            s_index = int(np.asarray(op.inputs).reshape(-1)[0])
            d_index = int(np.asarray(op.outputs).reshape(-1)[0])
            sparse_t = sg.tensors[s_index]
            if sparse_t.sparsity is None or sparse_t.buffer not in payload_buffer:
                continue
            p = s.TensorT()
            p.name = tensor_name(sg.tensors[d_index]) + PAYLOAD_SUFFIX
            p.type = s.TensorType.UINT8
            p.shape = np.asarray([len(payloads[sparse_t.buffer])], np.int32)
            p.buffer = payload_buffer[sparse_t.buffer]
            sg.tensors.append(p)
            decoder = densify_op(op_index, len(sg.tensors) - 1, d_index)
            decoder.customOptions = densify_options(s_index)
            sg.operators[oi] = decoder
            strip_index(sparse_t)
            densified = True
    for sg in model.subgraphs:
        decoders = []
        for t_index, t in enumerate(list(sg.tensors)):
            if t.buffer not in payload_buffer or t.sparsity is not None:
                continue
            p = s.TensorT()
            p.name = tensor_name(t) + PAYLOAD_SUFFIX
            p.type = s.TensorType.UINT8
            p.shape = np.asarray([len(payloads[t.buffer])], np.int32)
            p.buffer = payload_buffer[t.buffer]
            sg.tensors.append(p)
            op = s.OperatorT()
            op.opcodeIndex = op_index
            op.inputs = np.asarray([len(sg.tensors) - 1], np.int32)
            op.outputs = np.asarray([t_index], np.int32)
            decoders.append(op)
        sg.operators = decoders + list(sg.operators or [])
    for b_index in payloads:
        model.buffers[b_index].data = None
    # The file's version is its newest payload's (byte 4), so that files without any
    # version-2 feature stay readable by version-1 readers (docs/FORMAT.md, section 1).
    version = max((payload[4] for payload in payloads.values()), default=1)
    if densified:
        version = max(version, DENSIFY_FORMAT_VERSION)
    meta_buffer = json.dumps(
        {"format_version": int(version), "producer": producer}, sort_keys=True
    ).encode()
    model.buffers.append(new_buffer(meta_buffer))
    m = s.MetadataT()
    m.name = METADATA_NAME
    m.buffer = len(model.buffers) - 1
    model.metadata = list(model.metadata or []) + [m]
    return int(version)


def packed_format_version(model) -> int | None:
    """The `tfedge` metadata's format version, or None for a model tfedge did not
    pack (the first entry of that name counts; see `metadata_format_version` for what
    it must hold)."""
    for m in model.metadata or []:
        if tensor_name(m) == METADATA_NAME:
            return metadata_format_version(bytes(buffer_data(model, m.buffer)))
    return None


def decode_ops(model):
    """Yields (subgraph index, operator index, payload tensor index, weight tensor
    index)."""
    op_index = opcode_index(model, DECODE_OP, add=False)
    if op_index is None:
        return
    for si, sg in enumerate(model.subgraphs):
        for oi, op in enumerate(sg.operators or []):
            if op.opcodeIndex != op_index:
                continue
            ins = [int(i) for i in np.asarray(op.inputs).reshape(-1)]
            outs = [int(i) for i in np.asarray(op.outputs).reshape(-1)]
            if len(ins) != 1 or len(outs) != 1 or min(ins + outs) < 0:
                raise FormatError(
                    f"subgraph {si} operator {oi}: {DECODE_OP} must have one input and "
                    f"one output, has {len(ins)} and {len(outs)}"
                )
            yield si, oi, ins[0], outs[0]


def remove_decoders(
    model, decoded: dict[int, np.ndarray], densify_opcode: int | None = None
) -> None:
    """Undo `insert_decoders`: `decoded` maps weight buffer index -> decoded bytes
    (for a densify decoder: the sparse tensor's buffer -> its stored values, its index
    already restored); densify decoders become DENSIFY operators of
    `densify_opcode` again."""
    op_index = opcode_index(model, DECODE_OP, add=False)
    for b_index, data in decoded.items():
        model.buffers[b_index].data = np.asarray(data, np.uint8).reshape(-1)
    drop_buffers: set[int] = set()
    for si, sg in enumerate(model.subgraphs):
        payload_tensors = set()
        keep_ops = []
        for op in sg.operators or []:
            if op.opcodeIndex == op_index:
                payload_tensors.add(int(np.asarray(op.inputs).reshape(-1)[0]))
                target = densify_target(op)
                if target is not None:
                    out = int(np.asarray(op.outputs).reshape(-1)[0])
                    keep_ops.append(densify_op(densify_opcode, target, out))
            else:
                keep_ops.append(op)
        sg.operators = keep_ops
        for ti in payload_tensors:
            drop_buffers.add(sg.tensors[ti].buffer)
        mapping = _remove_tensors(sg, payload_tensors)
        for sd in model.signatureDefs or []:
            if mapping is not None and sd.subgraphIndex == si:
                for tm in list(sd.inputs or []) + list(sd.outputs or []):
                    tm.tensorIndex = int(mapping[tm.tensorIndex])
    kept_meta = []
    for m in model.metadata or []:
        if tensor_name(m) == METADATA_NAME:
            drop_buffers.add(m.buffer)
        else:
            kept_meta.append(m)
    model.metadata = kept_meta or None
    # A buffer still referenced elsewhere (never by our own layout) is kept.
    used = {t.buffer for sg in model.subgraphs for t in sg.tensors or []}
    used |= {m.buffer for m in model.metadata or []}
    if model.metadataBuffer is not None:  # a numpy vector: no truth value of its own
        used |= {int(b) for b in np.asarray(model.metadataBuffer, np.int64).reshape(-1)}
    _remove_buffers(model, {b for b in drop_buffers if b not in used and b != 0})
    if op_index is not None:
        still_used = any(
            op.opcodeIndex == op_index for sg in model.subgraphs for op in sg.operators
        )
        if not still_used:
            _remove_opcode(model, op_index)


def _remap(vec, mapping: np.ndarray):
    if vec is None:
        return None
    arr = np.asarray(vec, np.int64).reshape(-1)
    out = np.where(arr >= 0, mapping[np.clip(arr, 0, len(mapping) - 1)], arr)
    return out.astype(np.int32)


def _remove_tensors(sg, remove: set[int]) -> np.ndarray | None:
    if not remove:
        return None
    n = len(sg.tensors)
    mapping = np.full(n, -1, np.int64)
    keep = [i for i in range(n) if i not in remove]
    mapping[keep] = np.arange(len(keep))
    sg.tensors = [sg.tensors[i] for i in keep]
    sg.inputs = _remap(sg.inputs, mapping)
    sg.outputs = _remap(sg.outputs, mapping)
    for op in sg.operators or []:
        op.inputs = _remap(op.inputs, mapping)
        op.outputs = _remap(op.outputs, mapping)
        op.intermediates = _remap(op.intermediates, mapping)
    return mapping


def _remove_buffers(model, remove: set[int]) -> None:
    if not remove:
        return
    n = len(model.buffers)
    mapping = np.full(n, -1, np.int64)
    keep = [i for i in range(n) if i not in remove]
    mapping[keep] = np.arange(len(keep))
    model.buffers = [model.buffers[i] for i in keep]
    for sg in model.subgraphs:
        for t in sg.tensors or []:
            t.buffer = int(mapping[t.buffer])
    for m in model.metadata or []:
        m.buffer = int(mapping[m.buffer])
    if model.metadataBuffer is not None:
        model.metadataBuffer = _remap(model.metadataBuffer, mapping)


def _remove_opcode(model, index: int) -> None:
    del model.operatorCodes[index]
    for sg in model.subgraphs:
        for op in sg.operators or []:
            if op.opcodeIndex > index:
                op.opcodeIndex -= 1
