"""tfedge.Interpreter: packed files run as they are, through the TFEDGE_DECODE delegate.

Also pins the TFLite struct layouts the delegate relies on (tflite_abi.h) against the
running interpreter's own view of the model, for both ai-edge-litert and TensorFlow.
"""

from __future__ import annotations

import re
import struct
import warnings

import numpy as np
import pytest
from ai_edge_litert import interpreter as litert

import tfedge
from tests._native import NATIVE
from tests._payloads import fix_crc, payload_spans
from tfedge.codecs import encode_payload
from tfedge.errors import FormatError, TfedgeError
from tfedge.runtime import _native
from tfedge.runtime._interpreter import (
    Interpreter,
    allocate_tensors,
    load_decode_delegate,
)
from tfedge.tflite import decode_ops, insert_decoders, read, write

pytestmark = NATIVE

# Float outputs: the consumers of decoded weights see non-constant weights, so they run
# other kernels (no XNNPACK weight packing) than the expanded model, and sum in another
# order. Bit-identical weights (checked separately) then differ only by rounding, well
# under 1e-5 of the output scale for these small layers.
FLOAT_RTOL = 1e-5
# Quantized paths: a different kernel may round one requantization the other way
# (one step of the int8 output, or of the DEQUANTIZE feeding a float output).
INT_ATOL = 1

# (id, conftest model, compress options)
CASES = [
    ("dense-lossless", "dense_f32", {"lossless": True}),
    ("dense-shared", "dense_f32", {}),
    ("dense-pruned", "dense_pruned", {}),
    ("conv-shared", "conv_f32", {}),
    ("conv-f16", "conv_f16", {}),
    # tfedge.compress leaves this int8 model as it is; pack every weight ourselves.
    ("conv-int8", "conv_int8", None),
    ("conv-every-weight", "conv_f32", None),
]
# TensorType -> element size, for the weights `pack_every_weight` packs.
_ELEMENT_SIZES = {0: 4, 1: 2, 2: 4, 9: 1}

# TfLiteType -> numpy dtype, for the layout pin.
_TFLITE_DTYPES = {
    1: np.float32,
    2: np.int32,
    3: np.uint8,
    4: np.int64,
    6: np.bool_,
    7: np.int16,
    9: np.int8,
    10: np.float16,
    11: np.float64,
}
# BuiltinOperator codes of the operators in the test models.
_BUILTIN_NAMES = {
    0: "ADD",
    3: "CONV_2D",
    4: "DEPTHWISE_CONV_2D",
    6: "DEQUANTIZE",
    9: "FULLY_CONNECTED",
    17: "MAX_POOL_2D",
    22: "RESHAPE",
    25: "SOFTMAX",
    114: "QUANTIZE",
}

_PACKED: dict[str, bytes] = {}


def pack_every_weight(plain: bytes) -> bytes:
    """Packs every constant weight (float32, float16, int32, int8) losslessly.

    Codebook where a tensor has at most 256 distinct values, sparse where most of it is
    zero, Huffman where it is smaller: the op meets every codec on a real model.
    """
    model = read(plain)
    payloads = {}
    for t in model.subgraphs[0].tensors:
        data = model.buffers[t.buffer].data
        es = _ELEMENT_SIZES.get(int(t.type))
        if es is None or data is None or len(data) < 64 or t.buffer in payloads:
            continue
        elems = np.asarray(data, np.uint8).view(
            {1: np.uint8, 2: np.uint16, 4: np.uint32}[es]
        )
        uniq, idx = np.unique(elems, return_inverse=True)
        zero = np.count_nonzero(elems == 0) > elems.size // 2
        kw = dict(
            element_type=int(t.type),
            element_size=es,
            count=elems.size,
            layout="sparse" if zero else "dense",
        )
        if uniq.size <= 256:
            kw.update(value_kind="codebook", codebook=uniq, indices=idx)
        else:
            kw.update(value_kind="raw", elements=elems)
        payloads[t.buffer] = encode_payload(**kw)
    insert_decoders(model, payloads, producer="tests")
    return write(model)


