"""quantize: the weight phase, the greedy data phase, the simulation and the export."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

import tfedge.fixed_point as fp
from tests.fixed_point.conftest import small_convnet
from tfedge.fixed_point import _numeric

# Output steps by which the .tflite may differ from the simulation: values within one
# accumulator unit of a rounding tie can come out one step apart (TFLite rescales with
# two roundings), and such a step grows through later layers; measured at most 4 here.
DRIFT_LSB = 8
WEIGHT_LAYERS = ["conv1", "conv2", "fc1", "fc2"]
# The 8-bit simulation against the float model, relative to the largest float output:
# each of three or four roundings adds up to half a step of its map; measured up to
# 7% (max) and 1.5% (mean) on these random-weight models.
SIM_MAX_ERROR = 0.1
SIM_MEAN_ERROR = 0.03


@pytest.fixture(scope="module")
def result(convnet, data):
    return fp.quantize(convnet, data)


def _run_tflite(flat: bytes, x: np.ndarray) -> np.ndarray:
    interp = Interpreter(model_content=flat)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return interp.get_tensor(out["index"])


def _float_maps(model, x):
    """The float model's output after each weight layer (and a ReLU layer after it)."""
    maps, y, last = {}, x, None
    for layer in model.layers:
        y = keras.ops.convert_to_numpy(layer(y, training=False))
        if layer.name in WEIGHT_LAYERS:
            last = layer.name
            maps[last] = y
        elif isinstance(layer, keras.layers.ReLU) and last is not None:
            maps[last] = y
        else:
            last = None
    return maps


def _sim_before_rounding(result, x):
    """The simulation's values just before each weight layer's output rounding."""
    maps, y = {}, x
    for layer in result.model.layers:
        if layer.name.removesuffix("_fixed_point") in WEIGHT_LAYERS:
            maps[layer.name.removesuffix("_fixed_point")] = keras.ops.convert_to_numpy(
                y
            )
        y = layer(y, training=False)
    return maps


def test_weight_phase_gives_each_kernel_its_length(result, convnet):
    assert list(result.weight_fractional_lengths) == WEIGHT_LAYERS
    for name, fl in result.weight_fractional_lengths.items():
        k = convnet.get_layer(name).get_weights()[0]
        start = _numeric.no_overflow_length(float(np.abs(k).max()), 8)
        assert start <= fl <= start + _numeric.SEARCH_ABOVE
        errors = [
            np.abs(k - _numeric.quantize(k, 8, f)).sum() for f in (fl - 1, fl + 1)
        ]
        if fl > start:
            assert np.abs(k - _numeric.quantize(k, 8, fl)).sum() <= errors[0]
        assert np.abs(k - _numeric.quantize(k, 8, fl)).sum() <= errors[1]


def test_data_phase_is_greedy_against_the_float_model(result, convnet, data):
    floats = _float_maps(convnet, data)
    pre = _sim_before_rounding(result, data)
    assert list(result.activation_fractional_lengths) == ["input", *WEIGHT_LAYERS]
    for rec in result.layers:
        y, ref = pre[rec.name], floats[rec.name]
        start = _numeric.no_overflow_length(float(np.abs(y).max()), 8)
        candidates = range(start, start + _numeric.SEARCH_ABOVE + 1)
        errors = {f: np.abs(ref - _numeric.quantize(y, 8, f)).sum() for f in candidates}
        assert rec.output_fractional_length == min(errors, key=errors.get), rec
    # Each layer reads the grid the previous one wrote, and the bias sits at the sum.
    grids = [result.input_fractional_length] + [
        r.output_fractional_length for r in result.layers
    ]
    for rec, grid in zip(result.layers, grids, strict=False):
        assert rec.input_fractional_length == grid
        assert rec.bias_fractional_length == grid + rec.weight_fractional_length


def test_simulation_is_close_to_float(result, convnet, data):
    want = keras.ops.convert_to_numpy(convnet(data))
    got = keras.ops.convert_to_numpy(result.model(data))
    assert np.abs(got - want).max() < SIM_MAX_ERROR * np.abs(want).max()
    assert np.abs(got - want).mean() < SIM_MEAN_ERROR * np.abs(want).max()
    assert np.mean(got.argmax(1) == want.argmax(1)) >= 0.9


def test_dynamic_beats_static_when_layer_ranges_differ(data):
    model = small_convnet(seed=3)
    fc1 = model.get_layer("fc1")
    fc1.set_weights([w * 0.02 for w in fc1.get_weights()])
    fc2 = model.get_layer("fc2")
    fc2.set_weights([fc2.get_weights()[0] * 50.0, fc2.get_weights()[1]])
    want = keras.ops.convert_to_numpy(model(data))
    errs = {}
    for mode in fp.MODES:
        res = fp.quantize(model, data, weight_bits=6, activation_bits=6, mode=mode)
        errs[mode] = np.abs(keras.ops.convert_to_numpy(res.model(data)) - want).mean()
        if mode == "static":
            assert len(set(res.weight_fractional_lengths.values())) == 1
            assert len(set(res.activation_fractional_lengths.values())) == 1
    assert errs["dynamic"] < 0.5 * errs["static"], errs


