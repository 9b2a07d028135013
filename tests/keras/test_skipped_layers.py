"""The wrappers say which layers they leave as they are (LSTM, custom layers), with
parameter counts, instead of skipping them without a word."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from tfedge import keras as tk


@keras.saving.register_keras_serializable(package="tfedge_tests")
class MatMul(keras.layers.Layer):
    """A custom layer holding its weight matrix as `w` (not `kernel`)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), name="w")

    def call(self, x):
        return keras.ops.matmul(x, self.w)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


# LSTM(8) on 4 features: 4 gates x 8 units x (4 inputs + 8 recurrent + 1 bias).
LSTM_PARAMS = 4 * 8 * (4 + 8 + 1)
CUSTOM_PARAMS = 64 * 64


def _model(with_skipped: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((6, 4))
    if with_skipped:
        x = keras.layers.LSTM(8, name="lstm")(x)
    else:
        x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu", name="d1")(x)
    if with_skipped:
        x = MatMul(64, name="custom")(x)
    x = keras.layers.Dense(64, activation="relu", name="d2")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="out")(x))


# (function, call): each wraps the model with its default layer choice.
WRAPPERS = {
    "prune": lambda m: tk.prune(m, schedule=tk.ConstantSparsity(0.5, begin_step=0)),
    "share_weights": lambda m: tk.share_weights(m, bits=4),
    "ternarize": lambda m: tk.ternarize(m),
    "factorize": lambda m: tk.factorize(m, speedup=1.2, method="svd"),
}


@pytest.mark.parametrize("name", WRAPPERS, ids=list(WRAPPERS))
def test_skipped_layers_are_named_with_parameter_counts(name):
    model = _model(with_skipped=True)
    # Recorded rather than `pytest.warns`, which would re-raise Keras' own numpy
    # deprecation notices that the suite's filters otherwise ignore.
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always", UserWarning)
        WRAPPERS[name](model)
    (message,) = [
        str(w.message) for w in record if f"`{name}` left 2 layers" in str(w.message)
    ]
    assert f"'lstm' (LSTM, {LSTM_PARAMS:,} parameters)" in message
    assert f"'custom' (MatMul, {CUSTOM_PARAMS:,} parameters)" in message
    skipped = LSTM_PARAMS + CUSTOM_PARAMS
    assert f"{skipped:,} of the model's {model.count_params():,}" in message
    assert "'bn'" not in message  # normalization holds vectors only


@pytest.mark.parametrize("name", WRAPPERS, ids=list(WRAPPERS))
def test_no_warning_when_nothing_is_skipped(name):
    model = _model(with_skipped=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        WRAPPERS[name](model)


def test_explicit_choice_does_not_warn():
    model = _model(with_skipped=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        tk.prune(model, schedule={"d1": tk.ConstantSparsity(0.5, begin_step=0)})
        tk.share_weights(model, bits={"d2": 4})
        tk.ternarize(model, layers=["d2"])
    assert np.isfinite(model.count_params())


def test_prune_logs_the_matrices_it_left_dense(monkeypatch):
    from tfedge.keras import _prune

    # Recorded at the call: absl's handler, once set up by an earlier test, keeps
    # INFO records from pytest's capture.
    lines: list[str] = []
    monkeypatch.setattr(
        _prune.logging, "info", lambda msg, *a, **_: lines.append(msg % a)
    )
    model = _model(with_skipped=False)
    tk.prune(model, schedule={"d1": tk.ConstantSparsity(0.5, begin_step=0)})
    (line,) = [x for x in lines if "left dense" in x]
    assert "'d2'" in line and "'out'" in line
    assert "'d1'" not in line
    assert "'bn'" not in line  # a normalization's vectors are no pruning candidate
