"""Output for TensorFlow Lite Micro: look-up-table (LUT) compression that TFLM's own
`TFLM_DECODE` kernel decodes, so the file runs on microcontrollers with no tfedge code.

TFLM's layout (its compression documentation and runtime are the reference; tfedge
writes it with its own code): a compressed tensor keeps its index but becomes a UINT8
vector of bit-packed indices (most significant bit first, in the tensor's row-major
element order); a UINT8 "ancillary" tensor holds a 16-byte header followed by the value
tables; and before every operator that reads the tensor, a `TFLM_DECODE` custom operator
takes (encoded, ancillary) pairs and produces a copy of the original tensor (shape,
type, quantization) that the operator reads instead. A decoded tensor lives only until
the next operator.

Header bytes: 0 decode type (0 = LUT), 1 header version (1), 2-3 zero, 4 LUT
version (1), 5 `(axis << 4) | bit width` (axis 0xF: one table for the tensor; else the
channel axis, 0 or the last), 6 table stride (entries per table, 2^bit width), 7-15
zero. Tables follow, one per channel (or one), each `stride` elements of the tensor's
type, zero-padded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfedge import codecs
from tfedge.tflite import opcode_index, schema

DECODE_OP = "TFLM_DECODE"
HEADER_SIZE = 16
MAX_BITS = 7  # TFLM's LUT decoder takes 1-7 bit indices (tables of at most 128 entries)
PER_TENSOR_AXIS = 0xF
# A compressed tensor adds an ancillary tensor, a decoded tensor and (per consumer) a
# decode operator to the flatbuffer: about 160 bytes.
GRAPH_OVERHEAD_BYTES = 160


@dataclass(frozen=True)
class LutEncoding:
    """One tensor's LUT encoding: packed indices and the ancillary data (header +
    tables)."""

    encoded: bytes
    ancillary: bytes
    bits: int
    axis: int | None  # None: one table for the tensor
    tables: int

    @property
    def size(self) -> int:
        return len(self.encoded) + len(self.ancillary)

    @property
    def description(self) -> str:
        mode = "per-tensor" if self.axis is None else f"per-channel(axis {self.axis})"
        return f"tflm-lut/{mode}"


def _bits_for(k: int) -> int:
    return max(1, int(np.ceil(np.log2(max(k, 1)))))


def _encode_axis(values: np.ndarray, axis: int | None) -> LutEncoding | None:
    """LUT encoding of `values` with one table, or one table per slice along `axis`."""
    u = values.view(np.dtype(f"<u{values.dtype.itemsize}"))
    if axis is None:
        slices = [u.reshape(-1)]
    else:
        slices = list(np.moveaxis(u, axis, 0).reshape(u.shape[axis], -1))
    tables, index_slices = [], []
    for s in slices:
        uniq, inv = np.unique(s, return_inverse=True)
        if uniq.size > 2**MAX_BITS:
            return None
        tables.append(uniq)
        index_slices.append(inv.reshape(-1))
    bits = _bits_for(max(t.size for t in tables))
    stride = 2**bits
    if axis is None:
        indices = index_slices[0]
    else:
        moved = np.stack(index_slices).reshape(np.moveaxis(u, axis, 0).shape)
        indices = np.moveaxis(moved, 0, axis).reshape(-1)
    table_bytes = np.zeros((len(tables), stride), u.dtype)
    for i, t in enumerate(tables):
        table_bytes[i, : t.size] = t
    header = bytearray(HEADER_SIZE)
    header[0] = 0  # LUT
    header[1] = 1  # header version
    header[4] = 1  # LUT version
    header[5] = ((PER_TENSOR_AXIS if axis is None else axis) << 4) | bits
    header[6] = stride
    return LutEncoding(
        encoded=codecs.pack_bits(indices, bits),
        ancillary=bytes(header)
        + table_bytes.astype(u.dtype.newbyteorder("<")).tobytes(),
        bits=bits,
        axis=axis,
        tables=len(tables),
    )


def channel_axis(tensor) -> int | None:
    """The axis whose slices carry their own quantization scale, or None."""
    q = tensor.quantization
    if q is None or q.scale is None or len(np.asarray(q.scale).reshape(-1)) <= 1:
        return None
    return int(q.quantizedDimension)


def lut_encode(values: np.ndarray, axis: int | None) -> LutEncoding | None:
    """LUT encoding of a shaped tensor: one table per quantization channel along `axis`
    (per-channel quantized weights), else one table for the tensor. TFLM's decoder picks
    its tables by the tensor's quantization channels, so that is the layout it decodes
    correctly (measured with tflite-micro: per-tensor tables on per-channel int8
    weights, or per-channel tables on float weights, decode to wrong values). None when
    a table would need more than 128 entries."""
    if axis is not None and not (0 <= axis < values.ndim and axis <= 14):
        return None
    return _encode_axis(values, axis)


def insert_tflm_decoders(model, encodings: dict[int, LutEncoding]) -> int:
    """Rewrites each buffer's tensors into TFLM's LUT layout; returns the decode scratch
    bytes (the largest total of decoded tensors alive at once, i.e. per decode
    operator)."""
    from tfedge.tflite import new_buffer

    s = schema()
    op_code = opcode_index(model, DECODE_OP)
    enc_buffer, anc_buffer = {}, {}
    for b_index, enc in encodings.items():
        model.buffers.append(new_buffer(enc.encoded))
        enc_buffer[b_index] = len(model.buffers) - 1
        model.buffers.append(new_buffer(enc.ancillary))
        anc_buffer[b_index] = len(model.buffers) - 1
    scratch = 0
    for sg in model.subgraphs:
        compressed = {
            ti: t.buffer for ti, t in enumerate(sg.tensors) if t.buffer in encodings
        }
        if not compressed:
            continue
        ancillary_for: dict[int, int] = {}

        # The helpers below run only within this iteration; they bind its `sg`,
        # `compressed` and `ancillary_for` as keyword-only defaults all the same.
        def add_tensor(t, *, sg=sg) -> int:
            sg.tensors.append(t)
            return len(sg.tensors) - 1

        def decoded_copy(ti: int, *, sg=sg) -> int:
            orig = sg.tensors[ti]
            t = s.TensorT()  # unnamed: TFLM reads no names, and flash is scarce
            t.type, t.shape, t.shapeSignature = (
                orig.type,
                orig.shape,
                orig.shapeSignature,
            )
            t.quantization = orig.quantization
            t.buffer = 0
            return add_tensor(t)

        def ancillary(
            ti: int, *, compressed=compressed, ancillary_for=ancillary_for
        ) -> int:
            if ti not in ancillary_for:
                t = s.TensorT()  # unnamed, as the decoded copies
                t.type = s.TensorType.UINT8
                t.shape = np.asarray(
                    [len(encodings[compressed[ti]].ancillary)], np.int32
                )
                t.buffer = anc_buffer[compressed[ti]]
                ancillary_for[ti] = add_tensor(t)
            return ancillary_for[ti]

        def decode_op(
            tensor_indices: list[int], *, sg=sg
        ) -> tuple[object, dict[int, int], int]:
            op = s.OperatorT()
            op.opcodeIndex = op_code
            ins, outs, mapping, nbytes = [], [], {}, 0
            for ti in tensor_indices:
                out = decoded_copy(ti)
                mapping[ti] = out
                ins += [ti, ancillary(ti)]
                outs.append(out)
                nbytes += _tensor_bytes(sg.tensors[ti])
            op.inputs = np.asarray(ins, np.int32)
            op.outputs = np.asarray(outs, np.int32)
            return op, mapping, nbytes

        new_ops = []
        for op in sg.operators or []:
            reads = [
                int(i)
                for i in np.asarray(op.inputs if op.inputs is not None else [])
                if int(i) in compressed
            ]
            reads = list(dict.fromkeys(reads))
            if reads:
                dop, mapping, nbytes = decode_op(reads)
                scratch = max(scratch, nbytes)
                new_ops.append(dop)
                op.inputs = np.asarray(
                    [mapping.get(int(i), int(i)) for i in np.asarray(op.inputs)],
                    np.int32,
                )
            new_ops.append(op)
        outputs = [int(i) for i in np.asarray(sg.outputs) if int(i) in compressed]
        if outputs:
            dop, mapping, nbytes = decode_op(list(dict.fromkeys(outputs)))
            scratch = max(scratch, nbytes)
            new_ops.append(dop)
            sg.outputs = np.asarray(
                [mapping.get(int(i), int(i)) for i in np.asarray(sg.outputs)], np.int32
            )
        sg.operators = new_ops
        # Rewrite the compressed tensors last: decoded copies took their original form.
        for ti, b_index in compressed.items():
            t = sg.tensors[ti]
            t.type = s.TensorType.UINT8
            t.shape = np.asarray([len(encodings[b_index].encoded)], np.int32)
            t.shapeSignature = None
            t.quantization = None
            t.buffer = enc_buffer[b_index]
    for b_index in encodings:
        model.buffers[b_index].data = None
    return scratch


def _tensor_bytes(t) -> int:
    from tfedge.tflite import TYPES

    n = int(np.prod(np.asarray(t.shape if t.shape is not None else [], np.int64)))
    return n * TYPES[t.type].itemsize


def run_in_tflm(
    model_bytes: bytes, samples: list[list[np.ndarray]]
) -> list[list[np.ndarray]]:
    """Runs a model's subgraph 0 in TFLM's Python interpreter (`tflite-micro`)."""
    from tflite_micro import runtime

    from tfedge.tflite import read

    n_out = len(np.asarray(read(model_bytes).subgraphs[0].outputs))
    it = runtime.Interpreter.from_bytes(bytes(model_bytes))
    outs = []
    for sample in samples:
        for i, x in enumerate(sample):
            it.set_input(x, i)
        it.invoke()
        outs.append([np.array(it.get_output(j)) for j in range(n_out)])
    return outs