def _tensors(flat: bytes):
    model = schema.ModelT.InitFromPackedBuf(flat, 0)
    return model, model.subgraphs[0]


def _is_power_of_two(scale) -> bool:
    mantissa, _ = np.frexp(np.asarray(scale, np.float64))
    return bool(np.all(mantissa == 0.5))


def _check_grid(flat: bytes, act_type, bias_type) -> None:
    """Every feature-map/kernel tensor and every bias: scale 2**-fl, zero point 0."""
    _, sg = _tensors(flat)
    seen = 0
    for t in sg.tensors:
        q = t.quantization
        quantized = q is not None and q.scale is not None and len(q.scale) > 0
        if t.type == act_type or (t.type == bias_type and quantized):
            assert quantized, t.name
            assert _is_power_of_two(q.scale), (t.name, q.scale)
            assert np.all(np.asarray(q.zeroPoint) == 0), (t.name, q.zeroPoint)
            seen += 1
    assert seen >= 6  # at least the input, two kernels, two biases and an output


def test_export_has_power_of_two_scales_and_runs(result, data):
    flat = bytes(result)
    assert flat[4:8] == b"TFL3"
    _check_grid(flat, schema.TensorType.INT8, schema.TensorType.INT32)
    got = _run_tflite(flat, data)
    want = keras.ops.convert_to_numpy(result.model(data))
    step = 2.0 ** -result.layers[-1].output_fractional_length
    assert np.abs(got - want).max() <= DRIFT_LSB * step
    assert np.mean(got.argmax(1) == want.argmax(1)) >= 0.95
    assert result.export_drift_lsb <= DRIFT_LSB


def test_export_holds_the_chosen_kernel_codes(result, convnet):
    model, sg = _tensors(bytes(result))
    fc2 = next(t for t in sg.tensors if tuple(t.shape) == (3, 12))
    codes = np.frombuffer(bytes(model.buffers[fc2.buffer].data), np.int8).reshape(3, 12)
    k = convnet.get_layer("fc2").get_weights()[0].T
    fl = result.weight_fractional_lengths["fc2"]
    np.testing.assert_array_equal(codes, _numeric.to_codes(k, 8, fl))


def test_int16_feature_maps(convnet, data):
    res = fp.quantize(convnet, data, activation_bits=12)
    flat = bytes(res)
    _check_grid(flat, schema.TensorType.INT16, schema.TensorType.INT64)
    _, sg = _tensors(flat)
    assert any(t.type == schema.TensorType.INT16 for t in sg.tensors)
    assert res.export_drift_lsb <= DRIFT_LSB


def test_narrow_feature_maps_are_clamped_in_the_file(convnet, data):
    res = fp.quantize(convnet, data, activation_bits=5)
    assert max(r.saturated for r in res.layers) > 0  # the clamp matters here
    model, sg = _tensors(bytes(res))
    codes = {
        max(
            model.operatorCodes[op.opcodeIndex].builtinCode,
            model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode,
        )
        for op in sg.operators
    }
    assert {schema.BuiltinOperator.MINIMUM, schema.BuiltinOperator.MAXIMUM} <= codes
    got = _run_tflite(bytes(res), data)
    want = keras.ops.convert_to_numpy(res.model(data))
    step = 2.0 ** -res.layers[-1].output_fractional_length
    assert np.abs(got - want).max() <= DRIFT_LSB * step


def test_four_bit_fc_kernels_hold_sixteen_codes(convnet, data):
    res = fp.quantize(convnet, data, bits_per_layer={"fc1": 4, "fc2": 4})
    assert res.weight_bits == {"conv1": 8, "conv2": 8, "fc1": 4, "fc2": 4}
    model, sg = _tensors(bytes(res))
    fc1 = next(t for t in sg.tensors if tuple(t.shape) == (12, 24))
    codes = np.frombuffer(bytes(model.buffers[fc1.buffer].data), np.int8)
    assert codes.min() >= -8 and codes.max() <= 7
    assert len(np.unique(codes)) <= 16
    assert res.export_drift_lsb <= DRIFT_LSB


def test_fine_tuning_carries_into_the_export(convnet, data):
    res = fp.quantize(convnet, data)
    before = bytes(res)
    res.model.compile(
        optimizer=keras.optimizers.SGD(0.05), loss="mse", jit_compile=False
    )
    res.model.fit(data, np.ones((len(data), 3), np.float32), epochs=1, verbose=0)
    after = bytes(res)
    assert after != before
    got = _run_tflite(after, data)
    want = keras.ops.convert_to_numpy(res.model(data))
    step = 2.0 ** -res.layers[-1].output_fractional_length
    assert np.abs(got - want).max() <= DRIFT_LSB * step


