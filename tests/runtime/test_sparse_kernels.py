"""The delegate's sparse kernels: pruned FULLY_CONNECTED and 1x1 CONV_2D layers of
packed models run sparse in tfedge.Interpreter, with the stock kernels' results.

The reference is the same packed model with `sparse_kernels=False`: its weights are
the same constants, run by the stock kernels (XNNPACK, which TFLite applies by
default), exactly as the expanded model runs.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfedge
import tfedge.keras
from tests import tflite_models
from tests._native import NATIVE
from tfedge.runtime import _native
from tfedge.runtime._interpreter import Interpreter, load_decode_delegate
from tfedge.tflite import read
from tfedge.tflite._model import buffer_data, opcode_name

pytestmark = NATIVE

# Float32: the sparse kernel sums the same products in another order (CSR order, four
# partial sums, FMA), so outputs differ by rounding only: far below 1e-5 of the
# output's scale (the bound), measured about 3e-7 on these models.
FLOAT_RTOL = 1e-5
# 1, a partial tile, one full tile of 8, a tile of 8 and a rest, 32 + 16 + 8 + 3 rows
BATCHES = (1, 3, 8, 11, 59)
# The kernels' instruction sets: "auto" (the public default, the best the CPU has)
# and each one forced through the delegate option `sparse_isa`.
ISAS = _native.SPARSE_ISAS


def _representative(shape):
    rng = np.random.default_rng(0)

    def gen():
        for _ in range(16):
            yield [rng.standard_normal((1, *shape)).astype(np.float32)]

    return gen


def _int8(model, shape) -> bytes:
    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = _representative(shape)
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = tf.int8
    c.inference_output_type = tf.int8
    return c.convert()


def _float(model) -> bytes:
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _mask(model, sparsity, *, bias=0.1, pointwise_only=False):
    """Zero `sparsity` of each Dense / 1x1 Conv2D kernel at random; a non-zero bias (a
    zero bias is dropped by the converter, which tests the bias-less path instead)."""
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            continue
        if not isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
            continue
        if pointwise_only and tuple(layer.kernel_size) != (1, 1):
            continue
        k, b = layer.get_weights()
        layer.set_weights([np.where(rng.random(k.shape) >= sparsity, k, 0), b + bias])
    return model


def mlp(sparsity, bias=0.1):
    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((128,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(96, activation="relu6"),
            keras.layers.Dense(10),
        ]
    )
    return _mask(m, sparsity, bias=bias)


def pointwise_cnn(sparsity):
    """1x1 convolutions around a depthwise one (partitions on both sides of XNNPACK),
    over 3 x 3 pixels: a partial 16-row tile at batch 1, and few enough pixels for the
    general break-even bound (over more, 1x1 convs have a lower one)."""
    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((3, 3, 32)),
            keras.layers.Conv2D(64, 1, activation="relu"),
            keras.layers.DepthwiseConv2D(3, padding="same"),
            keras.layers.Conv2D(48, 1, activation="relu6"),
        ]
    )
    return _mask(m, sparsity)


# (id, builder of the plain .tflite, input shape, sparse layers expected)
CASES = [
    ("mlp-f32", lambda: _float(mlp(0.95)), (128,), 3),
    ("mlp-f32-no-bias", lambda: _float(mlp(0.95, bias=0.0)), (128,), 3),
    ("mlp-int8", lambda: _int8(mlp(0.95), (128,)), (128,), 3),
    ("pointwise-f32", lambda: _float(pointwise_cnn(0.9)), (3, 3, 32), 2),
    ("pointwise-int8", lambda: _int8(pointwise_cnn(0.9), (3, 3, 32)), (3, 3, 32), 2),
    # The sparse models tests/tflite_models.py builds for the other tests.
    (
        "tests-dense-pruned",
        lambda: tflite_models.dense_f32(units=(256, 128), inputs=128, prune=0.9),
        (128,),
        3,
    ),
    ("tests-dense-f32-pruned", lambda: tflite_models.dense_f32(prune=0.95), (32,), 3),
]

_PACKED: dict[str, bytes] = {}


def _packed(case_id: str) -> bytes:
    if case_id not in _PACKED:
        build = next(c[1] for c in CASES if c[0] == case_id)
        _PACKED[case_id] = bytes(tfedge.compress(build(), lossless=True))
    return _PACKED[case_id]


def _run(interp, x: np.ndarray) -> np.ndarray:
    inp = interp.get_input_details()[0]
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def _sparse_interpreter(packed: bytes, isa: str):
    """The packed model with its sparse layers on the sparse kernels: the public
    tfedge.Interpreter for "auto", the delegate with `sparse_isa` forced otherwise
    (skipped where this build or CPU lacks that instruction set)."""
    from ai_edge_litert import interpreter as litert

    if isa == "auto":
        return Interpreter(model_content=packed, num_threads=1)
    if not _native.sparse_isa_supported(isa):
        pytest.skip(f"this build or CPU does not run the sparse kernels' {isa} path")
    return litert.Interpreter(
        model_content=packed,
        num_threads=1,
        experimental_delegates=[load_decode_delegate(sparse_isa=isa)],
    )


def _assert_same_result(got: np.ndarray, want: np.ndarray) -> None:
    if want.dtype == np.int8:
        np.testing.assert_array_equal(got, want)  # bit-exact
    else:
        scale = float(np.max(np.abs(want))) or 1.0
        assert float(np.max(np.abs(got - want))) <= FLOAT_RTOL * scale


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(
    ("case_id", "shape", "layers"), [(c[0], c[2], c[3]) for c in CASES]
)
def test_sparse_layers_give_the_stock_kernels_results(
    case_id, shape, layers, batch, isa
):
    packed = _packed(case_id)
    x = np.random.default_rng(batch).standard_normal((batch, *shape)).astype(np.float32)
    before = _native.sparse_stats()
    got = _run(_sparse_interpreter(packed, isa), x)
    after = _native.sparse_stats()
    assert after["layers"] - before["layers"] == layers
    assert after["runs"] - before["runs"] == layers  # one invoke, each layer once
    want = _run(
        Interpreter(model_content=packed, num_threads=1, sparse_kernels=False), x
    )
    assert _native.sparse_stats()["layers"] == after["layers"]  # none when turned off
    _assert_same_result(got, want)


def test_dense_layers_stay_with_the_stock_kernels():
    """Unpruned weights are above the break-even density: nothing runs sparse."""
    packed = bytes(tfedge.compress(_float(mlp(0.0)), lossless=True))
    before = _native.sparse_stats()["layers"]
    x = np.ones((1, 128), np.float32)
    _run(Interpreter(model_content=packed), x)
    assert _native.sparse_stats()["layers"] == before


def test_break_even_bound_is_a_delegate_option():
    """sparse_max_density lifts the bound (for measuring the break-even): a half-dense
    layer then runs sparse, still with the dense result."""
    from ai_edge_litert import interpreter as litert

    packed = bytes(tfedge.compress(_float(mlp(0.5)), lossless=True))
    x = np.random.default_rng(0).standard_normal((2, 128)).astype(np.float32)
    before = _native.sparse_stats()["layers"]
    want = _run(Interpreter(model_content=packed, num_threads=1), x)
    assert _native.sparse_stats()["layers"] == before  # 50% dense: not worth it
    forced = litert.Interpreter(
        model_content=packed,
        num_threads=1,
        experimental_delegates=[load_decode_delegate(sparse_max_density="1")],
    )
    _assert_same_result(_run(forced, x), want)
    assert _native.sparse_stats()["layers"] - before == 3


def pointwise_conv(side, channels, density):
    """One 1x1 convolution `channels` -> 64 over side x side pixels, `density` kept at
    random."""
    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [keras.Input((side, side, channels)), keras.layers.Conv2D(64, 1)]
    )
    return _mask(m, 1.0 - density)


# (id, pixels per side, input channels, kept fraction, delegate options, runs sparse).
# sparse_kernels.h: a 1x1 conv over more than kConvManyPixels (16) pixels runs sparse
# only up to kConvBreakEvenDensity (0.15, measured slower from 0.2), and only with at
# least kConvMinChannels (32) input channels; over few pixels the general bound (0.2)
# holds; sparse_max_density overrides the measured bounds.
CONV_BOUND_CASES = [
    ("many-pixels-dense", 28, 128, 0.18, {}, False),
    ("few-pixels-sparse", 4, 128, 0.18, {}, True),
    ("bound-overridden", 28, 128, 0.18, {"sparse_max_density": "0.25"}, True),
    ("many-pixels-sparser", 28, 128, 0.1, {}, True),
    ("many-pixels-32-channels", 28, 32, 0.1, {}, True),
    ("many-pixels-few-channels", 28, 16, 0.05, {}, False),
]


@pytest.mark.parametrize(
    ("side", "channels", "density", "options", "sparse"),
    [c[1:] for c in CONV_BOUND_CASES],
    ids=[c[0] for c in CONV_BOUND_CASES],
)
def test_pointwise_convs_over_many_pixels_have_a_lower_bound(
    side, channels, density, options, sparse
):
    from ai_edge_litert import interpreter as litert

    model = _float(pointwise_conv(side, channels, density))
    packed = bytes(tfedge.compress(model, lossless=True))
    x = np.random.default_rng(0).standard_normal((1, side, side, channels))
    x = x.astype(np.float32)
    before = _native.sparse_stats()["layers"]
    it = litert.Interpreter(
        model_content=packed,
        num_threads=1,
        experimental_delegates=[load_decode_delegate(**options)],
    )
    got = _run(it, x)
    assert _native.sparse_stats()["layers"] - before == int(sparse)
    want = _run(
        Interpreter(model_content=packed, num_threads=1, sparse_kernels=False), x
    )
    _assert_same_result(got, want)


_BLOCKED: dict[tuple, bytes] = {}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("block_size", [(1, 4), (4, 1)])
@pytest.mark.parametrize("kind", ["f32", "int8"])
def test_block_pruned_layers_run_blocked(block_size, kind, isa):
    """tfedge.keras.prune(block_size=...) masks become 1x4 / 4x1 blocked CSR."""
    if (block_size, kind) not in _BLOCKED:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(128, activation="relu"),
                keras.layers.Dense(32),
            ]
        )
        pruned = tfedge.keras.prune(
            model,
            schedule=tfedge.keras.ConstantSparsity(0.9, begin_step=0),
            block_size=block_size,
        )
        for layer in pruned.layers:
            layer.prune_now(0.9)
        plain = tfedge.keras.strip(pruned)
        for layer in plain.layers:
            k, b = layer.get_weights()
            layer.set_weights([k, b + 0.1])
        tflite = _float(plain) if kind == "f32" else _int8(plain, (64,))
        _BLOCKED[block_size, kind] = bytes(tfedge.compress(tflite, lossless=True))
    packed = _BLOCKED[block_size, kind]
    # 32 + 16 + 8 + 3 rows: every tile height
    x = np.random.default_rng(0).standard_normal((59, 64)).astype(np.float32)
    before = _native.sparse_stats()
    got = _run(_sparse_interpreter(packed, isa), x)
    after = _native.sparse_stats()
    assert after["layers"] - before["layers"] == 2
    assert after["blocked"] - before["blocked"] == 2
    want = _run(
        Interpreter(model_content=packed, num_threads=1, sparse_kernels=False), x
    )
    _assert_same_result(got, want)


def test_sparse_isa_option_is_checked():
    """Every build runs the baseline path; unknown names are refused, by the query
    and by the delegate."""
    assert _native.sparse_isa_supported("auto")
    assert _native.sparse_isa_supported("generic")
    with pytest.raises(ValueError, match="name"):
        _native.sparse_isa_supported("sse9")
    with pytest.raises(ValueError):
        load_decode_delegate(sparse_isa="sse9")


def test_sparse_kernels_option_is_checked():
    with pytest.raises(ValueError, match="sparse_kernels"):
        Interpreter(model_content=_packed("mlp-f32"), sparse_kernels="yes")


# --- the published-model corpus (tests/corpus/manifest.json, scripts/corpus.py) ------

_MANIFEST = os.path.join(os.path.dirname(__file__), "..", "corpus", "manifest.json")


def _corpus_entries() -> list[dict]:
    if not os.path.exists(_MANIFEST):
        return []
    with open(_MANIFEST) as f:
        return json.load(f)["models"]


def _corpus_file(entry: dict) -> str:
    directory = os.environ.get("TFEDGE_CORPUS_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "tfedge", "corpus"
    )
    return os.path.join(directory, f"{entry['id']}.tflite")


def _sparse_candidates(model_bytes: bytes) -> int:
    """FULLY_CONNECTED and 1x1 stride-1 CONV_2D operators with constant float32/int8
    weights: the layers the sparse kernels can take once packed."""
    model = read(model_bytes)
    n = 0
    for sg in model.subgraphs:
        for op in sg.operators or []:
            name = opcode_name(model, op.opcodeIndex)
            if name not in ("FULLY_CONNECTED", "CONV_2D") or len(op.inputs) < 2:
                continue
            w = sg.tensors[op.inputs[1]]
            if w.type not in (0, 9) or buffer_data(model, w.buffer).size == 0:
                continue
            if name == "CONV_2D" and tuple(int(d) for d in w.shape[1:3]) != (1, 1):
                continue
            n += 1
    return n


def _corpus_inputs(interp, entry: dict, rng) -> list[np.ndarray]:
    lo, hi = entry.get("input_range", [-1, 1])
    xs = []
    for d in interp.get_input_details():
        shape = [max(int(s), 1) for s in d["shape"]]
        if np.dtype(d["dtype"]).kind == "f":
            xs.append(rng.uniform(lo, hi, shape).astype(d["dtype"]))
        else:
            info = np.iinfo(d["dtype"])
            xs.append(rng.integers(info.min, info.max + 1, shape).astype(d["dtype"]))
    return xs


def _corpus_run(interp, xs) -> list[np.ndarray]:
    interp.allocate_tensors()
    for d, x in zip(interp.get_input_details(), xs, strict=True):
        interp.set_tensor(d["index"], x)
    interp.invoke()
    outputs = interp.get_output_details()
    return [np.array(interp.get_tensor(d["index"])) for d in outputs]


@pytest.mark.parametrize("entry", _corpus_entries(), ids=lambda e: e["id"])
def test_corpus_layers_run_sparse_with_the_stock_results(entry):
    """Published models are not pruned, so no layer is below the break-even density;
    with the bound lifted (sparse_max_density=1) every packed FULLY_CONNECTED / 1x1
    CONV_2D runs on the sparse kernels, which must still give the stock results:
    real shapes, real (per-channel) quantization, real graphs around them."""
    from ai_edge_litert import interpreter as litert

    path = _corpus_file(entry)
    if not os.path.exists(path):
        pytest.skip(f"{entry['id']} is not fetched (scripts/corpus.py)")
    with open(path, "rb") as f:
        plain = f.read()
    if _sparse_candidates(plain) == 0:
        pytest.skip(
            f"{entry['id']}: no FULLY_CONNECTED or 1x1 CONV_2D with constant "
            "float32/int8 weights (float16 weights, for one, run behind DEQUANTIZE)"
        )
    packed = bytes(tfedge.compress(plain, lossless=True))
    before = _native.sparse_stats()["layers"]
    forced = litert.Interpreter(
        model_content=packed,
        num_threads=1,
        experimental_delegates=[load_decode_delegate(sparse_max_density="1")],
    )
    if _native.sparse_stats()["layers"] == before:
        pytest.skip(f"{entry['id']}: tfedge packed none of those layers' weights")
    stock = Interpreter(model_content=packed, num_threads=1, sparse_kernels=False)
    xs = _corpus_inputs(stock, entry, np.random.default_rng(0))
    for got, want in zip(_corpus_run(forced, xs), _corpus_run(stock, xs), strict=True):
        if want.dtype.kind == "f":
            _assert_same_result(got, want)
        else:
            np.testing.assert_array_equal(got, want)
