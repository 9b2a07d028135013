"""Keras names for a converted model's weight buffers: `fc1.kernel`, `fc1.bias`; the
one tensor-to-layer mapping (`tfedge.budget` names its layers with it too).

The TFLite converter names constant tensors after the ops that read them
(`sequential_1/fc1_1/MatMul`) and transposes kernels, so a buffer is matched to the
Keras weight holding the same values as a multiset (sorted); when several weights hold
the same values (two zero biases of one size), the one whose layer name appears in the
tensor's name wins, and a buffer that stays ambiguous keeps its TFLite name. Weights the
converter changes (batch norm folded into a convolution, int8 quantization) match
nothing and keep their TFLite names too.
"""

from __future__ import annotations

import re

import numpy as np

from tfedge._layers import walk_layers
from tfedge.tflite import TYPES, buffer_data

_FLOAT32 = next(k for k, v in TYPES.items() if v.name == "FLOAT32")


def values_key(values: np.ndarray) -> tuple[int, bytes]:
    """A key equal for arrays holding the same values in any order (as float32)."""
    flat = np.asarray(values, np.float32).reshape(-1)
    return flat.size, np.sort(flat).tobytes()


def keras_weight_owners(
    keras_model,
) -> dict[tuple[int, bytes], list[tuple[str, str]]]:
    """`values_key` -> [(layer name, weight name)] of every float weight, in model
    order."""
    keys: dict[tuple[int, bytes], list[tuple[str, str]]] = {}
    for layer in walk_layers(keras_model, include_models=False):
        for w in layer.weights:
            arr = np.asarray(w.numpy() if hasattr(w, "numpy") else w)
            if arr.dtype.kind != "f" or arr.size == 0:
                continue
            weight = str(getattr(w, "name", "")).split("/")[-1].split(":")[0]
            keys.setdefault(values_key(arr), []).append((layer.name, weight))
    return keys


def layer_named_in(tensor_name: str, layers) -> str:
    """The first of `layers` that the converter's tensor name names (a part between
    `/` or `;`, as it is or without the `_1` suffix Keras adds), else ""."""
    for part in re.split(r"[/;]", tensor_name):
        base = re.sub(r"_\d+$", "", part)
        for candidate in (part, base):
            if candidate in layers:
                return candidate
    return ""


def name_rows(model, rows, keras_model) -> None:
    """Sets `keras_name` on each report row whose buffer matches one Keras weight."""
    if keras_model is None:
        return
    weights = keras_weight_owners(keras_model)
    if not weights:
        return
    for row in rows:
        t = model.subgraphs[row.subgraph].tensors[row.tensor]
        if t.type != _FLOAT32:
            continue
        raw = buffer_data(model, t.buffer)
        if raw.size % 4:
            continue
        owners = weights.get(values_key(np.frombuffer(raw.tobytes(), "<f4")), [])
        if len(owners) > 1:
            owners = [o for o in owners if layer_named_in(row.name, [o[0]])]
        if len(owners) == 1:
            layer, weight = owners[0]
            row.keras_name = f"{layer}.{weight}" if weight else layer