def packed_model(tflite_model, case_id: str) -> bytes:
    if case_id not in _PACKED:
        _, name, options = next(c for c in CASES if c[0] == case_id)
        if options is None:
            _PACKED[case_id] = pack_every_weight(tflite_model(name))
        else:
            _PACKED[case_id] = bytes(tfedge.compress(tflite_model(name), **options))
    return _PACKED[case_id]


def _inputs(interp, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for d in interp.get_input_details():
        if np.issubdtype(d["dtype"], np.integer):
            info = np.iinfo(d["dtype"])
            x = rng.integers(info.min, info.max, d["shape"], endpoint=True)
        else:
            x = rng.standard_normal(d["shape"])
        out.append(x.astype(d["dtype"]))
    return out


def _run(interp, xs):
    for d, x in zip(interp.get_input_details(), xs, strict=True):
        interp.set_tensor(d["index"], x)
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


def _expanded_interpreter(packed: bytes):
    ref = litert.Interpreter(model_content=tfedge.expand(packed))
    ref.allocate_tensors()
    return ref


def _output_steps(interp) -> list[float]:
    """Per output, the quantization step behind it (0 when the path is float).

    An int8 model with float outputs ends in DEQUANTIZE; one step of its input is the
    smallest difference a requantization rounded the other way can make.
    """
    details = {d["index"]: d for d in interp.get_tensor_details()}
    producer = {
        int(o): op
        for op in interp._get_ops_details()
        if op["op_name"] != "DELEGATE"  # delegate kernels re-list their outputs
        for o in op["outputs"]
    }
    steps = []
    for d in interp.get_output_details():
        op = producer.get(d["index"])
        scale = 0.0
        if op is not None and op["op_name"] == "DEQUANTIZE":
            scale = float(details[int(op["inputs"][0])]["quantization"][0])
        steps.append(scale)
    return steps


def _assert_outputs_close(got, want, steps):
    for g, w, step in zip(got, want, steps, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        if np.issubdtype(w.dtype, np.integer):
            np.testing.assert_allclose(
                g.astype(np.int64), w.astype(np.int64), atol=INT_ATOL
            )
        else:
            scale = float(np.max(np.abs(w))) or 1.0
            atol = max(FLOAT_RTOL * scale, INT_ATOL * step * (1 + FLOAT_RTOL))
            np.testing.assert_allclose(g, w, rtol=FLOAT_RTOL, atol=atol)


@pytest.mark.parametrize("case_id", [c[0] for c in CASES])
def test_outputs_equal_the_expanded_model(tflite_model, case_id):
    """Weights decoded before partitioning are constants: the same kernels (XNNPACK)
    run on the same bytes as in the expanded model, so outputs are bit-identical.
    (Pruned layers run by the sparse kernels instead: tests/runtime/
    test_sparse_kernels.py.)"""
    packed = packed_model(tflite_model, case_id)
    assert list(decode_ops(read(packed))), "the case must pack at least one tensor"
    interp = Interpreter(model_content=packed, num_threads=1, sparse_kernels=False)
    interp.allocate_tensors()
    ref = _expanded_interpreter(packed)
    xs = _inputs(interp)
    for got, want in zip(_run(interp, xs), _run(ref, xs), strict=True):
        np.testing.assert_array_equal(got, want)
    # The decoded weights themselves are bit-identical to the expander's.
    for si, _oi, _p, w in decode_ops(read(packed)):
        assert si == 0
        assert interp.get_tensor(w).tobytes() == ref.get_tensor(w).tobytes()


@pytest.mark.parametrize("case_id", [c[0] for c in CASES])
def test_persistent_weights_mode_is_close_to_the_expanded_model(tflite_model, case_id):
    """With constant_weights=0 the weights are decoded in Prepare into persistent
    tensors that consumers treat as non-constant: other kernels, equal to rounding."""
    packed = packed_model(tflite_model, case_id)
    delegate = load_decode_delegate(constant_weights="0")
    interp = litert.Interpreter(
        model_content=packed, num_threads=1, experimental_delegates=[delegate]
    )
    interp.allocate_tensors()
    ref = _expanded_interpreter(packed)
    xs = _inputs(interp)
    _assert_outputs_close(_run(interp, xs), _run(ref, xs), _output_steps(ref))
    for _si, _oi, _p, w in decode_ops(read(packed)):
        assert interp.get_tensor(w).tobytes() == ref.get_tensor(w).tobytes()


def test_payloads_are_decoded_once_not_per_invoke(tflite_model):
    packed = packed_model(tflite_model, "conv-shared")
    n_payloads = len(list(decode_ops(read(packed))))
    before = _native.delegate_decode_count()
    interp = Interpreter(model_content=packed)
    interp.allocate_tensors()
    assert _native.delegate_decode_count() - before == n_payloads
    xs = _inputs(interp)
    first = _run(interp, xs)
    for _ in range(5):
        again = _run(interp, xs)
    assert _native.delegate_decode_count() - before == n_payloads
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


def per_channel_scaled_model() -> bytes:
    """Kernels that are sign x a per-channel scale, {-a_c, 0, +b_c} (ternary kernels
    with folded batch-norm scales): few values per channel, many over the tensor, so
    the lossless packer picks per-channel codebooks. TFLite's conv kernel [O, H, W, I]
    has runs of H x W x I, the depthwise kernel [1, H, W, C] runs of one element; the
    FC kernel [O, I] is mostly zero, for the sparse layout."""
    from tests import tflite_models

    keras = tflite_models._keras()
    rng = np.random.default_rng(0)
    model = keras.Sequential(
        [
            keras.Input((10, 10, 4)),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv"),
            keras.layers.DepthwiseConv2D(5, activation="relu", name="depthwise"),
            keras.layers.Flatten(),
            keras.layers.Dense(12, name="fc"),
        ]
    )
    # Keras kernels end in the output channels ((H, W, C, 1) for the depthwise one).
    layers = (("conv", 0.4, -1), ("depthwise", 0.2, -2), ("fc", 0.94, -1))
    for name, zero, axis in layers:
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        shape = [1] * kernel.ndim
        shape[axis] = kernel.shape[axis]
        p = [(1 - zero) / 2, zero, (1 - zero) / 2]
        sign = rng.choice([-1, 0, 1], kernel.shape, p=p)
        neg, pos = rng.uniform(0.5, 2.0, (2, *shape)).astype(np.float32)
        kernel = np.where(sign > 0, pos, np.where(sign < 0, -neg, 0)).astype(np.float32)
        layer.set_weights([kernel, rng.standard_normal(bias.shape).astype(np.float32)])
    return tflite_models._convert(model)


@pytest.fixture(scope="module")
def per_channel_models():
    plain = per_channel_scaled_model()
    packed = tfedge.compress(plain, lossless=True, progress=False)
    return plain, packed


def test_per_channel_codebooks_run_through_the_delegate(per_channel_models):
    """Lossless per-channel codebooks (payload version 2; dense, their indices Huffman
    or rANS coded, which takes the sparse index's place since format version 3)
    decode in the delegate to the plain model's weights: outputs equal the plain
    model's."""
    plain, packed = per_channel_models
    encodings = [t.encoding for t in packed.report.tensors if t.packed]
    channel = [e for e in encodings if "channel_codebook" in e]
    assert len(channel) == 3 and "dense" in {e.split("/")[0] for e in channel}, (
        encodings
    )
    packed = bytes(packed)
    # The body starts with u16 K, u16 G, u32 C, u32 R.
    sections = [
        struct.unpack_from("<HHII", packed, start + 28)
        for _name, start, _end in payload_spans(packed)
        if packed[start + 6] == 2
    ]
    runs = {run for _k, _g, _c, run in sections}
    assert 1 in runs and len(runs) == 3, runs  # the depthwise kernel has R = 1
    # Each kernel's zero (its most common value, index 0) is stored once, shared.
    assert all(g >= 1 for _k, g, _c, _r in sections), sections
    # Stock kernels on the decoded weights (the sparse ones: test_sparse_kernels.py).
    interp = Interpreter(model_content=packed, num_threads=1, sparse_kernels=False)
    interp.allocate_tensors()
    ref = litert.Interpreter(model_content=plain, num_threads=1)
    ref.allocate_tensors()
    for seed in range(3):
        xs = _inputs(interp, seed)
        for got, want in zip(_run(interp, xs), _run(ref, xs), strict=True):
            np.testing.assert_array_equal(got, want)
    for _si, _oi, _p, w in decode_ops(read(packed)):
        assert interp.get_tensor(w).tobytes() == ref.get_tensor(w).tobytes()

    # Decoded in Prepare instead (persistent, non-constant weights): same weights.
    delegate = load_decode_delegate(constant_weights="0")
    persistent = litert.Interpreter(
        model_content=packed, num_threads=1, experimental_delegates=[delegate]
    )
    persistent.allocate_tensors()
    xs = _inputs(persistent)
    _assert_outputs_close(_run(persistent, xs), _run(ref, xs), [0.0])
    for _si, _oi, _p, w in decode_ops(read(packed)):
        assert persistent.get_tensor(w).tobytes() == ref.get_tensor(w).tobytes()


def test_per_channel_payload_that_does_not_tile_fails_prepare(per_channel_models):
    _plain, packed = per_channel_models
    packed = bytes(packed)
    spans = [sp for sp in payload_spans(packed) if packed[sp[1] + 6] == 2]
    assert spans, "the model must have a per-channel codebook payload"
    name, start, end = spans[0]
    bad = bytearray(packed)
    channels_at = start + 28 + 4  # u32 C follows u16 K and u16 G at the body's start
    channels = struct.unpack_from("<I", bad, channels_at)[0]
    struct.pack_into("<I", bad, channels_at, channels + 1)
    bad[start:end] = fix_crc(bad[start:end])
    err = _expect_prepare_error(bytes(bad), "do not tile")
    assert err.tensor == name
    assert err.offset == 32  # where C is


def test_plain_models_run_too(tflite_model):
    plain = tflite_model("dense_f32")
    interp = Interpreter(model_content=plain)
    interp.allocate_tensors()
    ref = litert.Interpreter(model_content=plain)
    ref.allocate_tensors()
    xs = _inputs(interp)
    for a, b in zip(_run(interp, xs), _run(ref, xs), strict=True):
        np.testing.assert_array_equal(a, b)


def test_model_path(tflite_model, tmp_path):
    path = tmp_path / "packed.tflite"
    path.write_bytes(packed_model(tflite_model, "dense-shared"))
    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    assert interp.get_output_details()[0]["shape"].tolist() == [1, 10]


@pytest.mark.parametrize(
    "name,words",
    [("missing.tflite", "does not exist"), (".", "is a directory")],
    ids=["missing", "directory"],
)
def test_model_path_that_is_not_a_file(tmp_path, monkeypatch, name, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"'{re.escape(name)}' {words}"):
        tfedge.Interpreter(model_path=name)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"model_path": "a", "model_content": b"b"},
        {"model_content": b"x", "num_threads": 0},
    ],
    ids=["neither", "both", "zero-threads"],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="Expected"):
        Interpreter(**kwargs)


