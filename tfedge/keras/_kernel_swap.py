"""Helpers shared by the wrappers that compute a layer's kernel (ternary, sharing).

Such a wrapper keeps the wrapped Keras layer untouched and, in its own `call`, runs the
layer with a *computed* kernel in place of the stored one. `Layer.stateless_call`
(public Keras 3 API) does exactly that on every backend: it runs `layer.call` with the
values we give for its variables, so gradients flow from the outputs into whatever
expression built the kernel (latent weights and scales, centroids gathered by indices).

Model-level helpers clone a Sequential or functional model, wrapping the chosen layers
and copying every weight, so that the user's original model is never modified.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable

import keras

from tfedge._layers import walk_layers

__all__: list[str] = []  # private module

# What the kernel-computing wrappers can wrap, said once for every warning.
KERNEL_HINT = (
    "It wraps layers with a `kernel` weight (Dense, EinsumDense, Conv1D/2D/3D and "
    "their transposed and depthwise forms); recurrent layers (LSTM, GRU) are not "
    "supported, and a custom layer qualifies when it keeps its weight matrix in "
    "`self.kernel`."
)


def kernel_variable(layer: keras.layers.Layer) -> keras.Variable | None:
    """The layer's `kernel` variable, or None when the (built) layer has none."""
    try:
        kernel = layer.kernel
    except AttributeError:
        return None
    return kernel if isinstance(kernel, keras.Variable) else None


def to_numpy(x):
    """A numpy copy of a tensor or a Keras variable (read as a backend tensor first)."""
    return keras.ops.convert_to_numpy(keras.ops.convert_to_tensor(x))


def require_kernel(layer: keras.layers.Layer, wrapper: str) -> keras.Variable:
    """The kernel of a built layer, or a ValueError saying which layers qualify."""
    kernel = kernel_variable(layer)
    if kernel is None:
        raise ValueError(
            f"`{wrapper}` wraps layers that have a `kernel` weight (Dense, "
            f"Conv1D/2D/3D, EinsumDense, ...). Received: layer={layer.name!r} of type "
            f"{type(layer).__name__}, which has none. Leave it unwrapped."
        )
    return kernel


def accepts_training(layer: keras.layers.Layer) -> bool:
    """Whether `layer.call` takes a `training` argument."""
    params = inspect.signature(layer.call).parameters
    return "training" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )


def call_with_kernel(layer, kernel_value, inputs, training=None):
    """`layer(inputs)` with `kernel_value` (a tensor) standing in for `layer.kernel`."""
    kernel = layer.kernel

    def values(variables):
        return [kernel_value if v is kernel else v for v in variables]

    kwargs = {"training": training} if accepts_training(layer) else {}
    outputs, _ = layer.stateless_call(
        values(layer.trainable_variables),
        values(layer.non_trainable_variables),
        inputs,
        **kwargs,
    )
    return outputs


