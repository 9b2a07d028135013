"""Keras 3 layers that simulate dynamic fixed point (fake quantization).

`FixedPointQuantize` rounds a feature map to a fixed-point grid; `FixedPointWeights`
wraps a Conv2D, DepthwiseConv2D or Dense layer and runs it with its kernel and bias
rounded to theirs. Both pass gradients straight through the rounding (the
straight-through estimator), so a simulation model can be fine-tuned with `model.fit`;
neither has state of its own beyond its configuration.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["FixedPointQuantize", "FixedPointWeights"]

_MIN_BITS, _MAX_BITS = 2, 64


def _check_bits(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"Expected `{name}` to be an int. Received: {name}={value!r}")
    if not _MIN_BITS <= value <= _MAX_BITS:
        raise ValueError(
            f"Expected `{name}` in [{_MIN_BITS}, {_MAX_BITS}]. Received: {name}={value}"
        )
    return value


def _check_length(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"Expected `{name}` to be an int. Received: {name}={value!r}")
    return value


def fake_quantize(x, bits: int, fractional_length: int):
    """`x` on the grid `q * 2**-fl`, q saturated to `bits`; gradient passes through.

    Rounds ties away from zero, as TFLite's QUANTIZE and pooling kernels do. When its
    integer kernels rescale a convolution's accumulator by a power of two they round
    twice (the reference kernels halve, then shift) or their own way (XNNPack), so a
    value within one accumulator unit of a tie can come out one step apart; elsewhere
    the simulation and the exported model agree exactly.
    """
    scale = 2.0**fractional_length
    lo, hi = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1.0
    scaled = x * scale
    rounded = ops.sign(scaled) * ops.floor(ops.abs(scaled) + 0.5)
    q = ops.clip(rounded, lo, hi) / scale
    return x + ops.stop_gradient(q - x)


@keras.saving.register_keras_serializable(package="tfedge")
class FixedPointQuantize(keras.layers.Layer):
    """Rounds its input to fixed point: `bits` wide, `fractional_length` fraction bits.

    Args:
        bits: the width of the codes, 2 to 64.
        fractional_length: the number of fraction bits (may be negative); the step is
            `2**-fractional_length`.
    """

    def __init__(self, bits: int, fractional_length: int, **kwargs):
        super().__init__(**kwargs)
        self.bits = _check_bits("bits", bits)
        self.fractional_length = _check_length("fractional_length", fractional_length)

    def call(self, inputs):
        return fake_quantize(inputs, self.bits, self.fractional_length)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(bits=self.bits, fractional_length=self.fractional_length)
        return config


@keras.saving.register_keras_serializable(package="tfedge")
class FixedPointWeights(keras.layers.Wrapper):
    """Runs `layer` (Conv2D, DepthwiseConv2D or Dense) with fixed-point weights.

    The kernel is rounded to `weight_bits` with `weight_fractional_length`; the bias to
    `bias_bits` with `bias_fractional_length` (TFLite's integer kernels hold the bias at
    the product of the input and weight scales, so that length is their sum). The
    wrapped layer's own variables stay in float and are the ones trained; they are
    rounded on every call.

    Args:
        layer: the layer to wrap; its variables are used, not copied.
        weight_bits: width of the kernel codes, 2 to 64.
        weight_fractional_length: fraction bits of the kernel.
        bias_bits: width of the bias codes (32 for int8 activations, 64 for int16).
        bias_fractional_length: fraction bits of the bias.
    """

    def __init__(
        self,
        layer,
        weight_bits: int,
        weight_fractional_length: int,
        bias_bits: int = 32,
        bias_fractional_length: int = 0,
        **kwargs,
    ):
        super().__init__(layer, **kwargs)
        self.weight_bits = _check_bits("weight_bits", weight_bits)
        self.weight_fractional_length = _check_length(
            "weight_fractional_length", weight_fractional_length
        )
        self.bias_bits = _check_bits("bias_bits", bias_bits)
        self.bias_fractional_length = _check_length(
            "bias_fractional_length", bias_fractional_length
        )

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    def _rounded(self, variable):
        if variable is self.layer.kernel:
            return fake_quantize(
                variable, self.weight_bits, self.weight_fractional_length
            )
        if (
            getattr(self.layer, "bias", None) is not None
            and variable is self.layer.bias
        ):
            return fake_quantize(variable, self.bias_bits, self.bias_fractional_length)
        return variable

    def call(self, inputs):
        trainable = [self._rounded(v) for v in self.layer.trainable_variables]
        non_trainable = [self._rounded(v) for v in self.layer.non_trainable_variables]
        outputs, _ = self.layer.stateless_call(trainable, non_trainable, inputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            weight_bits=self.weight_bits,
            weight_fractional_length=self.weight_fractional_length,
            bias_bits=self.bias_bits,
            bias_fractional_length=self.bias_fractional_length,
        )
        return config
