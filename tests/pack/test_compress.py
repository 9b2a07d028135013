"""compress + expand end to end, on models TensorFlow's converter wrote (not tfedge)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tfedge
from tfedge.pack._verify import ModelRunner, drift, make_samples
from tfedge.tflite import buffer_data, opcode_name, read, write

# Models every mode must round-trip: (fixture name, can run in the stock interpreter).
MODELS = [
    ("dense_f32", True),
    ("dense_pruned", True),
    ("conv_f32", True),
    ("conv_f16", True),
    ("conv_int8", True),
    ("conv_int8_io", True),
    ("densify", True),
    ("per_channel", True),
    ("two_subgraphs", True),
    ("two_signatures", True),
    ("custom_op", False),
]
MODEL_IDS = [m for m, _ in MODELS]

# Lossless size ratio of the weight bytes a 90%-pruned float32 MLP must reach: stored
# values keep 32 bits but only 10% are stored, plus a few bits of relative index each,
# so about 7x is the ceiling; 5x leaves room for codebook/stream headers.
PRUNED_LOSSLESS_WEIGHT_RATIO = 5.0
# Default lossy coding of a float32 model: Deep Compression's 4-6 bit sharing plus
# Huffman gives 6-8x on the weights; the whole file (graph, biases) at least 3x.
LOSSY_FILE_RATIO = 3.0
# Payload header, per-channel codebook header and stream headers (docs/FORMAT.md).
PAYLOAD_HEADERS_BYTES = 64
# int8 weights losslessly: Huffman over an exact 256-entry codebook saves little on
# random-init weights (their entropy is ~7 bits); the file must never grow.
NEVER_LARGER = 1.0


def _tensor_bytes(model_bytes: bytes) -> list[list[bytes]]:
    m = read(model_bytes)
    return [[bytes(buffer_data(m, t.buffer)) for t in sg.tensors] for sg in m.subgraphs]


def _structure(model_bytes: bytes):
    m = read(model_bytes)
    return [
        [
            (opcode_name(m, op.opcodeIndex), list(op.inputs), list(op.outputs))
            for op in sg.operators
        ]
        for sg in m.subgraphs
    ]


@pytest.mark.parametrize("name,runnable", MODELS, ids=MODEL_IDS)
def test_lossless_round_trip_is_bit_exact(tflite_model, name, runnable):
    original = tflite_model(name)
    packed = tfedge.compress(original, lossless=True)
    assert len(bytes(packed)) <= len(original) * NEVER_LARGER
    expanded = tfedge.expand(packed)
    assert _tensor_bytes(expanded) == _tensor_bytes(original)
    assert _structure(expanded) == _structure(original)
    assert packed.report.lossless
    if runnable:
        ref = ModelRunner(original)
        samples = make_samples(ref, None, 3)
        got = ModelRunner(expanded).run(samples)
        want = ref.run(samples)
        for a, b in zip(got, want, strict=True):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    "name", [m for m, runnable in MODELS if runnable], ids=[m for m, r in MODELS if r]
)
def test_lossy_stays_within_tolerance(tflite_model, name):
    original = tflite_model(name)
    packed = tfedge.compress(original)
    expanded = tfedge.expand(packed)
    # Measure independently of compress: new random inputs, fresh interpreters.
    ref = ModelRunner(original)
    samples = make_samples(ref, None, 6, seed=123)
    measured = drift(ref.run(samples), ModelRunner(expanded).run(samples))
    # The report's drift was measured on other samples; allow 2x across sample sets.
    assert measured <= 2 * packed.report.tolerance
    assert packed.report.drift is None or packed.report.drift <= packed.report.tolerance
    assert len(bytes(packed)) <= len(original)


def _kernel_rows(report):
    return {t.name: t for t in report.tensors if len(t.shape) == 4}


def test_per_channel_scaled_kernels_get_exact_per_channel_codebooks(tflite_model):
    # Over 256 distinct values in all, three per channel: one codebook cannot hold them,
    # per-channel codebooks can, losslessly, at 2 bits per weight or fewer (Huffman or
    # rANS).
    original = tflite_model("per_channel")
    packed = tfedge.compress(original, lossless=True)
    kernels = _kernel_rows(packed.report)
    assert len(kernels) == 2  # [96, 3, 3, 16] and depthwise [1, 3, 3, 288]
    for row in kernels.values():
        assert row.encoding.split("/")[1:] in (
            ["channel_codebook", "huffman"],
            ["channel_codebook", "rans"],
        ), row
        assert row.weight_error == 0.0 and row.bits == 2
        # 2-bit indices at most, plus three float32 entries per channel and headers.
        channels = row.shape[0] if row.shape[0] > 1 else row.shape[-1]
        table_bytes = channels * 3 * 4 + PAYLOAD_HEADERS_BYTES
        assert row.packed_bytes <= int(np.prod(row.shape)) * 2 / 8 + table_bytes, row
    # 2 for the per-channel codebooks, 3 where a stream is rANS coded.
    assert packed.report.format_version == (3 if "rans" in str(kernels) else 2)
    # The default (lossy) mode never does worse than these exact codebooks: it keeps
    # them, or shares a tensor into fewer bytes within the tolerance.
    lossy = _kernel_rows(tfedge.compress(original).report)
    for name, row in lossy.items():
        assert row.packed_bytes <= kernels[name].packed_bytes, row


def test_lossy_float_model_ratio(tflite_model):
    original = tflite_model("conv_f32")
    packed = tfedge.compress(original)
    assert len(original) / len(bytes(packed)) >= LOSSY_FILE_RATIO
    # Shared tensors take 8 bits or fewer; the search may keep others exact (packed
    # losslessly, no `bits`) to stay within its margin of the tolerance.
    shared = [t for t in packed.report.tensors if t.packed and t.bits]
    assert shared and all(t.bits <= 8 for t in shared)


def test_pruned_weights_shrink_losslessly(tflite_model):
    packed = tfedge.compress(tflite_model("dense_pruned"), lossless=True)
    before, after = packed.report.weight_bytes
    assert before / after >= PRUNED_LOSSLESS_WEIGHT_RATIO
    kernels = [t for t in packed.report.tensors if t.packed and len(t.shape) == 2]
    big = [t for t in kernels if t.original_bytes >= 64 * 1024]
    assert big and all(t.encoding.startswith("sparse/") for t in big)
    assert all(t.sparsity >= 0.85 for t in kernels)


def test_pruned_zeros_stay_exact_when_lossy(tflite_model):
    original = tflite_model("dense_pruned")
    expanded = read(tfedge.expand(tfedge.compress(original, bits=3)))
    plain = read(original)
    for t in plain.subgraphs[0].tensors:
        ref = buffer_data(plain, t.buffer).view(np.uint8)
        if ref.size < 1024 or t.type != 0:
            continue
        got = buffer_data(expanded, t.buffer).view(np.float32)
        zeros = ref.view(np.float32) == 0
        assert np.all(got[zeros] == 0)


def test_explicit_bits_are_used(tflite_model):
    packed = tfedge.compress(tflite_model("dense_f32"), bits=6, tolerance=0.5)
    assert {t.bits for t in packed.report.tensors if t.packed} <= {6}


def test_backs_off_when_tolerance_is_tight(tflite_model):
    loose = tfedge.compress(tflite_model("conv_f32"), bits=2, tolerance=0.9)
    tight = tfedge.compress(tflite_model("conv_f32"), bits=2, tolerance=0.002)
    assert tight.report.backed_off
    assert tight.report.drift <= 0.002
    assert len(bytes(tight)) > len(bytes(loose))


def test_float16_weights_stay_float16(tflite_model):
    packed = tfedge.compress(tflite_model("conv_f16"))
    rows = [t for t in packed.report.tensors if t.packed]
    assert rows and {t.dtype for t in rows} == {"FLOAT16"}
    assert "DEQUANTIZE" in str(_structure(tfedge.expand(packed)))


def _sparse_tensors(data: bytes) -> list:
    """(name, buffer bytes, every index vector's type and bytes) of each tensor with
    `sparsity`."""
    model = read(data)
    return [
        (
            t.name,
            bytes(buffer_data(model, t.buffer)),
            [
                (d.format, d.denseSize, d.arraySegmentsType, d.arrayIndicesType)
                + tuple(
                    None if v is None else np.asarray(v.values).tobytes()
                    for v in (d.arraySegments, d.arrayIndices)
                )
                for d in t.sparsity.dimMetadata
            ],
        )
        for sg in model.subgraphs
        for t in sg.tensors
        if t.sparsity is not None
    ]


def test_densify_tensor_is_packed_exactly(tflite_model):
    """DENSIFY-sparse tensors are packed as their dense tensors (docs/FORMAT.md
    section 1.1), exactly even in the default lossy mode: expand gives back their
    values and sparsity tables bit for bit, and the interpreter runs the packed file
    without DENSIFY."""
    original = tflite_model("densify")
    packed = tfedge.compress(original)
    assert packed.report.format_version == 4
    expanded = tfedge.expand(packed)
    assert _sparse_tensors(expanded) == _sparse_tensors(original)
    densify_ops = [str(_structure(d)).count("'DENSIFY'") for d in (packed, expanded)]
    assert densify_ops[0] < densify_ops[1], "a DENSIFY tensor must be packed"
    assert _structure(expanded) == _structure(original)
    from ai_edge_litert.interpreter import Interpreter as StockInterpreter

    def run(interpreter_class, data: bytes) -> list[np.ndarray]:
        it = interpreter_class(model_content=data)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        rng = np.random.default_rng(0)
        it.set_tensor(d["index"], rng.standard_normal(d["shape"]).astype(np.float32))
        it.invoke()
        return [it.get_tensor(o["index"]) for o in it.get_output_details()]

    # The stock kernels, as the expansion runs them (the delegate's sparse kernels sum
    # in another order).
    def stock_kernels(**kw):
        return tfedge.Interpreter(sparse_kernels=False, **kw)

    got, want = run(stock_kernels, bytes(packed)), run(StockInterpreter, expanded)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_buffer_shared_by_two_subgraphs(tflite_model):
    original = tflite_model("two_signatures")
    model = read(original)
    shared = {t.buffer for t in model.subgraphs[0].tensors} & {
        t.buffer for t in model.subgraphs[1].tensors
    }
    shared = {b for b in shared if buffer_data(model, b).size > 256}
    assert shared, "the test model must share a weight buffer between its subgraphs"
    packed = tfedge.compress(original, bits=8)
    out = read(bytes(packed))
    decoded_in = [
        {
            int(op.outputs[0])
            for op in sg.operators
            if op.opcodeIndex == len(out.operatorCodes) - 1
        }
        for sg in out.subgraphs
    ]
    assert all(decoded_in), "each subgraph decodes its own copy of the shared weight"
    expanded = read(tfedge.expand(packed))
    assert len(expanded.buffers) == len(model.buffers)


def test_unknown_custom_op_is_kept_and_lossy_falls_back(tflite_model):
    original = tflite_model("custom_op")
    with pytest.warns(UserWarning, match="does not run in the stock interpreter"):
        packed = tfedge.compress(original)
    assert packed.report.lossless
    expanded = read(tfedge.expand(packed))
    ops = [op for op in expanded.subgraphs[0].operators]
    custom = [
        op for op in ops if opcode_name(expanded, op.opcodeIndex) == "ACME_SECRET"
    ]
    assert len(custom) == 1
    assert (
        bytes(np.asarray(custom[0].customOptions, np.uint8))
        == b"\x01\x02secret-options"
    )


def test_external_buffers_round_trip(tflite_model):
    original = tflite_model("dense_f32")
    external = write(read(original), external_buffers=True)
    packed = tfedge.compress(external, lossless=True)
    assert _tensor_bytes(tfedge.expand(packed)) == _tensor_bytes(original)


def test_compress_accepts_keras_model():
    from tests.tflite_models import dense_model

    packed = tfedge.compress(dense_model())
    assert packed.report.ratio > 1.0
    assert any("TFLiteConverter" in n for n in packed.report.notes)


def test_compress_again_expands_first(tflite_model):
    once = tfedge.compress(tflite_model("dense_f32"), lossless=True)
    twice = tfedge.compress(bytes(once), lossless=True)
    assert _tensor_bytes(tfedge.expand(twice)) == _tensor_bytes(
        tflite_model("dense_f32")
    )
    assert any("already packed" in n for n in twice.report.notes)


# The report's drift against the same drift computed here from the same samples, in the
# same interpreter: equal up to the order of float operations.
DRIFT_RTOL = 1e-5


def _drift_on(plain: bytes, packed: bytes, x: np.ndarray) -> float:
    from ai_edge_litert.interpreter import Interpreter

    outs = []
    for model in (plain, tfedge.expand(packed)):
        it = Interpreter(model_content=model)
        it.allocate_tensors()
        (inp,), (out,) = it.get_input_details(), it.get_output_details()
        ys = []
        for sample in x:
            it.set_tensor(inp["index"], sample[None])
            it.invoke()
            ys.append(it.get_tensor(out["index"]).copy())
        outs.append(np.stack(ys))
    ref, got = outs
    return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


def test_representative_data_is_used(tflite_model):
    """The drifts reported are the drifts on the samples given (not on generated ones):
    the search samples and the held-out ones alternate, each drift recomputed here from
    its own half, and different for other samples."""
    plain = tflite_model("dense_f32")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 32)).astype(np.float32)
    packed = tfedge.compress(plain, bits=3, tolerance=0.99, representative_data=x)
    ours = _drift_on(plain, bytes(packed), x[0::2])
    assert ours > 0
    assert packed.report.drift == pytest.approx(ours, rel=DRIFT_RTOL)
    assert packed.report.held_out_drift == pytest.approx(
        _drift_on(plain, bytes(packed), x[1::2]), rel=DRIFT_RTOL
    )
    # Other inputs (two large samples): the same packing, another drift.
    y = np.abs(rng.standard_normal((2, 32))).astype(np.float32) * 10
    other = tfedge.compress(plain, bits=3, tolerance=0.99, representative_data=y)
    assert bytes(other) == bytes(packed)
    assert other.report.drift == pytest.approx(
        _drift_on(plain, bytes(packed), y[0::2]), rel=DRIFT_RTOL
    )
    assert other.report.drift != pytest.approx(ours, rel=DRIFT_RTOL)


def test_report_table_and_json(tflite_model):
    packed = tfedge.compress(tflite_model("conv_f32"))
    text = packed.report.table()
    assert "weights:" in text and "file:" in text
    d = json.loads(packed.report.to_json())
    assert d["packed_bytes"] == len(bytes(packed))
    row_keys = {
        "name",
        "shape",
        "dtype",
        "original_bytes",
        "encoding",
        "bits",
        "sparsity",
        "packed_bytes",
        "entropy_bytes",
        "weight_error",
        "bits_per_weight",
    }
    assert row_keys <= set(d["tensors"][0])
    for row in d["tensors"]:
        if row["encoding"] != "raw":
            # Huffman is within one bit per symbol of the entropy floor (plus tables).
            assert row["packed_bytes"] >= row["entropy_bytes"] * 0.99


def test_packed_save_and_repr(tmp_path, tflite_model):
    packed = tfedge.compress(tflite_model("dense_f32"))
    path = tmp_path / "m.tflite"
    packed.save(path)
    assert path.read_bytes() == bytes(packed)
    assert "smaller" in repr(packed)
    assert tfedge.expand(str(path)) == packed.expand()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"bits": 9}, "bits"),
        ({"bits": 0}, "bits"),
        ({"tolerance": 0.0}, "tolerance"),
        ({"tolerance": 1.5}, "tolerance"),
        ({"init": "kmeans++"}, "init"),
        ({"target": "onnx"}, "target"),
        ({"num_samples": 0}, "num_samples"),
    ],
    ids=["bits9", "bits0", "tol0", "tol1.5", "init", "target", "samples"],
)
def test_bad_arguments(tflite_model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tfedge.compress(tflite_model("dense_f32"), **kwargs)


def test_wrong_representative_shape(tflite_model):
    with pytest.raises(ValueError, match="rank"):
        tfedge.compress(
            tflite_model("dense_f32"), representative_data=[np.zeros((2, 3, 4))]
        )


def test_not_a_model():
    with pytest.raises(tfedge.FormatError, match="not a .tflite"):
        tfedge.compress(b"PK\x03\x04 this is a zip file, not a model")
    with pytest.raises(TypeError, match="Expected a .tflite"):
        tfedge.compress(12345)


def test_compress_accepts_tf_keras_model():
    tf_keras = pytest.importorskip("tf_keras")
    model = tf_keras.Sequential(
        [tf_keras.Input((32,)), tf_keras.layers.Dense(64), tf_keras.layers.Dense(10)]
    )
    packed = tfedge.compress(model)
    assert any(t.packed for t in packed.report.tensors)
    assert packed.report.drift <= packed.report.tolerance


def test_compress_accepts_saved_model_and_keras_file(tmp_path):
    from tests.tflite_models import dense_model

    model = dense_model()
    model.export(str(tmp_path / "saved"), verbose=False)
    packed = tfedge.compress(str(tmp_path / "saved"))
    assert any("SavedModel" in n for n in packed.report.notes)
    model.save(tmp_path / "m.keras")
    from_file = tfedge.compress(str(tmp_path / "m.keras"))
    assert any("load_model" in n for n in from_file.report.notes)
    with pytest.raises(tfedge.FormatError, match="saved_model.pb"):
        tfedge.compress(str(tmp_path))
