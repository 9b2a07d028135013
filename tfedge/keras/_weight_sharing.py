"""Trained weight sharing (Han, Mao and Dally 2016, "Deep Compression", section 3).

Per layer, the non-pruned weights are clustered by 1-D k-means into 2^b shared values
(centroids); every weight keeps the index of its cluster for the rest of training, and
only the centroids are trained. The kernel the layer computes with is

    kernel = take(concat(centroids, [0]), indices)

where pruned weights (exact zeros when the layer is wrapped) point at the extra,
constant zero slot and therefore stay zero. The gradient of a gather is a scatter-add,
so autodiff gives each centroid exactly the sum of the gradients of its member weights,
the paper's eq. 3:  dL/dC_k = sum_ij dL/dW_ij * 1(I_ij = k).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Mapping

import keras
import numpy as np
from keras import ops

from tfedge.keras import _kernel_swap

__all__ = ["DEFAULT_BITS", "WeightSharingWrapper", "default_bits", "share_weights"]

# The paper's choice: 8 bits for convolution layers, 5 for fully-connected ones. Layers
# that are neither (EinsumDense, ...) get the fully-connected value.
DEFAULT_BITS = {"conv": 8, "dense": 5}
_CONV_TYPES = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
_INITS = ("linear", "density", "random")
_MIN_BITS, _MAX_BITS = 1, 8


def default_bits(layer: keras.layers.Layer) -> int:
    """The paper's bits for `layer`: 8 for a convolution, 5 otherwise."""
    return (
        DEFAULT_BITS["conv"]
        if isinstance(layer, _CONV_TYPES)
        else DEFAULT_BITS["dense"]
    )


def _check_bits(bits, where: str = "bits") -> int:
    if (
        isinstance(bits, bool)
        or not isinstance(bits, numbers.Integral)
        or not _MIN_BITS <= int(bits) <= _MAX_BITS
    ):
        raise ValueError(
            f"Expected `{where}` to be an integer in [{_MIN_BITS}, {_MAX_BITS}] "
            f"(2^bits shared values per layer). Received: {where}={bits!r}"
        )
    return int(bits)


def _check_init(init) -> str:
    if init not in _INITS:
        raise ValueError(
            f"Expected `init` to be one of {list(_INITS)} (the paper recommends "
            f"'linear'). Received: init={init!r}"
        )
    return init


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(
            f"Expected `seed` to be a non-negative integer. Received: seed={seed!r}"
        )
    return int(seed)


def _cluster(values: np.ndarray, k: int, init: str, seed: int, layer_name: str):
    """(centroids of length k, labels of the non-zero weights) for a layer's kernel.

    With fewer distinct non-zero weights than clusters, every distinct value becomes its
    own centroid (exact) and the remaining centroids are unused; this is warned about.
    """
    nonzero = values[values != 0]
    if nonzero.size == 0:
        raise ValueError(
            f"The kernel of layer {layer_name!r} is all zeros (fully pruned): there is "
            "nothing to share. Leave the layer out (pass `bits` as a dict or a "
            "callable returning None for it)."
        )
    if not np.all(np.isfinite(nonzero)):
        raise ValueError(
            f"The kernel of layer {layer_name!r} holds NaN or infinite values. Share "
            "the weights of a layer with finite weights."
        )
    distinct = np.unique(nonzero)
    if distinct.size <= k:
        if distinct.size < k:
            warnings.warn(
                f"Layer {layer_name!r} has {distinct.size} distinct non-zero weights, "
                f"fewer than its {k} clusters: each distinct "
                f"value becomes its own centroid (exact) and {k - distinct.size} "
                "centroids stay unused. Give this layer fewer bits to avoid the waste.",
                stacklevel=3,
            )
        centroids = np.full(k, distinct[-1], dtype=np.float32)
        centroids[: distinct.size] = distinct
        labels = np.searchsorted(distinct, nonzero)
        return centroids, labels
    from tfedge.codecs import kmeans_1d

    centroids, labels = kmeans_1d(nonzero, k, init=init, seed=seed)
    centroids = np.asarray(centroids, dtype=np.float32)
    if centroids.size < k:  # k-means may drop empty clusters; keep the shape fixed
        centroids = np.concatenate(
            [centroids, np.full(k - centroids.size, centroids[-1], np.float32)]
        )
    return centroids, np.asarray(labels)


