"""`strip` and its protocol, with a stand-in wrapper that is not a pruning wrapper."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tfedge.keras as tk


class DoubledDense(keras.layers.Layer):
    """A stand-in tfedge wrapper: a Dense whose kernel is used doubled."""

    def __init__(self, units, bad=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.bad = bad

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units), name="kernel"
        )
        self._in = input_shape[-1]

    def call(self, x):
        return keras.ops.matmul(x, 2.0 * self.kernel)

    def tfedge_strip(self):
        if self.bad == "not_a_layer":
            return "oops"
        plain = keras.layers.Dense(self.units, use_bias=False, name=self.name)
        if self.bad == "unbuilt":
            return plain
        plain.build((None, self._in))
        plain.kernel.assign(2.0 * keras.ops.convert_to_numpy(self.kernel))
        return plain


def _model(bad=None):
    keras.utils.set_random_seed(0)
    inner = keras.Sequential(
        [keras.Input((6,)), DoubledDense(5, bad=bad, name="inner_doubled")],
        name="inner",
    )
    inp = keras.Input((4,))
    h = DoubledDense(6, bad=bad, name="doubled")(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    out = keras.layers.Dense(3, name="head")(inner(h))
    return keras.Model(inp, out, name="outer")


def test_strip_replaces_every_protocol_layer_at_any_depth():
    model = _model()
    x = np.random.default_rng(0).normal(size=(7, 4)).astype("float32")
    model.get_layer("bn").moving_mean.assign(np.full((6,), 0.5, "float32"))
    plain = tk.strip(model)
    assert plain is not model
    assert type(plain.get_layer("doubled")) is keras.layers.Dense
    assert (
        type(plain.get_layer("inner").get_layer("inner_doubled")) is keras.layers.Dense
    )
    np.testing.assert_allclose(
        plain.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )
    # Weights are copies: changing the stripped model leaves the input model alone.
    plain.get_layer("head").kernel.assign(np.zeros((5, 3), "float32"))
    assert np.any(keras.ops.convert_to_numpy(model.get_layer("head").kernel) != 0)
    assert isinstance(model.get_layer("doubled"), DoubledDense)


def test_strip_leaves_plain_models_equal_and_layers_alone():
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    copy = tk.strip(dense)
    assert copy is not dense and copy.get_layer("d") is not dense.get_layer("d")
    x = np.ones((2, 3), "float32")
    np.testing.assert_array_equal(
        copy.predict(x, verbose=0), dense.predict(x, verbose=0)
    )
    layer = keras.layers.Dense(2)
    assert tk.strip(layer) is layer


@pytest.mark.parametrize(
    "bad, message",
    [("not_a_layer", "must return a Keras layer"), ("unbuilt", "unbuilt layer")],
    ids=["not_a_layer", "unbuilt"],
)
def test_strip_rejects_a_bad_protocol_result(bad, message):
    with pytest.raises(ValueError, match=message):
        tk.strip(_model(bad))


def test_strip_rejects_non_layers():
    with pytest.raises(ValueError, match="Expected a Keras model or layer"):
        tk.strip(42)
