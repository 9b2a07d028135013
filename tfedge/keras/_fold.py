"""`fold_batch_norm`: each batch normalisation folded into the layer before it.

In inference mode a BatchNormalization after a linear layer (a convolution or a dense
layer with no activation) is an affine map per output channel, so it folds into that
layer: kernel * s and bias (b - mean) * s + beta, with s = gamma / sqrt(var + eps). The
TFLite converter does the same fold at conversion; doing it in Keras first lets the
compression stages that work on the values of a kernel (weight sharing) see the values
the .tflite will hold. A zero of the kernel stays an exact +0.0 (s only scales it), so
a pruned layer keeps its mask, and a net can be pruned and retrained with its batch
normalisation, then folded before its kernels are shared.
"""

from __future__ import annotations

import keras
import numpy as np

from tfedge.keras._kernel_swap import check_cloneable, copy_layer, to_numpy

__all__ = ["fold_batch_norm", "foldable_batch_norms"]

# The layers a following batch normalisation folds into: their kernel's last axis is the
# output channel (DepthwiseConv's last two axes: input channel x multiplier).
_FOLDS_INTO = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
)


def _single_call(layer) -> bool:
    return len(getattr(layer, "_inbound_nodes", [])) == 1


def _folds(layer, bn) -> bool:
    """Whether `bn` folds into `layer`, the layer whose output it reads: a linear,
    channels-last layer of a `_FOLDS_INTO` kind, normalised over the last axis."""
    shape = (bn.get_build_config() or {}).get("input_shape")
    return (
        isinstance(layer, _FOLDS_INTO)
        and getattr(layer, "activation", None) in (None, keras.activations.linear)
        and getattr(layer, "data_format", "channels_last") == "channels_last"
        and shape is not None
        and bn.axis in (-1, len(shape) - 1)
    )


def _functional_producer(bn):
    """The layer whose output `bn` reads in a functional graph, when `bn` folds into
    it, both are called once and only `bn` reads that output; else None."""
    if not _single_call(bn):
        return None
    node = bn._inbound_nodes[0]
    if len(node.input_tensors) != 1:
        return None
    layer = node.input_tensors[0]._keras_history.operation
    if (
        not _single_call(layer)
        or len(layer._outbound_nodes) != 1
        or not _folds(layer, bn)
    ):
        return None
    return layer


def foldable_batch_norms(model) -> dict[str, str]:
    """The batch normalisations of `model`'s top-level graph that `fold_batch_norm`
    folds, as {batch normalisation name: name of the layer it folds into}."""
    out = {}
    if isinstance(model, keras.Sequential):
        for before, layer in zip(model.layers[:-1], model.layers[1:], strict=True):
            if isinstance(layer, keras.layers.BatchNormalization) and _folds(
                before, layer
            ):
                out[layer.name] = before.name
        return out
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            producer = _functional_producer(layer)
            if producer is not None:
                out[layer.name] = producer.name
    return out


def _folded_weights(layer, bn) -> list[np.ndarray]:
    """`layer`'s kernel and bias with `bn` (inference mode) folded in; the kernel's
    zeros stay +0.0."""
    weights = [to_numpy(w) for w in layer.weights]
    kernel = weights[0]
    channels = int(to_numpy(bn.moving_mean).shape[0])
    gamma = to_numpy(bn.gamma) if bn.scale else np.ones(channels, np.float32)
    beta = to_numpy(bn.beta) if bn.center else np.zeros(channels, np.float32)
    mean, var = to_numpy(bn.moving_mean), to_numpy(bn.moving_variance)
    scale = (gamma / np.sqrt(var + bn.epsilon)).astype(np.float64)
    bias = weights[1] if layer.use_bias else np.zeros(channels, np.float32)
    if isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        per_kernel = scale.reshape(kernel.shape[-2:])
    else:
        per_kernel = scale
    folded = np.where(kernel == 0, 0.0, kernel * per_kernel).astype(kernel.dtype)
    new_bias = ((bias - mean) * scale + beta).astype(kernel.dtype)
    return [folded, new_bias]


def fold_batch_norm(model) -> keras.Model:
    """A new model with every foldable batch normalisation folded into the layer before.

    A BatchNormalization folds when it reads the output of a Dense, Conv1D/2D/3D or
    DepthwiseConv1D/2D layer with no activation (channels last), that layer's output
    goes nowhere else, both are called once, and it normalises the last axis:
    the layer gets a bias if it had none, kernel * s and bias (b - mean) * s + beta
    (s = gamma / sqrt(moving variance + epsilon)), as the TFLite converter folds it.
    Other batch normalisations (after an activation, nested models) stay.

    Args:
        model: a built Sequential or functional Keras 3 model (not changed).

    Returns:
        A new model (not compiled; the same layer names, without the folded batch
        normalisations) whose outputs equal `model`'s in inference mode to float
        rounding. Every zero of a folded kernel stays an exact +0.0, so a pruned
        layer keeps its sparsity and mask.

    Raises:
        ValueError: `model` is not a built Sequential or functional model.
    """
    check_cloneable(model, "fold_batch_norm")
    pairs = {
        bn: model.get_layer(name) for bn, name in foldable_batch_norms(model).items()
    }
    into = {layer.name: model.get_layer(bn) for bn, layer in pairs.items()}
    clones: list[tuple] = []

    def clone_function(layer):
        if layer.name in pairs:
            return layer  # never called: `call_function` passes its input through
        if layer.name in into:
            config = layer.get_config()
            config["use_bias"] = True
            new = type(layer).from_config(config)
            clones.append((layer, new))
            return new
        return copy_layer(layer)

    if isinstance(model, keras.Sequential):
        kept = [
            clone_function(layer) for layer in model.layers if layer.name not in pairs
        ]
        folded = keras.Sequential(
            [keras.Input(batch_shape=model.inputs[0].shape), *kept], name=model.name
        )
    else:

        def call_function(layer, *args, **kwargs):
            if layer.name in pairs:
                return args[0]
            return layer(*args, **kwargs)

        folded = keras.models.clone_model(
            model, clone_function=clone_function, call_function=call_function
        )
    for original, new in clones:
        new.set_weights(_folded_weights(original, into[original.name]))
    return folded
