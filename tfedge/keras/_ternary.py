"""Trained ternary quantization (Zhu, Han, Mao and Dally 2016, "Trained Ternary
Quantization").

Each wrapped layer keeps its full-precision *latent* kernel. In every forward pass the
latent kernel is normalised by its largest magnitude and thresholded at `t` (one
hyper-parameter for the whole model, as in the paper):

    delta  = t * max|w~|
    w_t    = +Wp   where w~ >  delta
           =  0    where |w~| <= delta
           = -Wn   where w~ < -delta

Wp and Wn are two trained, positive, per-layer scales. The gradients are the paper's
(section 3): the latent weights receive the output gradient scaled by Wp, by Wn, or by
1 in the zero band (eq. 8), and each scale receives the sum of the gradients of the
weights it stands for (eq. 7). Wn is stored as a positive magnitude (the weights are
-Wn), so its exact derivative is minus that sum, which keeps gradient descent moving it
the right way.

The custom gradient is written with `keras.ops.stop_gradient` only, so it runs on every
Keras backend:

    kernel = w_t + stop_gradient(scale) * (w~ - stop_gradient(w~))

whose value is exactly `w_t` and whose gradient is `scale * g` for the latent weights.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Iterable

import keras
import numpy as np
from keras import ops

from tfedge._layers import walk_layers
from tfedge.keras import _kernel_swap

__all__ = ["TernaryWrapper", "ternarize", "ternary_kernel"]

# Wp and Wn are kept at or above this value by a constraint applied after every
# optimizer step, so that training can never flip their sign (a negative Wp would
# silently turn the "positive" weights negative). A scale that sits on the floor is
# reported by `tfedge_strip`.
SCALE_FLOOR = 1e-8

_INITIAL_SCALES = ("mean",)


def ternary_kernel(latent, wp, wn, threshold: float):
    """The ternary kernel {-Wn, 0, +Wp} of `latent`, with the paper's gradients.

    Args:
        latent: the full-precision latent kernel (tensor or variable).
        wp: the positive scale (scalar tensor or variable).
        wn: the negative scale, stored as a positive magnitude.
        threshold: t in (0, 1); weights with |w| <= t * max|w| become zero.

    Returns:
        A tensor of the kernel's shape and dtype holding only -Wn, 0 and +Wp.
    """
    latent = ops.convert_to_tensor(latent)
    frozen = ops.stop_gradient(latent)
    delta = ops.max(ops.abs(frozen)) * threshold
    positive = ops.cast(frozen > delta, latent.dtype)
    negative = ops.cast(frozen < -delta, latent.dtype)
    wp = ops.cast(wp, latent.dtype)
    wn = ops.cast(wn, latent.dtype)
    ternary = wp * positive - wn * negative
    # Gradient scale for the latent weights: Wp, Wn, or 1 in the zero band (eq. 8).
    scale = ops.stop_gradient(
        wp * positive + wn * negative + (1.0 - positive - negative)
    )
    return ternary + scale * (latent - frozen)


def _ternary_numpy(latent: np.ndarray, wp: float, wn: float, threshold: float):
    """The forward value of `ternary_kernel` in numpy (bit-identical to it)."""
    latent = np.asarray(latent, dtype=np.float32)
    delta = np.max(np.abs(latent)) * np.float32(threshold)
    out = np.zeros_like(latent)
    out[latent > delta] = np.float32(wp)
    out[latent < -delta] = -np.float32(wn)
    return out


def _initial_scales(latent: np.ndarray, threshold: float) -> tuple[float, float]:
    """Wp, Wn as the mean magnitude of the weights each one stands for.

    Fine-tuning a trained model then starts from the closest ternary kernel of that form
    (the per-sign analogue of Li and Liu's ternary weight networks); a sign that has no
    weight above the threshold borrows the other sign's mean.
    """
    latent = np.asarray(latent, dtype=np.float32)
    delta = np.max(np.abs(latent)) * np.float32(threshold)
    pos = latent[latent > delta]
    neg = -latent[latent < -delta]
    wp = float(pos.mean()) if pos.size else float(neg.mean())
    wn = float(neg.mean()) if neg.size else wp
    return wp, wn


def _check_threshold(threshold) -> float:
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, numbers.Real)
        or not 0.0 < float(threshold) < 1.0
    ):
        raise ValueError(
            "Expected `threshold` in (0, 1): weights with |w| <= threshold * max|w| "
            f"become zero (the paper uses 0.05). Received: threshold={threshold!r}"
        )
    return float(threshold)


def _check_initial_scale(initial_scale):
    if isinstance(initial_scale, str):
        if initial_scale not in _INITIAL_SCALES:
            raise ValueError(
                f"Expected `initial_scale` to be one of {list(_INITIAL_SCALES)} or a "
                f"positive number. Received: initial_scale={initial_scale!r}"
            )
        return initial_scale
    if (
        isinstance(initial_scale, bool)
        or not isinstance(initial_scale, numbers.Real)
        or not float(initial_scale) > 0.0
        or not np.isfinite(float(initial_scale))
    ):
        raise ValueError(
            "Expected `initial_scale` to be 'mean' or a positive finite number. "
            f"Received: initial_scale={initial_scale!r}"
        )
    return float(initial_scale)


def _check_not_all_zero(values: np.ndarray, layer_name: str) -> None:
    if not np.any(values):
        raise ValueError(
            f"The kernel of layer {layer_name!r} is all zeros, so it has no maximum to "
            "normalise by and no sign to learn. Ternarize a trained (or randomly "
            "initialised) layer, or leave this one out."
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"The kernel of layer {layer_name!r} holds NaN or infinite values. "
            "Ternarize a layer with finite weights."
        )


class _ScaleFloor(keras.constraints.Constraint):
    """Keeps a scale at or above `SCALE_FLOOR` (never negative, never exactly zero)."""

    def __call__(self, w):
        return ops.maximum(w, ops.cast(SCALE_FLOOR, w.dtype))


@keras.saving.register_keras_serializable(package="tfedge")
class TernaryWrapper(keras.layers.Wrapper):
    """Trains a layer's kernel as ternary {-Wn, 0, +Wp} (Zhu et al. 2016).

    The wrapped layer's own `kernel` variable is the latent full-precision kernel; the
    optimizer updates it (through the straight-through gradients described in this
    module) in `model.fit`. The wrapper adds two trainable scalar weights, `wp` and
    `wn`, created in `build` (initialised from the latent kernel, see `initial_scale`)
    and updated by the optimizer; a constraint keeps both at or above `SCALE_FLOOR`.
    Every forward pass (training or not) uses the ternary kernel; `tfedge_strip()`
    returns the plain layer with that kernel baked in.

    Args:
        layer: a Keras layer with a `kernel` weight (Dense, Conv1D/2D/3D, ...).
        threshold: t in (0, 1). Weights with |w| <= t * max|w| of the layer become zero.
        initial_scale: "mean" (Wp and Wn start at the mean magnitude of the positive and
            negative weights above the threshold, a good start when fine-tuning a
            trained model) or a positive number used for both (the paper trains from
            scratch with 1.0 on a normalised kernel).
        **kwargs: base layer arguments (`name`, `trainable`, `dtype`).
    """

    def __init__(
        self,
        layer: keras.layers.Layer,
        threshold: float = 0.05,
        initial_scale: str | float = "mean",
        **kwargs,
    ):
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                "Expected `layer` to be a Keras layer with a kernel. Received: "
                f"layer={layer!r}"
            )
        self.threshold = _check_threshold(threshold)
        self.initial_scale = _check_initial_scale(initial_scale)
        if layer.built:
            kernel = _kernel_swap.require_kernel(layer, "TernaryWrapper")
            _check_not_all_zero(_kernel_swap.to_numpy(kernel), layer.name)
        kwargs.setdefault("name", layer.name)
        super().__init__(layer, **kwargs)

    def build(self, input_shape=None):
        super().build(input_shape)
        kernel = _kernel_swap.require_kernel(self.layer, "TernaryWrapper")
        latent = np.asarray(_kernel_swap.to_numpy(kernel), dtype=np.float32)
        _check_not_all_zero(latent, self.layer.name)
        if self.initial_scale == "mean":
            wp, wn = _initial_scales(latent, self.threshold)
        else:
            wp = wn = self.initial_scale
        self.wp = self.add_weight(
            name="wp",
            shape=(),
            initializer=keras.initializers.Constant(wp),
            constraint=_ScaleFloor(),
            trainable=True,
        )
        self.wn = self.add_weight(
            name="wn",
            shape=(),
            initializer=keras.initializers.Constant(wn),
            constraint=_ScaleFloor(),
            trainable=True,
        )

    def call(self, inputs, training=None):
        kernel = ternary_kernel(self.layer.kernel, self.wp, self.wn, self.threshold)
        return _kernel_swap.call_with_kernel(self.layer, kernel, inputs, training)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def ternary_values(self) -> np.ndarray:
        """The kernel the layer currently computes with: only -Wn, 0 and +Wp (numpy)."""
        return _ternary_numpy(
            _kernel_swap.to_numpy(self.layer.kernel),
            float(_kernel_swap.to_numpy(self.wp)),
            float(_kernel_swap.to_numpy(self.wn)),
            self.threshold,
        )

    def tfedge_strip(self) -> keras.layers.Layer:
        """The wrapped layer, built, with its kernel set to the ternary values.

        Warns when a scale sits on its floor (training pushed it towards a sign flip),
        since the weights of that sign are then effectively zero.
        """
        for name, scale in (("Wp", self.wp), ("Wn", self.wn)):
            value = float(_kernel_swap.to_numpy(scale))
            if value <= SCALE_FLOOR:
                warnings.warn(
                    f"Layer {self.layer.name!r}: {name} = {value:.3g} is at its floor "
                    f"{SCALE_FLOOR:g} (training drove it towards a sign flip), so the "
                    f"weights it scales are effectively zero. Lower the learning rate "
                    "or the threshold if this is not intended.",
                    stacklevel=2,
                )
        plain = _kernel_swap.copy_layer(self.layer)
        _kernel_swap.kernel_variable(plain).assign(self.ternary_values())
        return plain

    def get_config(self):
        config = super().get_config()
        config.update(threshold=self.threshold, initial_scale=self.initial_scale)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # keras.layers.Wrapper.from_config pops "layer" from the dict it is given.
        return super().from_config(dict(config), custom_objects=custom_objects)


def ternarize(
    model_or_layer: keras.Model | keras.layers.Layer,
    *,
    threshold: float = 0.05,
    layers: Iterable[str] | Callable[[keras.layers.Layer], bool] | None = None,
    exclude_first_last: bool = True,
    initial_scale: str | float = "mean",
) -> keras.Model | TernaryWrapper:
    """Wraps layers for trained ternary quantization (Zhu et al. 2016).

    Args:
        model_or_layer: a built Sequential or functional model (it is copied, never
            modified), or a single layer (returned wrapped).
        threshold: t in (0, 1), shared by all layers as in the paper.
        layers: which layers to ternarize: a list of layer names, or a predicate
            `fn(layer) -> bool`. By default every layer with a kernel, less the first
            and last (see `exclude_first_last`).
        exclude_first_last: with `layers=None`, keep the first and last layers that
            have a kernel in full precision, as the paper does. Ignored when `layers` is
            given (name those layers to include them).
        initial_scale: see `TernaryWrapper`.

    Returns:
        A new model whose chosen layers are `TernaryWrapper`s holding copies of the
        original weights (or the wrapped layer). Train it with `model.fit`, then call
        `tfedge.keras.strip` for a plain model whose kernels hold exactly {-Wn, 0, +Wp}.

    Batch normalisation layers stay as they are (in full precision, as in the paper).
    The TFLite converter folds each one into the kernel before it, so that kernel's
    output channel c holds {-Wn s_c, 0, +Wp s_c}; `tfedge.compress` stores such a kernel
    losslessly with one three-entry codebook per output channel.
    """
    threshold = _check_threshold(threshold)
    initial_scale = _check_initial_scale(initial_scale)
    if isinstance(model_or_layer, keras.layers.Layer) and not isinstance(
        model_or_layer, keras.Model
    ):
        return TernaryWrapper(
            model_or_layer, threshold=threshold, initial_scale=initial_scale
        )
    model = model_or_layer
    _kernel_swap.check_cloneable(model, "ternarize")
    _kernel_swap.check_no_other_wrappers(model, TernaryWrapper, "ternarize")
    candidates = [
        layer
        for layer in walk_layers(model, include_models=False)
        if _kernel_swap.kernel_variable(layer) is not None
        and not isinstance(layer, TernaryWrapper)
    ]
    chosen = _kernel_swap.select_layers(model, layers, candidates, "ternarize")
    if layers is None and exclude_first_last and candidates:
        chosen -= {id(candidates[0]), id(candidates[-1])}
    if not chosen:
        raise ValueError(
            f"`ternarize` found no layer to wrap in model {model.name!r}: layers "
            f"with a kernel are {[layer.name for layer in candidates]}"
            + (
                " and the first and last are excluded; pass exclude_first_last=False "
                "or name the layers with `layers=`."
                if layers is None and exclude_first_last and candidates
                else "."
            )
        )
    if layers is None:
        _kernel_swap.warn_skipped(
            model,
            "ternarize",
            lambda layer: _kernel_swap.kernel_variable(layer) is not None,
            _kernel_swap.KERNEL_HINT,
        )
    for layer in candidates:
        if id(layer) in chosen:
            _check_not_all_zero(
                _kernel_swap.to_numpy(_kernel_swap.kernel_variable(layer)), layer.name
            )

    def wrap(original, copy):
        if id(original) not in chosen:
            return None
        return TernaryWrapper(copy, threshold=threshold, initial_scale=initial_scale)

    return _kernel_swap.clone_wrapping(model, wrap)
