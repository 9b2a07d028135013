"""Reads a Keras model as a chain of steps that fixed point knows how to handle.

A *weight step* is a Conv2D, DepthwiseConv2D or Dense layer together with the
activation layers that follow it (ReLU, ReLU6, linear: TFLite fuses them into the
layer, so the feature map is rounded once, after them). A *pass-through step* keeps the
grid of its input (max pooling, flatten, reshape, dropout, a lone ReLU); an *averaging
step* (average pooling) produces values between grid points and is rounded back onto
its input's grid, as TFLite's integer average pooling does.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

WEIGHT_LAYERS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
PASS_THROUGH_LAYERS = (
    keras.layers.MaxPooling2D,
    keras.layers.Flatten,
    keras.layers.Reshape,
    keras.layers.Dropout,
)
AVERAGING_LAYERS = (keras.layers.AveragePooling2D,)
# Activations TFLite fuses into a convolution or fully-connected op; on the fixed-point
# grid they are exact (max(0, x) and min(6, x) of a grid value are grid values).
FUSABLE_ACTIVATIONS = ("linear", "relu", "relu6")


@dataclasses.dataclass
class Step:
    """One step of the chain: `kind` is "weights", "pass" or "average"."""

    kind: str
    layer: keras.layers.Layer
    activations: list = dataclasses.field(default_factory=list)


def _activation_name(fn) -> str:
    name = keras.activations.serialize(fn)
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name", "?"))
    return str(name)


def _is_activation_layer(layer) -> bool:
    if isinstance(layer, keras.layers.ReLU):
        return (
            float(layer.negative_slope) == 0.0
            and float(layer.threshold) == 0.0
            and (layer.max_value is None or float(layer.max_value) == 6.0)
        )
    if isinstance(layer, keras.layers.Activation):
        return _activation_name(layer.activation) in FUSABLE_ACTIVATIONS
    return False


def _check_weight_layer(layer, input_shape) -> None:
    where = f"layer {layer.name!r} ({type(layer).__name__})"
    act = _activation_name(layer.activation)
    if act not in FUSABLE_ACTIVATIONS:
        raise ValueError(
            f"{where} has activation {act!r}; fixed point supports "
            f"{', '.join(FUSABLE_ACTIVATIONS)}. Leave a final softmax out of the model "
            "(the argmax of the logits is the same) or apply it after the interpreter."
        )
    if isinstance(layer, keras.layers.Dense):
        if len(input_shape) != 2:
            raise ValueError(
                f"{where} takes an input of rank {len(input_shape)}; fixed point "
                "supports Dense on rank-2 inputs only. Add a Flatten before it."
            )
    else:
        if layer.data_format != "channels_last":
            raise ValueError(
                f"{where} uses data_format={layer.data_format!r}; TFLite kernels are "
                "channels_last. Rebuild the model with data_format='channels_last'."
            )
        if getattr(layer, "groups", 1) != 1:
            raise ValueError(
                f"{where} uses groups={layer.groups}; only groups=1 works."
            )


def read_chain(model) -> list[Step]:
    """The model's layers as steps; raises `ValueError` for what cannot be handled."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Expected `model` to be a keras.Model. Received: model of type "
            f"{type(model).__name__}"
        )
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError) as e:
        raise ValueError(
            f"Model {model.name!r} has no known input shape. Build it first (start a "
            "Sequential with keras.Input(shape))."
        ) from e
    if not inputs or len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"Expected a model with one input and one output. Received: model "
            f"{model.name!r} with {len(inputs or [])} inputs and "
            f"{len(outputs or [])} outputs"
        )
    layers = [la for la in model.layers if not isinstance(la, keras.layers.InputLayer)]
    steps: list[Step] = []
    shape = tuple(model.inputs[0].shape)
    for layer in layers:
        if isinstance(layer, WEIGHT_LAYERS):
            _check_weight_layer(layer, shape)
            steps.append(Step("weights", layer))
        elif _is_activation_layer(layer):
            if steps and steps[-1].kind == "weights":
                steps[-1].activations.append(layer)
            else:
                steps.append(Step("pass", layer))
        elif isinstance(layer, PASS_THROUGH_LAYERS):
            steps.append(Step("pass", layer))
        elif isinstance(layer, AVERAGING_LAYERS):
            steps.append(Step("average", layer))
        else:
            raise ValueError(
                f"Layer {layer.name!r} ({type(layer).__name__}) is not supported by "
                "fixed point. Supported: Conv2D, DepthwiseConv2D, Dense, MaxPooling2D, "
                "AveragePooling2D, Flatten, Reshape, Dropout, ReLU/relu6/linear "
                "activations. Fold batch normalization into the layer before it."
            )
        shape = tuple(layer.compute_output_shape(shape))
    if not any(s.kind == "weights" for s in steps):
        raise ValueError(
            f"Model {model.name!r} has no Conv2D, DepthwiseConv2D or Dense layer to "
            "quantize."
        )
    return steps


def check_is_chain(model, steps: list[Step], sample: np.ndarray) -> None:
    """Raises `ValueError` unless running the layers in order gives the model's output.

    A functional model with branches lists its layers in some topological order, which
    does not compute the model; this is how that is caught without private Keras API.
    """
    expected = keras.ops.convert_to_numpy(model(sample, training=False))
    x = sample
    for step in steps:
        for layer in [step.layer, *step.activations]:
            x = layer(x, training=False)
    got = keras.ops.convert_to_numpy(x)
    if got.shape != expected.shape or not np.allclose(
        got, expected, rtol=1e-4, atol=1e-5
    ):
        raise ValueError(
            f"Model {model.name!r} is not a chain of layers (its layers run in order "
            "do not compute its output); fixed point supports sequential chains only."
        )
