"""`strip`: one call from a model with tfedge wrappers to plain Keras layers.

The protocol, shared by every tfedge wrapper (pruning, ternary, weight sharing,
low-rank) and open to user layers: a layer with a method

    def tfedge_strip(self) -> keras.layers.Layer

is replaced by the layer that method returns: a plain, built Keras layer (or a small
Sequential/functional block of plain layers) holding the final weights, named like the
wrapper. Every other layer is copied with its weights. The input model is not changed.

Limits: Sequential and functional models are rebuilt at any nesting depth. A subclassed
model cannot be rebuilt generically (its `call` is Python code that refers to its own
layer attributes): `strip` raises for one that holds tfedge layers; strip those layers
one at a time with `strip(layer)` and assign the results in an export version of the
model.
"""

from __future__ import annotations

import keras

__all__ = ["strip"]


def _has_strip(layer) -> bool:
    return callable(getattr(layer, "tfedge_strip", None))


def _tfedge_layers(model) -> list:
    return [x for x in model.layers if _has_strip(x)] + [
        y for x in model.layers if isinstance(x, keras.Model) for y in _tfedge_layers(x)
    ]


def _is_graph_model(model) -> bool:
    if isinstance(model, keras.Sequential):
        return True
    return any(c.__name__ == "Functional" for c in type(model).__mro__)


def _stripped(layer) -> keras.layers.Layer:
    plain = layer.tfedge_strip()
    if not isinstance(plain, keras.layers.Layer):
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}): `tfedge_strip()` must "
            f"return a Keras layer. Received: {plain!r}"
        )
    if not plain.built:
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}): `tfedge_strip()` returned "
            "an unbuilt layer; build it and set its weights before returning it."
        )
    return plain


def strip(model_or_layer):
    """Replace every tfedge wrapper by the plain layer it bakes; return a new model.

    Args:
        model_or_layer: a Sequential or functional model (nested models included), or
            a single layer. A layer with `tfedge_strip()` gives its plain layer; any
            other layer is returned as is.

    Returns:
        A new model of plain layers with copied weights (not compiled), or the plain
        layer. Predictions equal the wrapped model's at inference.
    """
    if not isinstance(model_or_layer, keras.layers.Layer):
        raise ValueError(
            f"Expected a Keras model or layer. Received: {model_or_layer!r} of type "
            f"{type(model_or_layer).__name__}"
        )
    if not isinstance(model_or_layer, keras.Model):
        if _has_strip(model_or_layer):
            return _stripped(model_or_layer)
        return model_or_layer
    model = model_or_layer
    if not _is_graph_model(model):
        if _has_strip(model):
            return _stripped(model)
        raise ValueError(
            f"strip() rebuilds Sequential and functional models; {model.name!r} is a "
            f"subclassed model ({type(model).__name__}) whose `call` cannot be "
            "rebuilt. Strip its wrapper layers one at a time (`strip(layer)` returns "
            "the plain layer) and assign them in an export version of the model, or "
            "build the model with the functional API."
        )
    copies: list[tuple] = []

    def clone(layer):
        if _has_strip(layer):
            return _stripped(layer)
        if isinstance(layer, keras.Model) and _tfedge_layers(layer):
            raise ValueError(
                f"Nested model {layer.name!r} is subclassed ({type(layer).__name__}) "
                "and holds tfedge layers, which strip() cannot reach. Strip them one "
                "at a time with `strip(layer)`, or build the nested model with the "
                "functional API."
            )
        new = type(layer).from_config(layer.get_config())
        copies.append((layer, new))
        return new

    plain = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for original, new in copies:
        new.set_weights(original.get_weights())
    return plain
