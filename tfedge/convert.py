"""Keras model, `.keras` file, SavedModel or .tflite bytes -> .tflite bytes: the one
place tfedge converts, and `compress`, which converts and then packs.

Layer 4 of docs/ARCHITECTURE.md: it uses `tfedge.keras` (stripping) and `tfedge.pack`
(packing .tflite bytes); `tfedge.budget` and `tfedge.deep_compress` convert through it.

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

from tfedge._layers import is_keras_model, walk_layers
from tfedge.errors import ConversionError, FormatError
from tfedge.pack import (
    DEFAULT_METHOD,
    DEFAULT_TOLERANCE,
    Packed,
    Stages,
    check_options,
    compress_tflite,
    plain_tflite,
)

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


def compress(
    model,
    *,
    lossless: bool = False,
    bits: int | None = None,
    tolerance: float | str = DEFAULT_TOLERANCE,
    representative_data=None,
    num_samples: int = 16,
    init: str = "linear",
    seed: int = 0,
    min_bytes: int = 256,
    target: str = "tfedge",
    method: str = DEFAULT_METHOD,
    progress: bool | None = None,
    converter_options: Mapping[str, object] | None = None,
) -> Packed:
    """Packs a model's weights with weight sharing, a sparse index and Huffman coding.

    Lossy mode measures how far the outputs drift when each tensor alone is shared
    (its sensitivity), chooses bits per tensor for the most bytes saved per unit of
    drift, and verifies the combination on the search samples and on held-out
    samples; the values measured are exactly those the file decodes to. Biases and
    tensors under `_lossy.LOSSY_MIN_ELEMENTS` elements stay exact, and no tensor's own
    weight error passes `_lossy.MAX_WEIGHT_ERROR`. When the outputs do not move across
    the samples the check is blind: the model is packed losslessly and a warning asks
    for `representative_data`.

    Args:
      model: .tflite bytes or path, a SavedModel directory, a `.keras` path, or a
        Keras 3 or tf_keras model (tfedge wrappers are stripped first).
      lossless: keep every weight bit for bit (exact codebooks, sparse index, Huffman).
      bits: sharing bits per lossy tensor (1-8); None chooses per tensor.
      tolerance: the largest allowed output drift, max|y - y_ref| / max|y_ref|, measured
        in the stock interpreter on the search samples and on held-out samples: a
        fraction (0.02) or a percentage string ("2%"); for zero drift use
        `lossless=True`.
      representative_data: model inputs to measure drift on: an array batch, a dict
        keyed by input name, `(x, y)` (x is taken), an iterable of samples, or
        TFLite's `representative_dataset` callable (the rules are in
        tfedge/pack/_samples.py; shapes and dtypes are checked against the model's
        inputs); alternate samples are held out. Generated in the ranges the model
        takes when None (int8 inputs over their quantized range, float inputs in the
        range of their TFLite Support metadata).
      num_samples: how many samples to search on (as many more are held out; when
        the search's estimated reserve for fresh inputs turns down a combination by
        over `_compress.GROW_WHEN_RESERVE`, it searches again with
        `_compress.GROW_HELD_OUT` times as many more held out, read from
        `representative_data` after the first 2 x num_samples when it has them).
      init: k-means centroid initialisation, "linear" (Deep Compression), "density" or
        "random".
      min_bytes: weight buffers smaller than this stay raw.
      target: "tfedge" (TFEDGE_DECODE payloads, docs/FORMAT.md), or "tflm": look-up
        tables with 1-7 bit indices that TFLite Micro's own TFLM_DECODE kernel decodes
        (no Huffman or sparse index; verified in TFLM's interpreter when `tflite-micro`
        is installed).
      method: the lossy candidates of each tensor. "kmeans": k-means codebooks at
        1-8 bits, per tensor and per channel (Deep Compression). "ecsq": those and a
        ladder of entropy-constrained scalar quantizations (Choi, El-Khamy and Lee
        2017): per tensor, the assignment minimising squared error plus lambda times
        each index's code length, at lambdas aimed at relative weight errors
        0.02-0.18, each sized with the real stream coder; the search picks per
        tensor. Needs bits=None and target="tfedge".
      progress: show a progress bar (default: when stderr is a terminal).
      converter_options: for a Keras model or SavedModel, `tf.lite.TFLiteConverter`
        attributes to set before converting, by name (dotted for nested ones), e.g.
        `{"target_spec.supported_ops": ["TFLITE_BUILTINS", "SELECT_TF_OPS"],
        "_experimental_lower_tensor_list_ops": False}` for layers the built-in
        operations cannot express. A converter failure raises `ConversionError`
        naming the operations and the fix.

    Returns:
      A `Packed` model whose `report` lists every weight buffer.
    """
    options = dict(
        lossless=lossless,
        bits=bits,
        tolerance=tolerance,
        init=init,
        num_samples=num_samples,
        target=target,
        method=method,
    )
    check_options(**options)
    clock = Stages()
    data, notes, keras_model = to_tflite_and_keras(model, converter_options)
    return compress_tflite(
        data,
        keras_model=keras_model,
        notes=notes,
        clock=clock,
        representative_data=representative_data,
        seed=seed,
        min_bytes=min_bytes,
        progress=progress,
        **options,
    )


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
    if is_keras_model(model):
        return _from_keras(model, notes, converter_options)
    raise TypeError(
        "Expected a .tflite path or bytes, a SavedModel directory, a .keras file, "
        f"or a Keras model. Received: {type(model).__name__}"
    )


def to_plain_tflite(
    model, converter_options=None
) -> tuple[bytes, list[str], object | None]:
    """As `to_tflite_and_keras`, with a model that tfedge packed expanded back to a
    plain .tflite (what the planners measure)."""
    data, notes, keras_model = to_tflite_and_keras(model, converter_options)
    data, was_packed = plain_tflite(data)
    if was_packed:
        notes.append("input was already packed by tfedge: expanded")
    return data, notes, keras_model


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
    if any(hasattr(layer, "tfedge_strip") for layer in walk_layers(model)):
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
