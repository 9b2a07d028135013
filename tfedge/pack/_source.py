"""Turn what the user hands `compress` into .tflite bytes.

Accepted: .tflite bytes, a path to a .tflite file, a path to a SavedModel directory, a
path to a `.keras` file, a Keras 3 model, or a tf_keras (Keras 2) model such as one
stripped by tfmot. Keras models that still hold tfedge wrappers are stripped first.
"""

from __future__ import annotations

import os

from tfedge.errors import FormatError


def to_tflite(model) -> tuple[bytes, list[str]]:
    """Returns (.tflite bytes, notes about what was done to get them)."""
    notes: list[str] = []
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), notes
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if os.path.isdir(path):
            if not os.path.exists(os.path.join(path, "saved_model.pb")):
                raise FormatError(
                    f"{path} is a directory without saved_model.pb: pass a .tflite "
                    "file, a SavedModel directory or a .keras file"
                )
            import tensorflow as tf

            notes.append(f"converted SavedModel {path} with tf.lite.TFLiteConverter")
            return tf.lite.TFLiteConverter.from_saved_model(path).convert(), notes
        if not os.path.exists(path):
            raise FileNotFoundError(f"No such model file: {path}")
        if path.endswith(".keras"):
            import keras

            notes.append(f"loaded {path} with keras.saving.load_model")
            return _from_keras(keras.saving.load_model(path), notes)
        with open(path, "rb") as f:
            return f.read(), notes
    if _is_keras_model(model):
        return _from_keras(model, notes)
    raise TypeError(
        "Expected a .tflite path or bytes, a SavedModel directory, a .keras file, "
        f"or a Keras model. Received: {type(model).__name__}"
    )


def _is_keras_model(obj) -> bool:
    mro = [f"{c.__module__}.{c.__name__}" for c in type(obj).__mro__]
    return any(
        name.startswith(("keras.", "tf_keras.", "keras.src."))
        and name.endswith(".Model")
        or name.endswith("engine.training.Model")
        for name in mro
    )


def _from_keras(model, notes: list[str]) -> tuple[bytes, list[str]]:
    if any(hasattr(layer, "tfedge_strip") for layer in _all_layers(model)):
        from tfedge.keras import strip

        model = strip(model)
        notes.append("stripped tfedge training wrappers with tfedge.keras.strip")
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    notes.append("converted with tf.lite.TFLiteConverter.from_keras_model")
    return converter.convert(), notes


def _all_layers(model):
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        yield layer
        stack.extend(getattr(layer, "layers", []) or [])
