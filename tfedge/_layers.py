"""Walking a Keras model's layers, for Keras 3 and tf_keras (Keras 2) models alike,
without importing either: the one layer walker every package uses."""

from __future__ import annotations


def is_keras_model(obj) -> bool:
    """Whether `obj` is a Keras 3 or tf_keras model (by its classes' names, so that
    neither Keras needs importing)."""
    mro = [f"{c.__module__}.{c.__name__}" for c in type(obj).__mro__]
    return any(
        name.startswith(("keras.", "tf_keras.", "keras.src."))
        and name.endswith(".Model")
        or name.endswith("engine.training.Model")
        for name in mro
    )


def walk_layers(model, *, include_models: bool = True) -> list:
    """The model's layers in model order, depth first: a nested model (Sequential or
    functional) is followed by its own layers. `include_models=False` leaves the
    nested models themselves out, so that only the layers that compute remain."""
    out = []
    for layer in getattr(model, "layers", None) or []:
        nested = is_keras_model(layer)
        if include_models or not nested:
            out.append(layer)
        if nested:
            out.extend(walk_layers(layer, include_models=include_models))
    return out
