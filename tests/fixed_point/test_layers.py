"""The Keras simulation layers: rounding, gradients, config and .keras round trips."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfedge.fixed_point import FixedPointQuantize, FixedPointWeights, _numeric


def test_quantize_layer_matches_numpy():
    x = np.random.default_rng(0).normal(0, 2, (4, 7)).astype(np.float32)
    got = keras.ops.convert_to_numpy(FixedPointQuantize(6, 3)(x))
    np.testing.assert_array_equal(got, _numeric.quantize(x, 6, 3))


def test_quantize_layer_passes_gradients_straight_through():
    x = tf.constant(np.linspace(-3, 3, 11, dtype=np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(FixedPointQuantize(4, 1)(x) * 3.0)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), np.full(11, 3.0))


def _wrapped_dense():
    keras.utils.set_random_seed(0)
    inner = keras.layers.Dense(5, activation="relu", name="d")
    wrapper = FixedPointWeights(
        inner, weight_bits=4, weight_fractional_length=3, bias_fractional_length=6
    )
    model = keras.Sequential(
        [keras.Input((6,)), FixedPointQuantize(8, 5), wrapper, FixedPointQuantize(8, 4)]
    )
    return model, inner


def test_weights_wrapper_uses_rounded_kernel_and_bias():
    model, inner = _wrapped_dense()
    inner.bias.assign(np.linspace(-0.3, 0.3, 5).astype(np.float32))
    x = np.random.default_rng(1).normal(0, 1, (3, 6)).astype(np.float32)
    k = _numeric.quantize(keras.ops.convert_to_numpy(inner.kernel), 4, 3)
    b = _numeric.quantize(keras.ops.convert_to_numpy(inner.bias), 32, 6)
    want = _numeric.quantize(np.maximum(_numeric.quantize(x, 8, 5) @ k + b, 0), 8, 4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), want, atol=1e-6)


def test_weights_wrapper_trains_the_float_weights():
    model, inner = _wrapped_dense()
    before = keras.ops.convert_to_numpy(inner.kernel).copy()
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse", jit_compile=False)
    x = np.random.default_rng(2).normal(0, 1, (16, 6)).astype(np.float32)
    model.fit(x, np.ones((16, 5), np.float32), epochs=1, verbose=0)
    assert np.abs(keras.ops.convert_to_numpy(inner.kernel) - before).max() > 0


def test_config_round_trip_and_keras_file(tmp_path):
    model, _ = _wrapped_dense()
    for layer in model.layers:
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
    path = tmp_path / "sim.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(3).normal(0, 1, (4, 6)).astype(np.float32)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x))
    )


BAD_LAYER_ARGS = [
    (
        lambda: FixedPointQuantize(1, 0),
        r"Expected `bits` in \[2, 64\]. Received: bits=1",
    ),
    (lambda: FixedPointQuantize(8, 1.5), "Expected `fractional_length` to be an int"),
    (
        lambda: FixedPointWeights(keras.layers.Dense(2), 0, 3),
        r"Expected `weight_bits` in \[2, 64\]. Received: weight_bits=0",
    ),
]


@pytest.mark.parametrize(
    "make,message", BAD_LAYER_ARGS, ids=["bits", "fractional_length", "weight_bits"]
)
def test_bad_layer_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()
