"""Trained weight sharing (Han, Mao and Dally 2016, "Deep Compression", section 3).

Per layer, the non-pruned weights are clustered by 1-D k-means into 2^b shared values
(centroids); every weight keeps the index of its cluster for the rest of training, and
only the centroids are trained. The kernel the layer computes with is

    kernel = take(concat(centroids, [0]), indices)

where pruned weights (exact zeros when the layer is wrapped) point at the extra,
constant zero slot and therefore stay zero. The gradient of a gather is a scatter-add,
so autodiff gives each centroid exactly the sum of the gradients of its member weights,
the paper's eq. 3:  dL/dC_k = sum_ij dL/dW_ij * 1(I_ij = k).

How the indices are chosen (`method`; Choi, El-Khamy and Lee 2017, "Towards the Limit
of Network Quantization"):

- "kmeans": Deep Compression's plain 1-D k-means (minimum squared error).
- "hessian": Hessian-weighted k-means: the error of each weight counts in proportion to
  its importance h (the loss curvature's diagonal), so the clusters follow the weights
  the loss is sensitive to. h is the mean of squared per-example gradients over
  `hessian_data` (`tfedge.keras.estimate_hessian`'s estimate), or Adam's second moments
  (the optimizer's `velocity` of each kernel) when the model was trained with Adam and
  no `hessian_data` is given.
- "ecsq": entropy-constrained scalar quantization: a Lloyd-like iteration from evenly
  spaced ("uniform") centroids whose assignment cost is the (h-weighted, when h is
  available as above, else unweighted) squared error plus `rate` times the index's code
  length -log2 p. `rate` (lambda) is in units of the layer's weight variance per bit
  (see `tfedge.codecs.ecsq_1d`); `rate=None` searches, per layer, the smallest lambda
  whose index entropy is at most `target_bits` bits per non-zero weight (default
  `bits - 2`, at least 1: a quarter to a half of the fixed-width index), which the
  Huffman coder of `tfedge.compress` then nearly reaches.

Training afterwards is the same for every method: only the centroids learn (eq. 3).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Mapping

import keras
import numpy as np
from keras import ops

from tfedge._checks import MAX_SHARING_BITS, check_sharing_bits
from tfedge._layers import walk_layers
from tfedge.keras import _kernel_swap

__all__ = [
    "DEFAULT_BITS",
    "METHODS",
    "WeightSharingWrapper",
    "default_bits",
    "default_target_bits",
    "share_weights",
]

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
METHODS = ("kmeans", "hessian", "ecsq")
# The entropy target of `method="ecsq", rate=None`: this many bits below the
# fixed-width index, and never below _MIN_TARGET_BITS.
_TARGET_BELOW_BITS = 2
_MIN_TARGET_BITS = 1.0
# Examples per gradient batch when estimating the curvature from `hessian_data` arrays.
HESSIAN_BATCH_SIZE = 32


def default_target_bits(bits: int) -> float:
    """ECSQ's default index entropy per non-zero weight: max(bits - 2, 1)."""
    return max(float(bits - _TARGET_BELOW_BITS), _MIN_TARGET_BITS)


def default_bits(layer: keras.layers.Layer) -> int:
    """The paper's bits for `layer`: 8 for a convolution, 5 otherwise."""
    return (
        DEFAULT_BITS["conv"]
        if isinstance(layer, _CONV_TYPES)
        else DEFAULT_BITS["dense"]
    )


def _check_init(init) -> str:
    if init not in _INITS:
        raise ValueError(
            f"Expected `init` to be one of {list(_INITS)} (the paper recommends "
            f"'linear'). Received: init={init!r}"
        )
    return init


def check_sharing_method(method, rate, target_bits, init):
    """(method, rate, target_bits) checked against each other and `init`, as
    `share_weights` and `deep_compress` take them."""
    if method not in METHODS:
        raise ValueError(
            f"Expected `method` to be one of {list(METHODS)}. Received: "
            f"method={method!r}"
        )
    if rate is not None:
        if (
            isinstance(rate, bool)
            or not isinstance(rate, numbers.Real)
            or not np.isfinite(rate)
            or rate < 0
        ):
            raise ValueError(
                "Expected `rate` to be None or a finite number >= 0 (lambda, the cost "
                f"of one index bit in weight variances). Received: rate={rate!r}"
            )
        rate = float(rate)
    if target_bits is not None:
        if (
            isinstance(target_bits, bool)
            or not isinstance(target_bits, numbers.Real)
            or not 0 < target_bits <= MAX_SHARING_BITS
        ):
            raise ValueError(
                "Expected `target_bits` to be None or a number in "
                f"(0, {MAX_SHARING_BITS}] (index entropy per non-zero weight). "
                f"Received: target_bits={target_bits!r}"
            )
        target_bits = float(target_bits)
    if method != "ecsq" and (rate is not None or target_bits is not None):
        raise ValueError(
            "`rate` and `target_bits` set the entropy constraint of method='ecsq'. "
            f"Received: method={method!r}, rate={rate!r}, target_bits={target_bits!r}"
        )
    if rate is not None and target_bits is not None:
        raise ValueError(
            "Pass either `rate` (a fixed lambda) or `target_bits` (lambda searched to "
            f"meet it), not both. Received: rate={rate!r}, target_bits={target_bits!r}"
        )
    if method != "kmeans" and init == "random":
        raise ValueError(
            f"method={method!r} starts from 'linear' (uniform) or 'density' centroids. "
            "Received: init='random'"
        )
    return method, rate, target_bits


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(
            f"Expected `seed` to be a non-negative integer. Received: seed={seed!r}"
        )
    return int(seed)