def test_export_that_disagrees_with_the_simulation_raises(convnet, data, monkeypatch):
    from tfedge.errors import TfedgeError
    from tfedge.fixed_point import _export

    res = fp.quantize(convnet, data)
    assert res.export_drift_lsb is None  # exported on first use
    monkeypatch.setattr(_export, "MAX_DRIFT_LSB", -1)
    with pytest.raises(TfedgeError, match="differs from the simulation by"):
        bytes(res)


def test_table_lists_every_layer(result):
    text = result.table()
    assert result.summary() == text
    names = [line.split()[0] for line in text.splitlines()[2:] if line.strip()]
    for name in WEIGHT_LAYERS:
        assert name in names


def _depthwise():
    return keras.Sequential(
        [
            keras.Input((9, 9, 3)),
            keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw"),
            keras.layers.Activation("relu6"),
            keras.layers.Conv2D(4, 1, use_bias=False, name="pw"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, name="fc"),
        ]
    )


def _strided():
    return keras.Sequential(
        [
            keras.Input((9, 9, 3)),
            keras.layers.Conv2D(
                5, 3, strides=2, padding="same", activation="relu6", name="c"
            ),
            keras.layers.Reshape((125,)),
            keras.layers.Dense(6, name="fc"),
            keras.layers.ReLU(),
            keras.layers.Dense(2, use_bias=False, name="out"),
        ]
    )


def _flatten_first():
    """LeNet-300-100's shape (Deep Compression), small: images straight into Dense."""
    return keras.Sequential(
        [
            keras.Input((9, 9, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(30, activation="relu", name="fc1"),
            keras.layers.Dense(10, activation="relu", name="fc2"),
            keras.layers.Dense(3, name="fc3"),
        ]
    )


MORE_MODELS = {
    "depthwise_relu6_no_bias": _depthwise,
    "strided_same_reshape": _strided,
    "flatten_first_mlp": _flatten_first,
}


@pytest.mark.parametrize("make", MORE_MODELS.values(), ids=MORE_MODELS.keys())
def test_more_layer_kinds_export_and_match(make):
    keras.utils.set_random_seed(5)
    model = make()
    for layer in model.layers:  # non-zero biases, so that their export is exercised
        if getattr(layer, "use_bias", False):
            w = layer.get_weights()
            layer.set_weights(
                [w[0], np.linspace(-0.2, 0.3, len(w[1]), dtype=np.float32)]
            )
    x = np.random.default_rng(6).normal(0, 1, (32, 9, 9, 3)).astype(np.float32)
    res = fp.quantize(model, x)
    flat = bytes(res)
    _check_grid(flat, schema.TensorType.INT8, schema.TensorType.INT32)
    got = _run_tflite(flat, x)
    want = keras.ops.convert_to_numpy(res.model(x))
    step = 2.0 ** -res.layers[-1].output_fractional_length
    assert np.abs(got - want).max() <= DRIFT_LSB * step
    floats = keras.ops.convert_to_numpy(model(x))
    assert np.abs(want - floats).max() < SIM_MAX_ERROR * np.abs(floats).max()
    assert np.abs(want - floats).mean() < SIM_MEAN_ERROR * np.abs(floats).max()


def test_four_bit_fc_is_packed_at_four_bits_by_compress():
    import tfedge

    keras.utils.set_random_seed(7)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu", name="fc1"),
            keras.layers.Dense(4, name="fc2"),
        ]
    )
    x = np.random.default_rng(8).uniform(0, 1, (16, 8, 8, 1)).astype(np.float32)
    res = fp.quantize(model, x, bits_per_layer={"fc1": 4})
    flat = bytes(res)
    packed = tfedge.compress(flat, lossless=True)
    fc1 = [t for t in packed.report.tensors if list(t.shape) == [64, 144]]
    assert len(fc1) == 1 and fc1[0].packed
    # 16 codes: 4 bits each plus the codebook and payload header.
    assert fc1[0].packed_bytes <= 0.55 * fc1[0].original_bytes
    assert len(packed) < len(flat)
    np.testing.assert_array_equal(
        _run_tflite(tfedge.expand(packed), x), _run_tflite(flat, x)
    )


def test_tensors_sharing_a_buffer_get_their_own_codes():
    from tfedge.fixed_point import _export

    model = schema.ModelT()
    model.buffers = [schema.BufferT(), schema.BufferT()]
    tensors = []
    for _ in range(2):
        t = schema.TensorT()
        t.type, t.shape, t.buffer = schema.TensorType.INT32, np.int32([3]), 1
        tensors.append(t)
    written: set[int] = set()
    _export._set_data(model, tensors[0], np.int64([1, 2, 3]), "a", written)
    _export._set_data(model, tensors[1], np.int64([4, 5, 6]), "b", written)
    assert tensors[0].buffer == 1 and tensors[1].buffer == 2
    for t, want in zip(tensors, ([1, 2, 3], [4, 5, 6]), strict=True):
        data = np.frombuffer(bytes(model.buffers[t.buffer].data), np.int32)
        np.testing.assert_array_equal(data, want)