def test_stock_interpreter_failure_says_what_to_do(tflite_model):
    stock = litert.Interpreter(model_content=packed_model(tflite_model, "dense-shared"))
    with pytest.raises(TfedgeError, match=r"tfedge\.Interpreter.*tfedge\.expand"):
        allocate_tensors(stock)


def test_helper_passes_plain_models(tflite_model):
    stock = litert.Interpreter(model_content=tflite_model("dense_f32"))
    allocate_tensors(stock)
    assert stock.get_input_details()


# --- bad payloads fail Prepare with a message naming the tensor and the problem -----


def _expect_prepare_error(model_bytes: bytes, match: str):
    interp = Interpreter(model_content=model_bytes)
    with pytest.raises(FormatError, match=match) as err:
        interp.allocate_tensors()
    # The numpy expander refuses the same file.
    with pytest.raises(FormatError):
        tfedge.expand(model_bytes)
    return err.value


@pytest.mark.parametrize(
    "where,problem",
    [
        (0, "magic"),
        (4, "version"),
        (12, "decoded size"),
        (24, "CRC"),
        (40, "CRC"),
        (-1, "CRC"),
    ],
    ids=["magic", "version", "decoded-size", "crc", "body", "last-byte"],
)
def test_flipped_payload_byte(tflite_model, where, problem):
    packed = packed_model(tflite_model, "conv-shared")
    name, start, end = payload_spans(packed)[0]
    bad = bytearray(packed)
    bad[start + (where % (end - start))] ^= 0x5A
    err = _expect_prepare_error(bytes(bad), problem)
    assert err.tensor == name


