"""Keras models the converter cannot express with built-in operations (an LSTM with an
unknown batch size): a one-paragraph `ConversionError` with the fix, and
`converter_options` to apply it."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

import tfedge
from tfedge.convert import SELECT_TF_OPS_OPTIONS


def _lstm(batch_size=None) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((6, 4), batch_size=batch_size),
            keras.layers.LSTM(32, name="lstm"),
            keras.layers.Dense(4, name="out"),
        ]
    )


def test_lstm_failure_names_the_ops_and_the_fixes():
    with pytest.raises(tfedge.ConversionError) as info:
        tfedge.compress(_lstm())
    message = str(info.value)
    assert "TensorListReserve" in message
    assert "lstm" in message
    assert "batch_size=1" in message
    assert "SELECT_TF_OPS" in message and "converter_options=" in message
    assert "\n" not in message  # not the converter's 14-frame MLIR dump
    assert type(info.value.__cause__).__name__ == "ConverterError"


def test_select_tf_ops_through_converter_options():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always", UserWarning)
        packed = tfedge.compress(_lstm(), converter_options=SELECT_TF_OPS_OPTIONS)
    assert packed.report.lossless
    assert any("TFLiteConverter options" in n for n in packed.report.notes)
    assert any("stock interpreter" in str(w.message) for w in record)


def test_fixed_batch_size_converts_with_builtins():
    model = _lstm(batch_size=1)
    x = np.random.default_rng(0).standard_normal((3, 6, 4)).astype(np.float32)
    packed = tfedge.compress(model, representative_data=x, num_samples=3)
    assert len(bytes(packed)) < len(packed.expand())


@pytest.mark.parametrize(
    "model,options,words",
    [
        ("keras", {"target_spec.no_such_thing": 1}, "not an attribute"),
        ("keras", {"target_spec.supported_ops": ["FLEX"]}, "'FLEX'"),
        ("keras", ["SELECT_TF_OPS"], "a dict"),
        ("tflite", SELECT_TF_OPS_OPTIONS, "already converted"),
    ],
    ids=["unknown-key", "unknown-ops-set", "not-a-dict", "tflite-input"],
)
def test_bad_converter_options(tflite_model, model, options, words):
    source = _lstm(batch_size=1) if model == "keras" else tflite_model("dense_f32")
    with pytest.raises(ValueError, match=words):
        tfedge.compress(source, converter_options=options)