def _cluster(
    values: np.ndarray,
    k: int,
    init: str,
    seed: int,
    layer_name: str,
    method: str = "kmeans",
    importance: np.ndarray | None = None,
    rate: float | None = None,
    target_bits: float | None = None,
):
    """(centroids of length k, labels of the non-zero weights, ECSQ rate or None).

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
        # Warned only when fewer bits would hold every value: 2^b clusters for more
        # than 2^(b-1) values are the fewest there can be.
        if 2 * distinct.size <= k:
            needed = max(1, int(np.ceil(np.log2(distinct.size))))
            warnings.warn(
                f"Layer {layer_name!r} has {distinct.size} distinct non-zero weights, "
                f"fewer than its {k} clusters: each distinct "
                f"value becomes its own centroid (exact) and {k - distinct.size} "
                f"centroids stay unused. Give this layer {needed} bits to avoid the "
                "waste.",
                stacklevel=3,
            )
        centroids = np.full(k, distinct[-1], dtype=np.float32)
        centroids[: distinct.size] = distinct
        labels = np.searchsorted(distinct, nonzero)
        return centroids, labels, None
    from tfedge import codecs

    h = None if importance is None else importance[values != 0]
    used_rate = None
    if method == "kmeans":
        centroids, labels = codecs.kmeans_1d(nonzero, k, init=init, seed=seed)
    elif method == "hessian":
        centroids, labels = codecs.weighted_kmeans_1d(nonzero, k, h, init=init)
    elif rate is not None:
        used_rate = rate
        centroids, labels = codecs.ecsq_1d(nonzero, k, rate, h, init=init)
    else:
        used_rate, centroids, labels = codecs.ecsq_search(
            nonzero, k, target_bits, h, init=init
        )
    centroids = np.asarray(centroids, dtype=np.float32)
    if centroids.size < k:  # k-means may drop empty clusters; keep the shape fixed
        centroids = np.concatenate(
            [centroids, np.full(k - centroids.size, centroids[-1], np.float32)]
        )
    return centroids, np.asarray(labels), used_rate


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
      Chosen by `method` (see the module docstring); ECSQ may leave some centroids
      unused (their clusters emptied), which the packer's codebook then omits.

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
        method: "kmeans", "hessian" or "ecsq" (module docstring).
        rate: ECSQ's lambda >= 0; None searches it to meet `target_bits`.
        target_bits: ECSQ with `rate=None`: the most index entropy per non-zero
            weight; None is `default_target_bits(bits)`.
        importance: the per-weight importance h (the kernel's shape, >= 0) for
            "hessian" (required) and "ecsq" (optional); used only in `build` and not
            part of the config: a wrapper restored from a file gets its centroids and
            indices from the file. `share_weights` fills it in.
        **kwargs: base layer arguments (`name`, `trainable`, `dtype`).
    """

    def __init__(
        self,
        layer: keras.layers.Layer,
        bits: int = DEFAULT_BITS["dense"],
        init: str = "linear",
        seed: int = 0,
        reserve_zero: bool | None = None,
        method: str = "kmeans",
        rate: float | None = None,
        target_bits: float | None = None,
        importance: np.ndarray | None = None,
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
        self.bits = check_sharing_bits(bits)
        self.init = _check_init(init)
        self.seed = _check_seed(seed)
        self.method, self.rate, self.target_bits = check_sharing_method(
            method, rate, target_bits, init
        )
        self._importance = (
            None if importance is None else np.asarray(importance, np.float64)
        )
        self._restoring = False
        # The lambda ECSQ used in `build` (the searched one when `rate` is None).
        self.used_rate: float | None = None
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
        importance = self._importance
        if importance is not None and importance.shape != values.shape:
            raise ValueError(
                f"Expected `importance` of layer {self.layer.name!r} with the kernel's "
                f"shape {values.shape}. Received: shape {importance.shape}"
            )
        if self.method == "hessian" and importance is None and not self._restoring:
            raise ValueError(
                f"method='hessian' needs the importance of layer {self.layer.name!r}'s "
                "weights: pass `importance=` (the kernel's shape), or use "
                "`tfedge.keras.share_weights(model, method='hessian', "
                "hessian_data=...)`."
            )
        target = self.target_bits
        if self.method == "ecsq" and self.rate is None and target is None:
            target = default_target_bits(self.bits)
        centroids, labels, self.used_rate = _cluster(
            values,
            self.clusters,
            self.init,
            self.seed,
            self.layer.name,
            method=self.method,
            importance=importance,
            rate=self.rate,
            target_bits=target,
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
            method=self.method,
            rate=self.rate,
            target_bits=self.target_bits,
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # keras.layers.Wrapper.from_config pops "layer" from the dict it is given.
        wrapper = super().from_config(dict(config), custom_objects=custom_objects)
        # The saved centroids and indices replace whatever `build` clusters, so a
        # "hessian" wrapper is rebuilt without its importance.
        wrapper._restoring = True
        return wrapper


BitsSpec = int | Mapping[str, int] | Callable[[keras.layers.Layer], int | None] | None


def _adam_moments(model: keras.Model, layers: list) -> dict[int, np.ndarray] | None:
    """Adam's second moments (`velocity`) of the layers' kernels, when the model's
    optimizer has one for every kernel; else None."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    by_name = {v.name: v for v in optimizer.variables}
    out = {}
    for layer in layers:
        kernel = _kernel_swap.kernel_variable(layer)
        moment = by_name.get(f"{kernel.path.replace('/', '_')}_velocity")
        if moment is None or tuple(moment.shape) != tuple(kernel.shape):
            return None
        out[id(layer)] = np.asarray(_kernel_swap.to_numpy(moment), np.float64)
    if not any(np.any(m > 0) for m in out.values()):
        return None  # built but never stepped
    return out


def _data_curvature(
    model: keras.Model, layers: list, data, loss, max_batches: int | None, seed: int
) -> dict[int, np.ndarray]:
    """Mean squared per-example gradients of the layers' kernels over `data` (the
    targets sampled from the model with `seed`, as `estimate_hessian` does)."""
    from tfedge.keras import _obd

    if loss is None:
        loss = getattr(model, "loss", None)
    loss_fn = _obd._per_example_loss(loss)
    try:
        kind, from_logits = _obd._sampling(loss)
    except ValueError:
        kind, from_logits = None, False  # a loss it cannot sample: true labels
    variables = [_kernel_swap.kernel_variable(layer) for layer in layers]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        step = _obd._tf_square_grads(model, variables, loss_fn, kind, from_logits)
    elif backend == "jax":
        step = _obd._jax_square_grads(model, variables, loss_fn, kind, from_logits)
    else:
        raise ValueError(
            "`hessian_data` needs per-example gradients, implemented for the "
            f"tensorflow and jax backends. Received backend: {backend!r}. Train the "
            "model with Adam and pass no `hessian_data` to use its second moments."
        )
    rng = np.random.default_rng(seed)
    sums = [np.zeros(v.shape, np.float64) for v in variables]
    examples = batches = 0
    for x, y in _obd._batches(data, HESSIAN_BATCH_SIZE):
        if max_batches is not None and batches >= max_batches:
            break
        n = int(np.shape(x)[0])
        if kind is None:
            noise = np.zeros((n,), np.float32)
        else:
            out_shape = ops.shape(model(x[:1], training=False))[1:]
            noise = _obd._noise(kind, (n, *out_shape), rng)
        for acc, value in zip(sums, step(x, y, noise), strict=True):
            acc += ops.convert_to_numpy(value)
        examples += n
        batches += 1
    if examples == 0:
        raise ValueError("Expected at least one example in `hessian_data`.")
    return {id(layer): acc / examples for layer, acc in zip(layers, sums, strict=True)}


def share_weights(
    model_or_layer: keras.Model | keras.layers.Layer,
    *,
    bits: BitsSpec = None,
    init: str = "linear",
    seed: int = 0,
    method: str = "kmeans",
    rate: float | None = None,
    target_bits: float | None = None,
    hessian_data=None,
    loss=None,
    hessian_batches: int | None = 16,
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
        init: "linear", "density" or "random" centroid initialisation ("hessian" and
            "ecsq": "linear", the uniform start, or "density").
        seed: seed for the "random" initialisation.
        method: "kmeans" (Deep Compression), "hessian" (Hessian-weighted k-means) or
            "ecsq" (entropy-constrained); see the module docstring.
        rate: "ecsq": lambda, the same for every layer; None searches it per layer.
        target_bits: "ecsq" with `rate=None`: the most index entropy per non-zero
            weight (every layer); None: `default_target_bits(bits)` per layer.
        hessian_data: `(x, y)` arrays or an iterable of `(x, y)` batches of training
            data; the weights' importance is their mean squared per-example gradient
            over it (targets sampled from the model for the losses
            `tfedge.keras.estimate_hessian` knows, else the true labels). Without it,
            "hessian" (and "ecsq") use the Adam second moments of a model trained with
            Adam; "hessian" raises when there are none, "ecsq" is then unweighted.
        loss: the loss for `hessian_data`; default the model's compiled loss.
        hessian_batches: the most batches of `hessian_data` read (None: all).

    Returns:
        A new model whose chosen layers are `WeightSharingWrapper`s. Train it with
        `model.fit` (only centroids and unwrapped layers learn), then
        `tfedge.keras.strip` gives plain layers with at most 2^bits distinct non-zero
        values per kernel.

    A layer with fewer distinct non-zero weights than 2^bits keeps its exact values (one
    centroid each, the rest unused); a warning says so when fewer bits would do.
    """
    init = _check_init(init)
    seed = _check_seed(seed)
    method, rate, target_bits = check_sharing_method(method, rate, target_bits, init)
    if hessian_batches is not None and (
        isinstance(hessian_batches, bool)
        or not isinstance(hessian_batches, numbers.Integral)
        or hessian_batches < 1
    ):
        raise ValueError(
            "Expected `hessian_batches` to be None or an integer >= 1. Received: "
            f"hessian_batches={hessian_batches!r}"
        )
    if hessian_data is not None and method == "kmeans":
        raise ValueError(
            "`hessian_data` weights the clustering of method='hessian' or 'ecsq'. "
            "Received: method='kmeans'"
        )
    options = dict(init=init, seed=seed, method=method, rate=rate)
    options["target_bits"] = target_bits
    if isinstance(bits, Mapping):
        bits = {
            name: check_sharing_bits(b, f"bits[{name!r}]") for name, b in bits.items()
        }
    elif bits is not None and not callable(bits):
        bits = check_sharing_bits(bits)

    if isinstance(model_or_layer, keras.layers.Layer) and not isinstance(
        model_or_layer, keras.Model
    ):
        layer = model_or_layer
        if isinstance(bits, Mapping) or callable(bits):
            raise ValueError(
                "For a single layer, `bits` must be an int or None. Received: "
                f"bits={bits!r}"
            )
        if method == "hessian" or hessian_data is not None:
            raise ValueError(
                "A single layer has no loss to take the curvature from: wrap it as "
                "`WeightSharingWrapper(layer, method=..., importance=h)` or share the "
                f"weights of the whole model. Received: method={method!r}"
            )
        b = default_bits(layer) if bits is None else bits
        return WeightSharingWrapper(layer, bits=b, **options)

    model = model_or_layer
    _kernel_swap.check_cloneable(model, "share_weights")
    _kernel_swap.check_no_other_wrappers(model, WeightSharingWrapper, "share_weights")
    candidates = [
        layer
        for layer in walk_layers(model, include_models=False)
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
                per_layer[id(layer)] = check_sharing_bits(b, f"bits({layer.name!r})")
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

    importance = None
    if method != "kmeans":
        chosen_layers = [lyr for lyr in candidates if id(lyr) in per_layer]
        if hessian_data is not None:
            importance = _data_curvature(
                model, chosen_layers, hessian_data, loss, hessian_batches, seed
            )
        else:
            importance = _adam_moments(model, chosen_layers)
        if importance is None and method == "hessian":
            raise ValueError(
                f"method='hessian' needs the curvature of model {model.name!r}'s "
                "weights: pass `hessian_data=(x, y)` (a few training batches) and "
                "`loss`, or call it on a model trained with Adam (its second "
                "moments stand in)."
            )
    if bits is None or isinstance(bits, int):
        _kernel_swap.warn_skipped(
            model,
            "share_weights",
            lambda layer: _kernel_swap.kernel_variable(layer) is not None,
            _kernel_swap.KERNEL_HINT,
        )

    def wrap(original, copy):
        if id(original) not in per_layer:
            return None
        return WeightSharingWrapper(
            copy,
            bits=per_layer[id(original)],
            importance=None if importance is None else importance[id(original)],
            **options,
        )

    return _kernel_swap.clone_wrapping(model, wrap)