def test_every_payload_byte_flip_is_caught(tflite_model):
    packed = packed_model(tflite_model, "dense-shared")
    _name, start, end = payload_spans(packed)[-1]
    for pos in range(start, end, max(1, (end - start) // 40)):
        bad = bytearray(packed)
        bad[pos] ^= 0xFF
        with pytest.raises(FormatError):
            Interpreter(model_content=bytes(bad)).allocate_tensors()


@pytest.mark.parametrize("keep", [0, 10, 27, 28, 40, -1])
def test_truncated_payload(tflite_model, keep):
    model = read(packed_model(tflite_model, "dense-shared"))
    si, _oi, p, w = next(iter(decode_ops(model)))
    tensor = model.subgraphs[si].tensors[p]
    data = np.asarray(model.buffers[tensor.buffer].data, np.uint8)
    data = data[: keep % data.size]
    model.buffers[tensor.buffer].data = data
    tensor.shape = np.asarray([data.size], np.int32)
    err = _expect_prepare_error(write(model), "shorter|body size|not a constant")
    assert err.tensor == model.subgraphs[si].tensors[w].name.decode()


def test_payload_for_a_tensor_of_another_shape(tflite_model):
    model = read(packed_model(tflite_model, "dense-shared"))
    si, _oi, _p, w = next(iter(decode_ops(model)))
    t = model.subgraphs[si].tensors[w]
    t.shape = np.asarray(list(t.shape)[:-1] + [int(t.shape[-1]) + 1], np.int32)
    Interpreter_error = _expect_prepare_error(write(model), "bound|bytes")
    assert Interpreter_error.tensor == t.name.decode()


def test_payload_for_a_tensor_of_another_dtype(tflite_model):
    model = read(packed_model(tflite_model, "dense-shared"))
    si, _oi, _p, w = next(iter(decode_ops(model)))
    t = model.subgraphs[si].tensors[w]
    t.type = 2  # INT32: same element size as FLOAT32, another type
    _expect_prepare_error(write(model), "FLOAT32 elements.*INT32")


# --- the layout pin ------------------------------------------------------------------


def _probe(delegate_loader, interpreter_cls, packed: bytes):
    delegate = delegate_loader(_native.native_library_path(), {"probe": "1"})
    interp = interpreter_cls(model_content=packed, experimental_delegates=[delegate])
    report = _native.delegate_probe_report()
    return interp, delegate, report


def _check_probe(report: str, interp, packed: bytes):
    """The delegate's view through tflite_abi.h equals the interpreter's own view."""
    lines = report.splitlines()
    assert lines[0] == f"tensors {len(interp.get_tensor_details())}", (
        "TfLiteContext layout changed: tensors_size disagrees"
    )
    details = {d["index"]: d for d in interp.get_tensor_details()}
    tensors = [ln.split("\t") for ln in lines if ln.startswith("T\t")]
    assert len(tensors) == len(details)
    for _, index, name, ttype, nbytes, _alloc, dims in tensors:
        d = details[int(index)]
        where = f"TfLiteTensor layout changed (tensor {index} {d['name']!r})"
        assert name == d["name"], where
        assert _TFLITE_DTYPES[int(ttype)] == d["dtype"], where
        shape = [int(x) for x in dims.strip("[]").split(",") if x.strip()]
        assert shape == d["shape"].tolist(), where
        assert int(nbytes) == int(np.prod(shape)) * np.dtype(d["dtype"]).itemsize, where
    nodes = [ln.split("\t") for ln in lines if ln.startswith("N\t")]
    ops = {op["index"]: op for op in interp._get_ops_details()}
    n_decode = len(list(decode_ops(read(packed))))
    assert sum(n[3] == "TFEDGE_DECODE" for n in nodes) == n_decode, (
        "TfLiteRegistration layout changed: custom_name disagrees"
    )
    for _, index, code, custom, inputs, outputs in nodes:
        op = ops[int(index)]
        where = f"TfLiteNode/TfLiteRegistration layout changed (node {index})"
        if custom:
            assert (custom, int(code)) == (op["op_name"], 32), where
        elif int(code) in _BUILTIN_NAMES:
            assert _BUILTIN_NAMES[int(code)] == op["op_name"], where
        parse = lambda s: [int(x) for x in s.strip("[]").split(",") if x.strip()]  # noqa: E731
        assert parse(inputs) == op["inputs"].tolist(), where
        assert parse(outputs) == op["outputs"].tolist(), where


@pytest.mark.parametrize("case_id", ["dense-shared", "conv-int8"])
def test_struct_layouts_match_ai_edge_litert(tflite_model, case_id):
    packed = packed_model(tflite_model, case_id)
    interp, _delegate, report = _probe(litert.load_delegate, litert.Interpreter, packed)
    _check_probe(report, interp, packed)
    interp.allocate_tensors()
    ref = _expanded_interpreter(packed)
    for _si, _oi, _p, w in decode_ops(read(packed)):
        assert interp.get_tensor(w).tobytes() == ref.get_tensor(w).tobytes()


def test_struct_layouts_match_tensorflow(tflite_model):
    tf = pytest.importorskip("tensorflow")
    packed = packed_model(tflite_model, "conv-f16")
    with warnings.catch_warnings():
        # tf.lite.Interpreter announces its move to ai_edge_litert.
        warnings.simplefilter("ignore")
        interp, _delegate, report = _probe(
            tf.lite.experimental.load_delegate, tf.lite.Interpreter, packed
        )
        _check_probe(report, interp, packed)
        interp.allocate_tensors()
    ref = _expanded_interpreter(packed)
    xs = _inputs(ref)
    _assert_outputs_close(_run(interp, xs), _run(ref, xs), _output_steps(ref))


def test_unknown_delegate_option_is_refused():
    with pytest.raises(ValueError, match="Failed to load delegate"):
        load_decode_delegate(colour="blue")


def test_decoders_in_several_subgraphs_through_signatures(tflite_model):
    packed = bytes(tfedge.compress(tflite_model("two_signatures"), progress=False))
    assert {si for si, *_ in decode_ops(read(packed))} == {0, 1}
    interp = Interpreter(model_content=packed)
    ref = litert.Interpreter(model_content=tfedge.expand(packed))
    rng = np.random.default_rng(0)
    for key in interp.get_signature_list():
        runner, ref_runner = (
            interp.get_signature_runner(key),
            ref.get_signature_runner(key),
        )
        inputs = {
            k: rng.standard_normal(v["shape"]).astype(v["dtype"])
            for k, v in runner.get_input_details().items()
        }
        got, want = runner(**inputs), ref_runner(**inputs)
        for k in want:
            _assert_outputs_close([got[k]], [want[k]], [0.0])


def test_resize_and_reallocate_keeps_the_decoded_weights(tflite_model):
    packed = packed_model(tflite_model, "dense-shared")
    interp = Interpreter(model_content=packed)
    interp.allocate_tensors()
    before = _native.delegate_decode_count()
    d = interp.get_input_details()[0]
    interp.resize_tensor_input(d["index"], [4, int(d["shape"][1])])
    interp.allocate_tensors()
    assert _native.delegate_decode_count() == before  # still decoded once
    ref = litert.Interpreter(model_content=tfedge.expand(packed))
    ref.resize_tensor_input(d["index"], [4, int(d["shape"][1])])
    ref.allocate_tensors()
    x = [
        np.random.default_rng(1)
        .standard_normal((4, int(d["shape"][1])))
        .astype(np.float32)
    ]
    _assert_outputs_close(_run(interp, x), _run(ref, x), [0.0])


@pytest.mark.parametrize("case_id", [c[0] for c in CASES])
def test_expand_native_and_numpy_give_identical_files(tflite_model, case_id):
    from tfedge.codecs import decode_payload

    packed = packed_model(tflite_model, case_id)
    native = tfedge.expand(packed, decoder=_native.decode_payload_native)
    assert native == tfedge.expand(packed, decoder=decode_payload)


def test_signature_runner_reports_bad_payloads(tflite_model):
    packed = bytes(tfedge.compress(tflite_model("two_signatures"), progress=False))
    spans = payload_spans(packed)
    _name, start, end = spans[-1]
    bad = bytearray(packed)
    bad[start + (end - start) // 2] ^= 0x5A
    # Payloads of a weight shared by both signatures share one buffer.
    names = {name for name, begin, _ in spans if begin == start}
    interp = Interpreter(model_content=bytes(bad))
    for key in interp.get_signature_list():
        runner = interp.get_signature_runner(key)
        inputs = {
            k: np.zeros(v["shape"], v["dtype"])
            for k, v in runner.get_input_details().items()
        }
        with pytest.raises(FormatError, match="CRC") as err:
            runner(**inputs)
        assert err.value.tensor in names
    with pytest.raises(ValueError, match="signature"):
        interp.get_signature_runner()


# ---------------------------------------------------------------- hostile files


def _stock_with_delegate(data: bytes, **options: str):
    it = litert.Interpreter(
        model_content=data, experimental_delegates=[load_decode_delegate(**options)]
    )
    allocate_tensors(it)
    return it


@pytest.mark.parametrize("constant_weights", ["1", "0"])
def test_second_producer_of_a_weight_is_checked(constant_weights):
    """Two decode nodes write one weight tensor: conflicting payloads are refused in
    both modes (neither the first nor the last silently wins); equal ones run."""
    from tests import _hostile

    bad = _hostile.two_decoders_one_tensor(conflicting=True)()
    with pytest.raises(FormatError, match="two payloads decode to different data"):
        _stock_with_delegate(bad, constant_weights=constant_weights)
    good = _hostile.two_decoders_one_tensor(conflicting=False)()
    it = _stock_with_delegate(good, constant_weights=constant_weights)
    x = np.ones((1, _hostile.IN), np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])
    np.testing.assert_allclose(y[0], _hostile.weights() @ x[0], rtol=FLOAT_RTOL)


def test_early_weights_go_with_their_interpreter():
    """One delegate serving interpreters one after the other: each interpreter's
    decoded weights are freed with it, not kept until the delegate goes."""
    import gc

    from tests import _hostile

    data = _hostile.huffman_block(_hostile.MAX_BLOCK_SIZE)()
    delegate = load_decode_delegate()
    gc.collect()  # interpreters of earlier tests
    before = _native.delegate_held_bytes()
    for _ in range(3):
        it = litert.Interpreter(model_content=data, experimental_delegates=[delegate])
        it.allocate_tensors()
        assert _native.delegate_held_bytes() >= before + 4 * _hostile.BIG_IN * 8
        del it
        gc.collect()
        assert _native.delegate_held_bytes() <= before


def test_resource_bound_and_trusted():
    """A 24 MiB tensor from a 52-byte payload: refused unless the caller trusts the
    file; then it decodes (all zeros)."""
    from tests import _hostile

    data = _hostile.all_fill_model(1 << 21)
    with pytest.raises(FormatError, match="resource bound"):
        Interpreter(model_content=data).allocate_tensors()
    with pytest.raises(FormatError, match="resource bound"):
        _stock_with_delegate(data)  # the delegate alone makes the same check
    it = Interpreter(model_content=data, trusted=True)
    it.allocate_tensors()
    (kernel,) = [d for d in it.get_tensor_details() if d["name"] == "dense/kernel"]
    assert not it.get_tensor(kernel["index"]).any()
