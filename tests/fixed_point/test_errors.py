"""Every bad input named in issue 9 gets a clear error (or the documented clamp)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tfedge.fixed_point as fp
from tests.fixed_point.conftest import small_convnet

BAD_ARGUMENTS = [
    (dict(weight_bits=1), r"Expected `weight_bits` in \[2, 8\] \(TFLite's integer "),
    (
        dict(weight_bits=9),
        r"Expected `weight_bits` in \[2, 8\].*Received: weight_bits=9",
    ),
    (dict(weight_bits=17), r"Received: weight_bits=17"),
    (dict(weight_bits=8.0), r"Expected `weight_bits` to be an int"),
    (dict(weight_bits=True), r"Expected `weight_bits` to be an int"),
    (dict(activation_bits=1), r"Expected `activation_bits` in \[2, 16\]. Received: "),
    (dict(activation_bits=17), r"Received: activation_bits=17"),
    (dict(activation_bits="8"), r"Expected `activation_bits` to be an int"),
    (
        dict(bits_per_layer={"fc9": 4}),
        r"names layer 'fc9', which is not a weight layer",
    ),
    (dict(bits_per_layer={"flatten": 4}), r"names layer 'flatten', which is not"),
    (
        dict(bits_per_layer={"fc1": 1}),
        r"Expected `bits_per_layer\['fc1'\]` in \[2, 8\]",
    ),
    (dict(bits_per_layer={"fc1": 16}), r"Received: bits_per_layer\['fc1'\]=16"),
    (dict(bits_per_layer=[("fc1", 4)]), r"Expected `bits_per_layer` to be a mapping"),
    (dict(mode="affine"), r"Expected `mode` in \('dynamic', 'static'\)"),
]


@pytest.mark.parametrize(
    "kwargs,message", BAD_ARGUMENTS, ids=[str(k) for k, _ in BAD_ARGUMENTS]
)
def test_bad_arguments(convnet, data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fp.quantize(convnet, data, **kwargs)


BAD_DATA = [
    (np.zeros((0, 10, 10, 2), np.float32), "at least one sample"),
    (np.zeros((4, 10, 10, 3), np.float32), r"shape \(n, 10, 10, 2\).*\(4, 10, 10, 3\)"),
    (np.zeros((4, 100), np.float32), r"Received: shape \(4, 100\)"),
    (np.full((4, 10, 10, 2), np.nan, np.float32), "inf or NaN"),
    ([np.zeros((10, 10, 2)), np.zeros((9, 10, 2))], "cannot convert"),
    ("images", "cannot convert"),
]


@pytest.mark.parametrize(
    "bad,message", BAD_DATA, ids=["empty", "channels", "rank", "nan", "ragged", "str"]
)
def test_bad_representative_data(convnet, bad, message):
    with pytest.raises(ValueError, match=message):
        fp.quantize(convnet, bad)


def test_kernel_range_that_overflows_every_length(data):
    model = small_convnet()
    fc1 = model.get_layer("fc1")
    k, b = fc1.get_weights()
    k[0, 0] = 1e12
    fc1.set_weights([k, b])
    with pytest.raises(
        ValueError, match=r"layer 'fc1' kernel overflows every fractional length at 8"
    ):
        fp.quantize(model, data)


def test_feature_map_range_that_overflows_every_length():
    model = small_convnet()
    x = np.full((4, 10, 10, 2), 3e7, np.float32)
    with pytest.raises(
        ValueError, match=r"the input overflows every fractional length"
    ):
        fp.quantize(model, x, activation_bits=4)


def test_tiny_feature_maps_are_clamped_with_a_warning(data):
    model = small_convnet()
    with pytest.warns(UserWarning, match=r"the input has range .* clamped to 24"):
        fp.quantize(model, data * 1e-9)


def _model(*layers, shape=(6,)):
    return keras.Sequential([keras.Input(shape), *layers])


UNSUPPORTED = [
    (
        lambda: _model(keras.layers.Dense(3, activation="softmax", name="out")),
        r"layer 'out' \(Dense\) has activation 'softmax'",
    ),
    (
        lambda: _model(keras.layers.Dense(3), keras.layers.BatchNormalization()),
        r"\(BatchNormalization\) is not supported.*Fold batch normalization",
    ),
    (
        lambda: _model(keras.layers.Dense(3, name="d"), shape=(4, 6)),
        r"layer 'd' \(Dense\) takes an input of rank 3",
    ),
    (lambda: _model(keras.layers.Flatten()), "has no Conv2D, DepthwiseConv2D or Dense"),
    (lambda: "model.keras", "Expected `model` to be a keras.Model"),
    (lambda: keras.Sequential([keras.layers.Dense(3)]), "has no known input shape"),
]


@pytest.mark.parametrize(
    "make,message",
    UNSUPPORTED,
    ids=["softmax", "batchnorm", "dense3d", "none", "path", "unbuilt"],
)
def test_unsupported_models(make, message):
    model = make()
    with pytest.raises(ValueError, match=message):
        fp.quantize(model, np.zeros((2, 6), np.float32))


def test_branching_functional_model_is_rejected():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,))
    a = keras.layers.Dense(4, name="a")(inp)
    b = keras.layers.Dense(4, name="b")(inp)
    out = keras.layers.Dense(2, name="c")(keras.layers.Add()([a, b]))
    with pytest.raises(ValueError, match=r"\(Add\) is not supported"):
        fp.quantize(keras.Model(inp, out), np.ones((2, 6), np.float32))


def test_shared_layer_model_is_rejected():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,))
    shared = keras.layers.Dense(6, name="shared")
    out = keras.layers.Dense(2, name="c")(shared(shared(inp)))
    with pytest.raises(ValueError, match="is not a chain of layers"):
        fp.quantize(keras.Model(inp, out), np.ones((2, 6), np.float32))
