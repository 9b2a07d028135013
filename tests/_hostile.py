"""The shared table of hostile files: each defect the readers must refuse, forged.

Every case is a packed .tflite built here, from a tiny fully-connected model made with
the schema's object API (no TensorFlow), then forged as its description says. The four
readers (the numpy expander, the native expander, `tfedge.Interpreter` and the Java
unpacker) must give the verdict in the table: "ok" or "error", and, where `same_message`
says so, the Java unpacker the numpy expander's message. `differences` lists where a
reader is meant to differ from the others (README, "Reliability"): such a reader's
verdict is given there instead.

tests/test_hostile.py runs the Python readers and the CLI over the table,
tests/android/test_unpacker.py the Java unpacker, and scripts/fuzz_seeds.py
--flatbuffers writes the files (and mutants of them) as seeds for the fuzzers.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import struct
from collections.abc import Callable

import numpy as np

from tests._payloads import build, fixed_stream
from tfedge.codecs import MAX_BLOCK_SIZE, code_lengths, encode_payload, huffman_encode
from tfedge.tflite import DECODE_OP, insert_decoders, opcode_index, schema, write

SEED = 0
READERS = ("numpy", "native", "interpreter", "java")
# The small model: x [1, IN] -> FULLY_CONNECTED with weights [OUT, IN] -> y [1, OUT].
IN, OUT = 12, 3
# The big-weight variant for the Huffman block cases: 100,000 float32 weights, coded as
# raw bytes in one Huffman stream of 400,000 symbols.
BIG_IN, BIG_OUT = 12500, 8
# Shared-object amplification: operators that all point at one inputs vector of this
# many entries (written out one by one: OPS x ENTRIES x 4 bytes = 256 MiB).
SHARED_OPS, SHARED_ENTRIES = 4096, 16384


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    description: str
    build: Callable[[], bytes]
    verdict: str  # "ok" or "error", for every reader not in `differences`
    # The Java unpacker's message equals the numpy expander's (both make the check in
    # the same order with the same words).
    same_message: bool = True
    # reader -> (its verdict, why it differs): intended differences only.
    differences: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)

    def expected(self, reader: str) -> str:
        return self.differences.get(reader, (self.verdict, ""))[0]


# ---------------------------------------------------------------- building blocks


def _buffer(data: bytes | None):
    from tfedge.tflite import aligned_buffer_class

    b = aligned_buffer_class()()
    b.data = None if data is None else np.frombuffer(bytes(data), np.uint8)
    b.offset = b.size = 0
    return b


def _tensor(name: str, shape, buffer: int, ttype: int = 0):
    t = schema().TensorT()
    t.name = name
    t.shape = np.asarray(shape, np.int32)
    t.type = ttype
    t.buffer = buffer
    return t


def weights(n_in: int = IN, n_out: int = OUT) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    return np.round(w * 4) / 4  # few distinct values: every codec applies


def plain_model(n_in: int = IN, n_out: int = OUT, *, signature: bool = True):
    """The model object (ModelT): one FULLY_CONNECTED with constant weights."""
    s = schema()
    m = s.ModelT()
    m.version = 3
    oc = s.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = s.BuiltinOperator.FULLY_CONNECTED
    oc.version = 1
    m.operatorCodes = [oc]
    m.buffers = [_buffer(None), _buffer(weights(n_in, n_out).tobytes())]
    sg = s.SubGraphT()
    sg.name = "main"
    sg.tensors = [
        _tensor("x", [1, n_in], 0),
        _tensor("dense/kernel", [n_out, n_in], 1),
        _tensor("y", [1, n_out], 0),
    ]
    op = s.OperatorT()
    op.opcodeIndex = 0
    op.inputs = np.asarray([0, 1, -1], np.int32)
    op.outputs = np.asarray([2], np.int32)
    op.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = s.FullyConnectedOptionsT()
    sg.operators = [op]
    sg.inputs = np.asarray([0], np.int32)
    sg.outputs = np.asarray([2], np.int32)
    m.subgraphs = [sg]
    if signature:
        sd = s.SignatureDefT()
        sd.signatureKey = "serving_default"
        sd.subgraphIndex = 0
        sd.inputs = [_tensor_map("x", 0)]
        sd.outputs = [_tensor_map("y", 2)]
        m.signatureDefs = [sd]
    return m


def _tensor_map(name: str, index: int):
    tm = schema().TensorMapT()
    tm.name = name
    tm.tensorIndex = index
    return tm


def codebook_payload(w: np.ndarray) -> bytes:
    book, idx = np.unique(w.reshape(-1), return_inverse=True)
    return encode_payload(
        element_type=0,
        element_size=4,
        count=w.size,
        layout="dense",
        value_kind="codebook",
        codebook=book.astype(np.float32),
        indices=idx,
        value_coding="huffman",
    )


def packed_model(n_in: int = IN, n_out: int = OUT, payload: bytes | None = None):
    """The plain model with its weights packed (ModelT)."""
    m = plain_model(n_in, n_out)
    insert_decoders(m, {1: payload or codebook_payload(weights(n_in, n_out))}, "tests")
    return m


def valid() -> bytes:
    return write(packed_model())


def _with_metadata(raw: bytes) -> bytes:
    m = packed_model()
    meta = next(x for x in m.metadata if x.name == "tfedge")
    m.buffers[meta.buffer] = _buffer(raw)
    return write(m)


def _decode_ops(m):
    s = schema()
    code = opcode_index(m, DECODE_OP, add=False)
    return [op for op in m.subgraphs[0].operators if op.opcodeIndex == code], s


# ---------------------------------------------------------------- the forgeries


def signature_tensor_out_of_range() -> bytes:
    m = packed_model()
    m.signatureDefs[0].inputs[0].tensorIndex = 999
    return write(m)


def signature_subgraph_out_of_range() -> bytes:
    m = packed_model()
    m.signatureDefs[0].subgraphIndex = 7
    return write(m)


def decode_ops_without_buffers() -> bytes:
    """Decode operators, but the model has no buffers at all (every tensor says
    buffer 0) and no metadata."""
    m = packed_model()
    for t in m.subgraphs[0].tensors:
        t.buffer = 0
    m.buffers = []
    m.metadata = None
    return write(m)


def payload_in_buffer_zero() -> bytes:
    m = packed_model()
    (op,), _ = _decode_ops(m)
    m.subgraphs[0].tensors[int(op.inputs[0])].buffer = 0
    return write(m)


def metadata_nested_deep() -> bytes:
    return _with_metadata(
        b'{"format_version": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    )


def two_decoders_one_tensor(conflicting: bool) -> Callable[[], bytes]:
    """A second TFEDGE_DECODE operator (with its own payload tensor and buffer) whose
    output is the same weight tensor; its payload decodes to other weights, or to the
    same."""

    def build() -> bytes:
        m = packed_model()
        (op,), s = _decode_ops(m)
        sg = m.subgraphs[0]
        w = weights()
        payload = codebook_payload(-w if conflicting else w)
        m.buffers.append(_buffer(payload))
        p = _tensor(
            "dense/kernel/tfedge_payload_2", [len(payload)], len(m.buffers) - 1, 3
        )
        sg.tensors.append(p)
        second = s.OperatorT()
        second.opcodeIndex = op.opcodeIndex
        second.inputs = np.asarray([len(sg.tensors) - 1], np.int32)
        second.outputs = np.asarray(op.outputs, np.int32)
        sg.operators = [op, second] + [x for x in sg.operators if x is not op]
        return write(m)

    return build


def shared_buffer_conflicting() -> bytes:
    """A second weight tensor sharing the kernel's buffer, produced by its own decode
    operator from a payload that decodes to other weights."""
    m = plain_model()
    sg = m.subgraphs[0]
    sg.tensors.append(_tensor("dense/kernel_copy", [OUT, IN], 1))
    insert_decoders(m, {1: codebook_payload(weights())}, "tests")
    # insert_decoders gave both tensors one payload buffer: the copy gets its own.
    copy = next(i for i, t in enumerate(sg.tensors) if t.name == "dense/kernel_copy")
    payload = codebook_payload(-weights())
    m.buffers.append(_buffer(payload))
    ops, _ = _decode_ops(m)
    for op in ops:
        if int(op.outputs[0]) == copy:
            p = sg.tensors[int(op.inputs[0])]
            p.buffer = len(m.buffers) - 1
            p.shape = np.asarray([len(payload)], np.int32)
    return write(m)


def _weight_shape(shape) -> Callable[[], bytes]:
    def build() -> bytes:
        m = packed_model()
        (op,), _ = _decode_ops(m)
        m.subgraphs[0].tensors[int(op.outputs[0])].shape = np.asarray(shape, np.int32)
        return write(m)

    return build


def all_fill_model(n_in: int) -> bytes:
    """The model with IN = n_in, its OUT x n_in weights from a sparse raw payload that
    stores no entry: OUT x n_in x 4 bytes of fill (0.0) from 52 bytes."""
    return write(packed_model(n_in, OUT, payload=_sparse_all_fill(OUT * n_in)))


def huge_tensor_small_payload() -> bytes:
    """A 1 GiB weight tensor (2^28 float32) declared by a 52-byte payload."""
    n = 1 << 28
    m = packed_model(payload=_sparse_all_fill(n))
    (op,), _ = _decode_ops(m)
    m.subgraphs[0].tensors[int(op.outputs[0])].shape = np.asarray([n], np.int32)
    return write(m)


# Version 1 payloads of float32 elements unless a case says otherwise.
_payload = functools.partial(build, etype=0, es=4)


def _sparse_all_fill(n: int) -> bytes:
    """A sparse raw float32 payload of n elements, none stored: all the fill (0.0)."""
    body = struct.pack("<f", 0.0) + fixed_stream([], 1) + fixed_stream([], 8)
    return _payload(body, decoded=4 * n, layout=1)


def huffman_block(block_size: int) -> Callable[[], bytes]:
    """The big model's 400,000 weight bytes as one dense raw Huffman stream in blocks
    of `block_size` symbols."""

    def build() -> bytes:
        w = weights(BIG_IN, BIG_OUT)
        sym = np.frombuffer(w.tobytes(), np.uint8)
        lengths = code_lengths(np.bincount(sym, minlength=256))
        data, _, offsets = huffman_encode(sym, lengths, block_size)
        nibbles = np.zeros(256, np.uint8)
        nibbles[: lengths.size] = lengths
        table = ((nibbles[0::2] << 4) | nibbles[1::2]).astype(np.uint8)
        stream = (
            struct.pack("<BBII", 1, 8, sym.size, len(data))
            + struct.pack("<I", block_size)
            + table.tobytes()
            + np.asarray(offsets, "<u4").tobytes()
            + data
        )
        payload = _payload(stream, decoded=sym.size)
        return write(packed_model(BIG_IN, BIG_OUT, payload=payload))

    return build


def shared_inputs_vector() -> bytes:
    """SHARED_OPS operators whose inputs all point at one vector of SHARED_ENTRIES
    entries (forged offsets): small on disk, 256 MiB once written out."""
    s = schema()
    m = packed_model()
    sg = m.subgraphs[0]
    fc = sg.operators[-1]
    extra = []
    for i in range(SHARED_OPS):
        op = s.OperatorT()
        op.opcodeIndex = fc.opcodeIndex
        op.inputs = np.full(SHARED_ENTRIES if i == 0 else 1, -1, np.int32)
        op.outputs = np.asarray([2], np.int32)
        extra.append(op)
    sg.operators = list(sg.operators) + extra
    data = bytearray(write(m))
    root = s.Model.GetRootAs(bytes(data), 0)
    g = root.Subgraphs(0)
    first = len(sg.operators) - SHARED_OPS
    slots = []
    for i in range(first, g.OperatorsLength()):
        op = g.Operators(i)
        o = op._tab.Offset(6)  # field 1, inputs
        slots.append(op._tab.Pos + o)
    (rel,) = struct.unpack_from("<I", data, slots[0])
    target = slots[0] + rel
    for slot in slots[1:]:
        struct.pack_into("<I", data, slot, target - slot)
    return bytes(data)


def subgraph_name_not_utf8() -> bytes:
    data = bytearray(valid())
    at = data.find(b"main")
    data[at : at + 4] = b"\xff\xfe\xfd\xfc"
    return bytes(data)


def no_metadata() -> bytes:
    m = packed_model()
    m.metadata = None
    return write(m)


# ---------------------------------------------------------------- the table

_META = "the 'tfedge' metadata entry"


# ------------------------------------------------------------- DENSIFY-sparse weights
# The weights as TFLite's own sparse tensor (dense rows, CSR columns with uint8
# vectors) and a DENSIFY operator, packed as the dense tensor's payload
# (docs/FORMAT.md section 1.1).


def densify_weights() -> np.ndarray:
    w = weights()
    w[:, ::2] = 0  # half the columns pruned
    return w


def densify_plain_model():
    """The model object: x -> FULLY_CONNECTED(DENSIFY(sparse kernel)) -> y."""
    s = schema()
    m = plain_model()
    oc = s.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = s.BuiltinOperator.DENSIFY
    oc.version = 1
    m.operatorCodes.append(oc)
    w = densify_weights()
    rows, cols = np.nonzero(w)
    m.buffers[1] = _buffer(w[rows, cols].tobytes())
    m.buffers.append(_buffer(None))
    sg = m.subgraphs[0]
    sparse = sg.tensors[1]
    sparse.name = "dense/kernel_sparse"
    sp = s.SparsityParametersT()
    sp.traversalOrder = np.asarray([0, 1], np.int32)
    d0, d1 = s.DimensionMetadataT(), s.DimensionMetadataT()
    d0.format, d0.denseSize = 0, OUT
    d1.format = 1
    d1.arraySegmentsType = d1.arrayIndicesType = s.SparseIndexVector.Uint8Vector
    d1.arraySegments, d1.arrayIndices = s.Uint8VectorT(), s.Uint8VectorT()
    counts = np.bincount(rows, minlength=OUT)
    d1.arraySegments.values = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint8)
    d1.arrayIndices.values = cols.astype(np.uint8)
    sp.dimMetadata = [d0, d1]
    sparse.sparsity = sp
    sg.tensors.append(_tensor("dense/kernel", [OUT, IN], len(m.buffers) - 1))
    dens = s.OperatorT()
    dens.opcodeIndex = 1
    dens.inputs = np.asarray([1], np.int32)
    dens.outputs = np.asarray([3], np.int32)
    sg.operators[0].inputs = np.asarray([0, 3, -1], np.int32)
    sg.operators.insert(0, dens)
    return m


def densify_packed_model(payload: bytes | None = None):
    m = densify_plain_model()
    insert_decoders(m, {1: payload or codebook_payload(densify_weights())}, "tests")
    return m


def densify_valid() -> bytes:
    return write(densify_packed_model())


def _densify_forged(forge: Callable) -> Callable[[], bytes]:
    def build() -> bytes:
        m = densify_packed_model()
        forge(m, m.subgraphs[0])
        return write(m)

    return build


def _set_options(raw: bytes) -> Callable:
    def forge(m, sg) -> None:
        sg.operators[0].customOptions = np.frombuffer(raw, np.uint8)

    return forge


def _index_not_empty(m, sg) -> None:
    sg.tensors[1].sparsity.dimMetadata[1].arrayIndices.values = np.asarray(
        [1, 2], np.uint8
    )


def _shape_mismatch(m, sg) -> None:
    sg.tensors[1].shape = np.asarray([OUT, IN + 1], np.int32)


def _version_3(m, sg) -> None:
    meta = next(x for x in m.metadata if x.name == "tfedge")
    m.buffers[meta.buffer] = _buffer(b'{"format_version": 3}')


def _payload_truncated(m, sg) -> None:
    p = sg.tensors[sg.operators[0].inputs[0]]
    m.buffers[p.buffer] = _buffer(bytes(m.buffers[p.buffer].data[:-7]))
    p.shape = np.asarray([m.buffers[p.buffer].data.size], np.int32)


def _no_densify_code(m, sg) -> None:
    m.operatorCodes[1].builtinCode = m.operatorCodes[1].deprecatedBuiltinCode = 9


def _rank_17(m, sg) -> None:
    for t in (sg.tensors[1], sg.tensors[3]):
        t.shape = np.asarray([1] * 15 + [OUT, IN], np.int32)


def _dense_dim_wrong(m, sg) -> None:
    sg.tensors[1].sparsity.dimMetadata[0].denseSize = OUT + 1


def _sparse_buffer_holds_data(m, sg) -> None:
    m.buffers[1] = _buffer(b"\x01\x02\x03\x04")


def _meta(obj_text: bytes) -> Callable[[], bytes]:
    return lambda: _with_metadata(obj_text)


CASES = [
    Case("valid", "the packed model itself", valid, "ok"),
    Case(
        "no_metadata",
        "decode operators without a tfedge metadata entry (a version-less file)",
        no_metadata,
        "ok",
    ),
    Case(
        "subgraph_name_not_utf8",
        "a subgraph name of non-UTF-8 bytes (carried through; inspect shows it)",
        subgraph_name_not_utf8,
        "ok",
    ),
    Case(
        "signature_tensor_out_of_range",
        "a SignatureDef input whose tensor index (999) is past the subgraph's tensors",
        signature_tensor_out_of_range,
        "error",
    ),
    Case(
        "signature_subgraph_out_of_range",
        "a SignatureDef naming subgraph 7 of 1",
        signature_subgraph_out_of_range,
        "error",
    ),
    Case(
        "decode_ops_without_buffers",
        "TFEDGE_DECODE operators in a model with no buffers at all",
        decode_ops_without_buffers,
        "error",
    ),
    Case(
        "payload_in_buffer_zero",
        "a payload tensor that refers to buffer 0, TFLite's empty buffer",
        payload_in_buffer_zero,
        "error",
    ),
    Case(
        "metadata_nested_deep",
        "tfedge metadata JSON nested 100,000 deep",
        metadata_nested_deep,
        "error",
    ),
    Case(
        "metadata_version_string",
        'format_version "1"',
        _meta(b'{"format_version": "1"}'),
        "error",
    ),
    Case(
        "metadata_version_float",
        "format_version 1.5",
        _meta(b'{"format_version": 1.5}'),
        "error",
    ),
    Case(
        "metadata_version_true",
        "format_version true",
        _meta(b'{"format_version": true}'),
        "error",
    ),
    Case(
        "metadata_version_zero",
        "format_version 0",
        _meta(b'{"format_version": 0}'),
        "error",
    ),
    Case(
        "metadata_version_99",
        "format_version 99 (newer)",
        _meta(b'{"format_version": 99}'),
        "error",
    ),
    Case(
        "metadata_version_2^70",
        "format_version 2^70 (newer, past 64 bits)",
        _meta(json.dumps({"format_version": 2**70}).encode()),
        "error",
    ),
    Case(
        "metadata_not_json",
        "metadata that is not JSON",
        _meta(b"{format_version: 1}"),
        "error",
    ),
    Case(
        "metadata_not_utf8",
        "metadata JSON with a non-UTF-8 byte in a string",
        _meta(b'{"format_version": 1, "producer": "\xff"}'),
        "error",
    ),
    Case(
        "metadata_nested_version",
        "format_version only inside a nested object",
        _meta(b'{"x": {"format_version": 1}}'),
        "error",
    ),
    Case(
        "metadata_two_versions",
        "two format_version members",
        _meta(b'{"format_version": 1, "format_version": 1}'),
        "error",
    ),
    Case(
        "metadata_nan",
        "NaN in the metadata (not JSON)",
        _meta(b'{"format_version": 1, "x": NaN}'),
        "error",
    ),
    Case("metadata_array", "a JSON array, not an object", _meta(b"[1]"), "error"),
    Case(
        "metadata_escaped_key",
        "format_version spelt with a \\u escape (the same key)",
        _meta(b'{"format\\u005fversion": 1}'),
        "ok",
    ),
    Case(
        "two_decoders_conflicting",
        "two decode operators produce one weight tensor from payloads that differ",
        two_decoders_one_tensor(conflicting=True),
        "error",
        same_message=True,
    ),
    Case(
        "two_decoders_same",
        "two decode operators produce one weight tensor from equal payloads",
        two_decoders_one_tensor(conflicting=False),
        "ok",
    ),
    Case(
        "shared_buffer_conflicting",
        "two weight tensors share one buffer; their payloads decode to other data",
        shared_buffer_conflicting,
        "error",
        differences={
            "interpreter": (
                "ok",
                "the delegate sees tensors, not buffers: each tensor gets its own "
                "payload's weights (the expanders have one buffer to fill, so they "
                "refuse)",
            )
        },
    ),
    Case(
        "shape_product_wraps",
        "a weight shape [65536, 65536, 65536, 65536] whose int64 product wraps to 0",
        _weight_shape([65536, 65536, 65536, 65536]),
        "error",
        same_message=False,  # Java's longs say "over 2^63" for the 2^66-byte size
    ),
    Case(
        "huge_tensor_small_payload",
        "a 1 GiB weight declared by a 52-byte payload (over the resource bound)",
        huge_tensor_small_payload,
        "error",
    ),
    Case(
        "huffman_one_block",
        "a Huffman stream of 400,000 symbols in one block (over 65,536)",
        huffman_block(400_000),
        "error",
    ),
    Case(
        "huffman_block_at_limit",
        "a Huffman stream in blocks of exactly 65,536 symbols",
        huffman_block(MAX_BLOCK_SIZE),
        "ok",
    ),
    Case(
        "shared_inputs_vector",
        f"{SHARED_OPS} operators sharing one inputs vector of {SHARED_ENTRIES} entries",
        shared_inputs_vector,
        "error",
        same_message=True,
    ),
    Case(
        "densify_valid",
        "a DENSIFY-sparse kernel packed as its dense tensor (format version 4)",
        densify_valid,
        "ok",
    ),
    Case(
        "densify_options_truncated",
        "a densify decoder with 3 bytes of custom options",
        _densify_forged(_set_options(b"\x01\x00\x00")),
        "error",
    ),
    Case(
        "densify_target_out_of_range",
        "a densify decoder naming sparse tensor 999",
        _densify_forged(_set_options(struct.pack("<I", 999))),
        "error",
    ),
    Case(
        "densify_target_is_output",
        "a densify decoder naming its own output as the sparse tensor",
        _densify_forged(_set_options(struct.pack("<I", 3))),
        "error",
    ),
    Case(
        "densify_index_not_empty",
        "a sparse tensor whose index vector still holds entries",
        _densify_forged(_index_not_empty),
        "error",
    ),
    Case(
        "densify_shape_mismatch",
        "a sparse tensor of another shape than its dense tensor",
        _densify_forged(_shape_mismatch),
        "error",
    ),
    Case(
        "densify_rank_17",
        "a sparse tensor of 17 dimensions (over the 16 readers rebuild)",
        _densify_forged(_rank_17),
        "error",
    ),
    Case(
        "densify_dense_dim_wrong",
        "a dense dimension whose dense_size is not the shape's",
        _densify_forged(_dense_dim_wrong),
        "error",
    ),
    Case(
        "densify_version_3",
        "a densify decoder in a file of format version 3",
        _densify_forged(_version_3),
        "error",
    ),
    Case(
        "densify_payload_truncated",
        "the dense tensor's payload cut short by 7 bytes",
        _densify_forged(_payload_truncated),
        "error",
    ),
    Case(
        "densify_no_densify_code",
        "no DENSIFY operator code left to restore",
        _densify_forged(_no_densify_code),
        "error",
    ),
    Case(
        "densify_sparse_buffer_holds_data",
        "the sparse tensor's buffer is not empty",
        _densify_forged(_sparse_buffer_holds_data),
        "error",
    ),
    Case(
        "truncated",
        "the packed model cut in half",
        lambda: valid()[: len(valid()) // 2],
        "error",
        same_message=False,  # each flatbuffer parser stops at its own first problem
    ),
]

CASE_NAMES = [c.name for c in CASES]