@keras.saving.register_keras_serializable(package="tfedge")
class WeightSharingWrapper(keras.layers.Wrapper):
    """Trains a layer's kernel as 2^bits shared values (Deep Compression, eq. 3).

    State, all created in `build` from the wrapped layer's kernel at that moment:

    - `centroids` (trainable, shape (clusters,)): the shared values, initialised by 1-D
      k-means over the non-zero weights; updated by the optimizer in `model.fit`, each
      receiving the sum of its members' gradients. `clusters` is 2^bits, or 2^bits - 1
      when the kernel is pruned (`reserve_zero`), so that the shared values and the zero
      together still fit b-bit indices, as in Deep Compression.
    - `indices` (non-trainable, int32, the kernel's shape): each weight's cluster, or
      `clusters` for a pruned (zero) weight. Fixed after `build`; never updated.

    The wrapped layer's own `kernel` is marked non-trainable and is not used for
    computing; every forward pass uses `take(concat(centroids, [0]), indices)`.
    `tfedge_strip()` returns the plain layer with that kernel baked in: at most 2^bits
    distinct non-zero values, pruned weights still exactly zero.

    Args:
        layer: a Keras layer with a `kernel` weight.
        bits: 1 to 8; the layer gets 2^bits shared values.
        init: centroid initialisation: "linear" (evenly spaced between the smallest and
            largest weight; the paper's best), "density" (evenly spaced in the weights'
            CDF) or "random" (Forgy: randomly chosen weights).
        seed: seed of the "random" initialisation (and of k-means tie-breaking).
        reserve_zero: keep one of the 2^bits codes for the pruned zero (2^bits - 1
            shared values). None decides in `build`: True when the kernel holds zeros.
        **kwargs: base layer arguments (`name`, `trainable`, `dtype`).
    """

    def __init__(
        self,
        layer: keras.layers.Layer,
        bits: int = DEFAULT_BITS["dense"],
        init: str = "linear",
        seed: int = 0,
        reserve_zero: bool | None = None,
        **kwargs,
    ):
        if reserve_zero is not None and not isinstance(reserve_zero, bool):
            raise ValueError(
                "Expected `reserve_zero` to be True, False or None. Received: "
                f"reserve_zero={reserve_zero!r}"
            )
        self.reserve_zero = reserve_zero
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                "Expected `layer` to be a Keras layer with a kernel. Received: "
                f"layer={layer!r}"
            )
        self.bits = _check_bits(bits)
        self.init = _check_init(init)
        self.seed = _check_seed(seed)
        if layer.built:
            _kernel_swap.require_kernel(layer, "WeightSharingWrapper")
        kwargs.setdefault("name", layer.name)
        super().__init__(layer, **kwargs)

    @property
    def clusters(self) -> int:
        return 2**self.bits - (1 if self.reserve_zero and self.bits > 1 else 0)

    def build(self, input_shape=None):
        super().build(input_shape)
        kernel = _kernel_swap.require_kernel(self.layer, "WeightSharingWrapper")
        values = np.asarray(_kernel_swap.to_numpy(kernel), dtype=np.float32)
        if self.reserve_zero is None:
            self.reserve_zero = bool(np.any(values == 0))
        centroids, labels = _cluster(
            values, self.clusters, self.init, self.seed, self.layer.name
        )
        indices = np.full(values.shape, self.clusters, dtype=np.int32)
        indices[values != 0] = labels
        self.centroids = self.add_weight(
            name="centroids",
            shape=(self.clusters,),
            initializer="zeros",
            trainable=True,
        )
        self.indices = self.add_weight(
            name="indices",
            shape=values.shape,
            dtype="int32",
            initializer="zeros",
            trainable=False,
        )
        self.centroids.assign(centroids)
        self.indices.assign(indices)
        # The stored kernel is replaced by the shared one; it must not be trained (and
        # would otherwise get no gradient).
        kernel.trainable = False

    def shared_kernel(self):
        """The kernel as computed in `call`: centroids gathered by indices."""
        table = ops.concatenate(
            [
                ops.convert_to_tensor(self.centroids),
                ops.zeros((1,), self.centroids.dtype),
            ]
        )
        return ops.take(table, self.indices)

    def call(self, inputs, training=None):
        return _kernel_swap.call_with_kernel(
            self.layer, self.shared_kernel(), inputs, training
        )

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def shared_values(self) -> np.ndarray:
        """The current shared kernel as numpy (same values as used in `call`)."""
        table = np.append(_kernel_swap.to_numpy(self.centroids), np.float32(0))
        return table[_kernel_swap.to_numpy(self.indices)].astype(np.float32)

    def tfedge_strip(self) -> keras.layers.Layer:
        """The wrapped layer, built, with its kernel set to the shared values."""
        plain = _kernel_swap.copy_layer(self.layer)
        kernel = _kernel_swap.kernel_variable(plain)
        kernel.trainable = True
        kernel.assign(self.shared_values())
        return plain

    def get_config(self):
        config = super().get_config()
        config.update(
            bits=self.bits,
            init=self.init,
            seed=self.seed,
            reserve_zero=self.reserve_zero,
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # keras.layers.Wrapper.from_config pops "layer" from the dict it is given.
        return super().from_config(dict(config), custom_objects=custom_objects)


BitsSpec = int | Mapping[str, int] | Callable[[keras.layers.Layer], int | None] | None


def share_weights(
    model_or_layer: keras.Model | keras.layers.Layer,
    *,
    bits: BitsSpec = None,
    init: str = "linear",
    seed: int = 0,
) -> keras.Model | WeightSharingWrapper:
    """Wraps layers for trained weight sharing (Deep Compression stage 2).

    Prune first (and `strip`) if you want sparsity: exact zeros in a kernel are treated
    as pruned and stay zero.

    Args:
        model_or_layer: a built Sequential or functional model (copied, never modified)
            or a single layer (returned wrapped).
        bits: bits per layer (2^bits shared values):
            - None: the paper's defaults, 8 for convolutions and 5 for the rest, for
              every layer with a kernel;
            - an int in [1, 8] for every layer with a kernel;
            - a dict {layer name: bits}: only those layers are shared;
            - a callable `fn(layer) -> int | None`: None leaves the layer unshared.
        init: "linear", "density" or "random" centroid initialisation.
        seed: seed for the "random" initialisation.

    Returns:
        A new model whose chosen layers are `WeightSharingWrapper`s. Train it with
        `model.fit` (only centroids and unwrapped layers learn), then
        `tfedge.keras.strip` gives plain layers with at most 2^bits distinct non-zero
        values per kernel.

    A layer with fewer distinct non-zero weights than 2^bits keeps its exact values (one
    centroid each, the rest unused) and triggers a warning.
    """
    init = _check_init(init)
    seed = _check_seed(seed)
    if isinstance(bits, Mapping):
        bits = {name: _check_bits(b, f"bits[{name!r}]") for name, b in bits.items()}
    elif bits is not None and not callable(bits):
        bits = _check_bits(bits)

    if isinstance(model_or_layer, keras.layers.Layer) and not isinstance(
        model_or_layer, keras.Model
    ):
        layer = model_or_layer
        if isinstance(bits, Mapping) or callable(bits):
            raise ValueError(
                "For a single layer, `bits` must be an int or None. Received: "
                f"bits={bits!r}"
            )
        b = default_bits(layer) if bits is None else bits
        return WeightSharingWrapper(layer, bits=b, init=init, seed=seed)

    model = model_or_layer
    _kernel_swap.check_cloneable(model, "share_weights")
    _kernel_swap.check_no_other_wrappers(model, WeightSharingWrapper, "share_weights")
    candidates = [
        layer
        for layer in _kernel_swap.flat_layers(model)
        if _kernel_swap.kernel_variable(layer) is not None
        and not isinstance(layer, WeightSharingWrapper)
    ]
    if isinstance(bits, Mapping):
        chosen = _kernel_swap.select_layers(
            model, list(bits), candidates, "share_weights"
        )
        per_layer = {id(lyr): bits[lyr.name] for lyr in candidates if id(lyr) in chosen}
    elif callable(bits):
        per_layer = {}
        for layer in candidates:
            b = bits(layer)
            if b is not None:
                per_layer[id(layer)] = _check_bits(b, f"bits({layer.name!r})")
    else:
        per_layer = {
            id(lyr): default_bits(lyr) if bits is None else bits for lyr in candidates
        }
    if not per_layer:
        raise ValueError(
            f"`share_weights` found no layer to share in model {model.name!r}: "
            + (
                f"the layers with a kernel are {[lyr.name for lyr in candidates]} and "
                "`bits` selected none of them."
                if candidates
                else "no layer has a `kernel` weight (Dense, Conv1D/2D/3D, ...)."
            )
        )

    def wrap(original, copy):
        if id(original) not in per_layer:
            return None
        return WeightSharingWrapper(
            copy, bits=per_layer[id(original)], init=init, seed=seed
        )

    return _kernel_swap.clone_wrapping(model, wrap)
