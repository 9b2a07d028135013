"""walk_layers: the one layer walker (model order, nested models followed by their
layers, or left out with include_models=False); is_keras_model without importing
Keras."""

from __future__ import annotations

import keras
import pytest

from tfedge._layers import is_keras_model, walk_layers


def _nested() -> keras.Model:
    inner = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, name="b"),
            keras.layers.ReLU(name="c"),
        ],
        name="inner",
    )
    inputs = keras.Input((4,), name="x")
    hidden = keras.layers.Dense(4, name="a")(inputs)
    out = keras.layers.Dense(2, name="d")(inner(hidden))
    return keras.Model(inputs, out, name="outer")


@pytest.mark.parametrize(
    ("include_models", "names"),
    [
        (True, ["x", "a", "inner", "b", "c", "d"]),
        (False, ["x", "a", "b", "c", "d"]),
    ],
)
def test_model_order_with_and_without_nested_models(include_models, names):
    layers = walk_layers(_nested(), include_models=include_models)
    assert [layer.name for layer in layers] == names


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]), True),
        (keras.layers.Dense(1), False),
        (b"TFL3", False),
    ],
)
def test_is_keras_model(obj, expected):
    assert is_keras_model(obj) is expected
