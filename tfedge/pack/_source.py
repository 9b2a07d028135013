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
    data, notes, _ = to_tflite_and_keras(model)
    return data, notes


def to_tflite_and_keras(model) -> tuple[bytes, list[str], object | None]:
    """As `to_tflite`, with the (stripped) Keras model converted, when one was, so
    that the report can name tensors by layer."""
    notes: list[str] = []
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), notes, None
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if os.path.isdir(path):
            if not os.path.exists(os.path.join(path, "saved_model.pb")):
                raise FormatError(
                    f"{path} is a directory without saved_model.pb: pass a .tflite "
                    "file, a SavedModel directory or a .keras file"
                )
            from tfedge._quiet import quiet_tf

            notes.append(f"converted SavedModel {path} with tf.lite.TFLiteConverter")
            with quiet_tf():
                import tensorflow as tf

                data = tf.lite.TFLiteConverter.from_saved_model(path).convert()
            return data, notes, None
        if not os.path.exists(path):
            raise FileNotFoundError(f"No such model file: {path}")
        if path.endswith(".keras"):
            import keras

            notes.append(f"loaded {path} with keras.saving.load_model")
            return _from_keras(keras.saving.load_model(path), notes)
        with open(path, "rb") as f:
            return f.read(), notes, None
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


def _from_keras(model, notes: list[str]) -> tuple[bytes, list[str], object]:
    if any(hasattr(layer, "tfedge_strip") for layer in _all_layers(model)):
        from tfedge.keras import strip

        model = strip(model)
        notes.append("stripped tfedge training wrappers with tfedge.keras.strip")
    from tfedge._quiet import quiet_tf

    notes.append("converted with tf.lite.TFLiteConverter.from_keras_model")
    with quiet_tf():
        import tensorflow as tf

        data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    return data, notes, model


def _all_layers(model):
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        yield layer
        stack.extend(getattr(layer, "layers", []) or [])