def copy_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A new layer with the same config, built the same way, with copied weights."""
    new = layer.__class__.from_config(layer.get_config())
    if layer.built:
        build_config = layer.get_build_config()
        if build_config is not None:
            new.build_from_config(build_config)
        new.set_weights(layer.get_weights())
    return new


def holds_matrix(layer: keras.layers.Layer) -> bool:
    """Whether the layer (sublayers included) holds a weight of rank 2 or more: the
    weights that pruning, sharing and ternary coding are about (biases and
    normalization scales are vectors)."""
    return any(len(w.shape) >= 2 for w in layer.weights)


def warn_skipped(
    model: keras.Model,
    fn: str,
    supported: Callable[[keras.layers.Layer], bool],
    hint: str,
) -> None:
    """Warns about the layers of `model` (nested models flattened) that hold weight
    matrices but that `fn` leaves as they are because `supported` rejects them (an
    LSTM, a custom layer), with their parameter counts."""
    skipped = [
        layer
        for layer in walk_layers(model, include_models=False)
        if layer.built and holds_matrix(layer) and not supported(layer)
    ]
    if not skipped:
        return
    counts = [int(layer.count_params()) for layer in skipped]
    total = int(model.count_params())
    left = sum(counts)
    listed = ", ".join(
        f"{layer.name!r} ({type(layer).__name__}, {n:,} parameters)"
        for layer, n in zip(skipped, counts, strict=True)
    )
    warnings.warn(
        f"`{fn}` left {len(skipped)} layer{'s' * (len(skipped) != 1)} as they are: "
        f"{listed}; {left:,} of the model's {total:,} parameters "
        f"({100 * left / max(total, 1):.1f}%). {hint}",
        stacklevel=3,
    )


def check_cloneable(model: keras.Model, fn: str) -> None:
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`{fn}` expects a Keras 3 `keras.Model` or `keras.layers.Layer`. "
            f"Received: {type(model).__module__}.{type(model).__name__}. For a "
            "tf_keras model, rebuild it with Keras 3 first."
        )
    if not (isinstance(model, keras.Sequential) or _is_functional(model)):
        raise ValueError(
            f"`{fn}` clones Sequential and functional models. Received a subclassed "
            f"model of type {type(model).__name__}: wrap its layers in its constructor "
            "instead."
        )
    if not model.built:
        raise ValueError(
            f"`{fn}` needs a built model (its weights are copied). Build it first, "
            "e.g. by giving it a `keras.Input` or calling it on a batch."
        )


def check_no_other_wrappers(model: keras.Model, own: type, fn: str) -> None:
    """Refuses a model holding another tfedge wrapper (one with `tfedge_strip`): its
    layer has no kernel of its own, so it would silently be left out."""
    for layer in walk_layers(model, include_models=False):
        if callable(getattr(layer, "tfedge_strip", None)) and not isinstance(
            layer, own
        ):
            raise ValueError(
                f"`{fn}`: layer {layer.name!r} is a {type(layer).__name__}. Strip the "
                "model first (`tfedge.keras.strip(model)`) to bake that wrapper's "
                f"weights (pruned zeros included) into plain layers, then call `{fn}`."
            )


def _is_functional(model: keras.Model) -> bool:
    # A functional model (including one from a subclass that calls the functional
    # constructor) has symbolic inputs and outputs.
    try:
        return model.inputs is not None and model.outputs is not None
    except AttributeError:
        return False


def select_layers(
    model: keras.Model,
    layers: Iterable[str] | Callable[[keras.layers.Layer], bool] | None,
    candidates: list[keras.layers.Layer],
    fn: str,
) -> set[int]:
    """ids of the candidate layers chosen by name list or predicate (all when None)."""
    if layers is None:
        return {id(layer) for layer in candidates}
    if callable(layers):
        return {id(layer) for layer in candidates if layers(layer)}
    if isinstance(layers, str):
        raise ValueError(
            f"Expected `layers` to be a list of layer names or a predicate. Received: "
            f"layers={layers!r}. Use layers=[{layers!r}]."
        )
    names = list(layers)
    by_name = {layer.name: layer for layer in walk_layers(model, include_models=False)}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(
            f"`{fn}`: no layer named {unknown} in model {model.name!r}. "
            f"Its layers are: {sorted(by_name)}."
        )
    candidate_ids = {id(layer) for layer in candidates}
    without = [n for n in names if id(by_name[n]) not in candidate_ids]
    if without:
        raise ValueError(
            f"`{fn}`: layers {without} have no `kernel` weight and cannot be wrapped. "
            "Leave them out of `layers`."
        )
    return {id(by_name[n]) for n in names}


def clone_wrapping(
    model: keras.Model,
    wrap: Callable[[keras.layers.Layer, keras.layers.Layer], keras.layers.Layer | None],
) -> keras.Model:
    """A copy of `model` in which every layer is copied (weights included) and replaced
    by `wrap(original, copy)` when that returns a layer; `model` itself is untouched."""

    def clone_function(layer):
        new = copy_layer(layer)
        wrapped = wrap(layer, new)
        return new if wrapped is None else wrapped

    return keras.models.clone_model(
        model, clone_function=clone_function, recursive=True
    )
