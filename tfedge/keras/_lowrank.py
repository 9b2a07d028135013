"""Low-rank layers (Zhang et al. 2015): a Dense or Conv2D split into two thin products.

`LowRankConv2D` computes a k x k x c -> r convolution (`kernel_1`, no bias) followed by
a 1 x 1 r -> d convolution (`kernel_2`) with the bias and the activation: d filters of
size k x k x c are replaced by r of them and a d x r matrix, cutting the multiply-adds
per output position from k*k*c*d to r*(k*k*c + d). `LowRankDense` does the same for a
Dense layer (an m x r then an r x n matrix).

Both are plain Keras layers: they train in `model.fit`, save and load as `.keras`, need
no stripping before export, and convert to two TFLite ops (two CONV_2D, or two
FULLY_CONNECTED). `tfedge.keras.factorize` builds them from a trained model.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = ["LowRankConv2D", "LowRankDense"]


def _check_rank(layer_name: str | None, rank: Any) -> int:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(
            f"Layer {layer_name!r}: expected `rank` to be a positive integer. "
            f"Received: rank={rank!r}"
        )
    return rank


def _check_positive(layer_name: str | None, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Layer {layer_name!r}: expected `{name}` to be a positive integer. "
            f"Received: {name}={value!r}"
        )
    return value


def _pair(layer_name: str | None, name: str, value: Any) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        pair = tuple(int(v) for v in value)
    except TypeError as e:
        raise ValueError(
            f"Layer {layer_name!r}: expected `{name}` to be an int or a tuple of 2 "
            f"ints. Received: {name}={value!r}"
        ) from e
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(
            f"Layer {layer_name!r}: expected `{name}` to be an int or a tuple of 2 "
            f"positive ints. Received: {name}={value!r}"
        )
    return pair


class _LowRank(keras.layers.Layer):
    """What both low-rank layers share: the Dense/Conv2D-style arguments, two factors
    and a bias, and their serialisation."""

    def _store_common(
        self,
        rank,
        activation,
        use_bias,
        kernel_initializer,
        bias_initializer,
        kernel_regularizer,
        bias_regularizer,
        kernel_constraint,
        bias_constraint,
    ) -> None:
        self.rank = _check_rank(self.name, rank)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)

    def _add_factors(self, shape_1: tuple, shape_2: tuple, outputs: int) -> None:
        for name, shape in (("kernel_1", shape_1), ("kernel_2", shape_2)):
            setattr(
                self,
                name,
                self.add_weight(
                    name=name,
                    shape=shape,
                    initializer=self.kernel_initializer,
                    regularizer=self.kernel_regularizer,
                    constraint=self.kernel_constraint,
                ),
            )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(outputs,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def _common_config(self) -> dict:
        return {
            "rank": self.rank,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": keras.regularizers.serialize(
                self.activity_regularizer
            ),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
        }


@keras.saving.register_keras_serializable(package="tfedge")
class LowRankDense(_LowRank):
    """A Dense layer whose m x n kernel is the product of an m x r and an r x n matrix.

    `outputs = activation(inputs @ kernel_1 @ kernel_2 + bias)`: the same arguments and
    defaults as `keras.layers.Dense` (LoRA and quantization options aside) plus the
    keyword-only `rank`. The multiply-adds per input row drop from m*n to r*(m + n), a
    saving whenever r < m*n / (m + n).

    Weights, all created in `build` and all trained by back-propagation:
    `kernel_1` (m, r), `kernel_2` (r, n) and `bias` (n,) when `use_bias`. The kernel
    initializer, regularizer and constraint apply to both factors.
    """

    def __init__(
        self,
        units: int,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        *,
        rank: int,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = _check_positive(self.name, "units", units)
        self._store_common(
            rank,
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
            kernel_constraint,
            bias_constraint,
        )
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        self.supports_masking = True

    def build(self, input_shape):
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ValueError(
                f"Layer {self.name!r}: the last dimension of the inputs must be known. "
                f"Received: input_shape={input_shape}"
            )
        self._add_factors((in_dim, self.rank), (self.rank, self.units), self.units)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: in_dim})

    def call(self, inputs):
        x = ops.matmul(ops.matmul(inputs, self.kernel_1), self.kernel_2)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                **self._common_config(),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tfedge")
class LowRankConv2D(_LowRank):
    """A Conv2D of d filters k x k x c replaced by r filters and a 1 x 1, r -> d conv.

    `outputs = activation(conv1x1(conv(inputs, kernel_1), kernel_2) + bias)`: the same
    arguments and defaults as `keras.layers.Conv2D` (grouped convolution and LoRA
    options aside) plus the keyword-only `rank`. The first convolution takes the
    strides, padding and dilation; the second is 1 x 1 with stride 1. The multiply-adds
    per output position drop from k*k*c*d to r*(k*k*c + d).

    Weights, all created in `build` and all trained by back-propagation:
    `kernel_1` (kh, kw, c, r), `kernel_2` (1, 1, r, d) and `bias` (d,) when `use_bias`.
    The kernel initializer, regularizer and constraint apply to both factors.
    """

    def __init__(
        self,
        filters: int,
        kernel_size,
        strides=(1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate=(1, 1),
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        *,
        rank: int,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.filters = _check_positive(self.name, "filters", filters)
        self._store_common(
            rank,
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
            kernel_constraint,
            bias_constraint,
        )
        self.kernel_size = _pair(self.name, "kernel_size", kernel_size)
        self.strides = _pair(self.name, "strides", strides)
        self.dilation_rate = _pair(self.name, "dilation_rate", dilation_rate)
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError(
                f"Layer {self.name!r}: expected `padding` in ('valid', 'same'). "
                f"Received: padding={padding!r}"
            )
        self.padding = padding.lower()
        if data_format is None:
            data_format = keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                f"Layer {self.name!r}: expected `data_format` in (None, "
                f"'channels_last', 'channels_first'). Received: "
                f"data_format={data_format!r}"
            )
        self.data_format = data_format
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def build(self, input_shape):
        channels = input_shape[self._channel_axis()]
        if channels is None:
            raise ValueError(
                f"Layer {self.name!r}: the channel dimension of the inputs must be "
                f"known. Received: input_shape={input_shape}"
            )
        self._add_factors(
            self.kernel_size + (channels, self.rank),
            (1, 1, self.rank, self.filters),
            self.filters,
        )
        self.input_spec = keras.layers.InputSpec(
            ndim=4, axes={self._channel_axis(): channels}
        )

    def call(self, inputs):
        x = ops.conv(
            inputs,
            self.kernel_1,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )
        x = ops.conv(
            x, self.kernel_2, strides=1, padding="valid", data_format=self.data_format
        )
        if self.bias is not None:
            if self.data_format == "channels_last":
                x = ops.add(x, self.bias)
            else:
                x = ops.add(x, ops.reshape(self.bias, (1, self.filters, 1, 1)))
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        if self.data_format == "channels_last":
            spatial = input_shape[1:3]
        else:
            spatial = input_shape[2:4]
        out = []
        for size, k, s, dil in zip(
            spatial, self.kernel_size, self.strides, self.dilation_rate, strict=True
        ):
            if size is None:
                out.append(None)
                continue
            effective = (k - 1) * dil + 1
            if self.padding == "same":
                out.append((size + s - 1) // s)
            else:
                out.append((size - effective) // s + 1)
        if self.data_format == "channels_last":
            return (input_shape[0], out[0], out[1], self.filters)
        return (input_shape[0], self.filters, out[0], out[1])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
                "dilation_rate": self.dilation_rate,
                **self._common_config(),
            }
        )
        return config
