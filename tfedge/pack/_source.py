"""Turn what the user hands `compress` into .tflite bytes.

Accepted: .tflite bytes, a path to a .tflite file, a path to a SavedModel directory, a
path to a `.keras` file, a Keras 3 model, or a tf_keras (Keras 2) model such as one
stripped by tfmot. Keras models that still hold tfedge wrappers are stripped first.

Keras models and SavedModels go through `tf.lite.TFLiteConverter`; `converter_options`
sets its attributes before `convert()` (see `apply_converter_options`), and a converter
failure becomes a `ConversionError` that names the operations and layers it could not
express and says how to convert them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from tfedge.errors import ConversionError, FormatError

# Converter operation sets by name, for `converter_options`' supported_ops.
_OPS_SETS = ("TFLITE_BUILTINS", "TFLITE_BUILTINS_INT8", "SELECT_TF_OPS")
# What the error suggests when TensorFlow operations have no TFLite built-in.
SELECT_TF_OPS_OPTIONS = {
    "target_spec.supported_ops": ["TFLITE_BUILTINS", "SELECT_TF_OPS"],
    "_experimental_lower_tensor_list_ops": False,
}
# MLIR's diagnostics name an operation as 'tf.Name', and its place as
# fused["Name:", "model/layer/node@function"].
_TF_OP = re.compile(r"'tf\.(\w+)'")
_LOCATION = re.compile(r'fused\["(\w+):", "([^"@]+)')


def to_tflite(model, converter_options=None) -> tuple[bytes, list[str]]:
    """Returns (.tflite bytes, notes about what was done to get them).

    `converter_options` (see `apply_converter_options`) applies to models that go
    through TensorFlow Lite's converter: a Keras model, a `.keras` file or a
    SavedModel.
    """
    data, notes, _ = to_tflite_and_keras(model, converter_options)
    return data, notes


def to_tflite_and_keras(
    model, converter_options=None
) -> tuple[bytes, list[str], object | None]:
    """As `to_tflite`, with the (stripped) Keras model converted, when one was, so
    that the report can name tensors by layer."""
    notes: list[str] = []
    if converter_options is not None and not isinstance(converter_options, Mapping):
        raise ValueError(
            "Expected `converter_options` to be a dict {TFLiteConverter attribute: "
            f"value}}. Received: converter_options={converter_options!r}"
        )
    if isinstance(model, (bytes, bytearray, memoryview)):
        _no_options(converter_options, ".tflite bytes")
        return bytes(model), notes, None
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
            converter = tf.lite.TFLiteConverter.from_saved_model(path)
            return _convert(converter, converter_options, notes), notes, None
        if not os.path.exists(path):
            raise FileNotFoundError(f"No such model file: {path}")
        if path.endswith(".keras"):
            import keras

            notes.append(f"loaded {path} with keras.saving.load_model")
            return _from_keras(keras.saving.load_model(path), notes, converter_options)
        _no_options(converter_options, f"the .tflite file {path}")
        with open(path, "rb") as f:
            return f.read(), notes, None
    if _is_keras_model(model):
        return _from_keras(model, notes, converter_options)
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


def _no_options(options, what: str) -> None:
    if options:
        raise ValueError(
            "`converter_options` configures TensorFlow Lite's converter, which a "
            f"Keras model or SavedModel goes through; {what} is already converted. "
            "Drop `converter_options`, or pass the Keras model."
        )


def _from_keras(
    model, notes: list[str], converter_options=None
) -> tuple[bytes, list[str], object]:
    if any(hasattr(layer, "tfedge_strip") for layer in _all_layers(model)):
        from tfedge.keras import strip

        model = strip(model)
        notes.append("stripped tfedge training wrappers with tfedge.keras.strip")
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    notes.append("converted with tf.lite.TFLiteConverter.from_keras_model")
    return _convert(converter, converter_options, notes), notes, model


def apply_converter_options(converter, options: Mapping[str, object]) -> None:
    """Sets `tf.lite.TFLiteConverter` attributes: each key is an attribute name, a
    dotted path for nested ones (`"target_spec.supported_ops"`); in supported_ops,
    operation sets may be given by name ("TFLITE_BUILTINS", "SELECT_TF_OPS").

    Raises:
        ValueError: a key names no attribute of the converter.
    """
    import tensorflow as tf

    for key, value in options.items():
        *path, attr = str(key).split(".")
        target = converter
        for part in path:
            target = getattr(target, part, None)
        if target is None or not hasattr(target, attr):
            raise ValueError(
                f"`converter_options` key {key!r} is not an attribute of "
                "tf.lite.TFLiteConverter (e.g. 'target_spec.supported_ops', "
                "'optimizations', 'allow_custom_ops', "
                "'_experimental_lower_tensor_list_ops')."
            )
        if attr == "supported_ops":
            value = {_ops_set(tf, v) for v in value}
        setattr(target, attr, value)


def _ops_set(tf, value):
    if isinstance(value, str):
        if value not in _OPS_SETS:
            raise ValueError(
                f"Expected supported_ops names in {_OPS_SETS}. Received: {value!r}"
            )
        return getattr(tf.lite.OpsSet, value)
    return value


def _convert(converter, options, notes: list[str]) -> bytes:
    if options:
        apply_converter_options(converter, options)
        notes.append(f"TFLiteConverter options: {dict(options)}")
    try:
        from tensorflow.lite.python.convert_phase import ConverterError
    except ImportError:  # another TensorFlow layout: let its own error through
        ConverterError = ()  # noqa: N806
    from tfedge._quiet import quiet_tf

    try:
        with quiet_tf():
            return converter.convert()
    except ConverterError as e:
        raise ConversionError(_explain(str(e), options)) from e


def _explain(message: str, options) -> str:
    """The converter's failure in a few lines: which operations, where, what to do."""
    ops = sorted(set(_TF_OP.findall(message)))
    places = []
    for op, node in _LOCATION.findall(message):
        place = node.rsplit("/", 1)[0] if "/" in node else node
        if op in ops and place not in places:
            places.append(place)
    if not ops:
        first = next((ln for ln in message.splitlines() if "error:" in ln), message)
        return (
            "TensorFlow Lite's converter failed: "
            + first.split("error:", 1)[-1].strip()[:500]
        )
    where = f" (in {', '.join(places)})" if places else ""
    text = (
        "TensorFlow Lite's converter has no built-in operation for TensorFlow "
        f"op{'s' * (len(ops) > 1)} {', '.join(ops)}{where}."
    )
    if options and "SELECT_TF_OPS" in str(options):
        return text + " They failed with SELECT_TF_OPS allowed too; see the cause."
    fixes = []
    if any(op.startswith("TensorList") for op in ops):
        fixes.append(
            "a recurrent layer (LSTM, GRU) converts to built-in operations when the "
            "batch size is fixed: build the model with `keras.Input(shape, "
            "batch_size=1)`"
        )
    fixes.append(
        ("or " if fixes else "")
        + "keep these operations as TensorFlow ops (the model then needs the Flex "
        "delegate, on Android `tensorflow-lite-select-tf-ops`, and tfedge packs it "
        "losslessly because the stock interpreter cannot run it to check drift): "
        f"`tfedge.compress(model, converter_options={SELECT_TF_OPS_OPTIONS!r})`"
    )
    return text + " Fix: " + "; ".join(fixes) + "."


def _all_layers(model):
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        yield layer
        stack.extend(getattr(layer, "layers", []) or [])
