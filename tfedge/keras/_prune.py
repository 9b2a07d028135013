"""Magnitude and OBD pruning as a Keras 3 wrapper (Han et al. 2015; LeCun et al. 1989).

`prune(model_or_layer, schedule=..., criterion=...)` wraps every prunable layer in a
`PruningWrapper`. The wrapper keeps one mask per prunable weight and runs the wrapped
layer with `weight * mask`, so gradients reach only the surviving weights; it counts its
own training steps, so no callback is needed.

Which weights a layer has to prune comes from `PRUNABLE_WEIGHTS` (stock Keras layers) or
from the layer itself: a custom layer declares them with a method

    def tfedge_prunable_weights(self) -> list[keras.Variable]:
        return [self.kernel]

returning trainable variables of that layer (called once the layer is built). Biases are
never pruned by default: they are few and pruning them costs accuracy.

`block_size=(1, 4)` or `(4, 1)` prunes whole blocks instead of single weights, so that
the bundled delegate's sparse kernels (tfedge/runtime/cc/sparse_kernels.h) can use
vector loads and keep one index per block. Blocks are stated in TFLite's `[out, in]`
terms of a fully-connected (or `[out, h, w, in]` convolution) kernel: `(1, 4)` is four
consecutive inputs of one output unit, `(4, 1)` four output units of one input. In a
Keras kernel `[..., in, out]` that is 4 along axis -2, or 4 along axis -1.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType

import keras
import numpy as np
from absl import logging
from keras import ops

from tfedge._checks import BLOCK_SIZES, check_block_size
from tfedge._layers import walk_layers
from tfedge.keras._kernel_swap import holds_matrix, warn_skipped
from tfedge.keras._obd import estimate_hessian
from tfedge.keras._schedules import PruningSchedule

__all__ = [
    "BLOCK_SIZES",
    "CRITERIA",
    "PRUNABLE_WEIGHTS",
    "PruningWrapper",
    "is_prunable",
    "prunable_weights",
    "prune",
]

CRITERIA = ("magnitude", "obd")

# Stock Keras layers and the names of the weights that pruning zeroes. Read, never
# changed: custom layers use the `tfedge_prunable_weights()` protocol instead.
PRUNABLE_WEIGHTS: Mapping[type, tuple[str, ...]] = MappingProxyType(
    {
        keras.layers.Dense: ("kernel",),
        keras.layers.EinsumDense: ("kernel",),
        keras.layers.Embedding: ("embeddings",),
        keras.layers.Conv1D: ("kernel",),
        keras.layers.Conv2D: ("kernel",),
        keras.layers.Conv3D: ("kernel",),
        keras.layers.Conv1DTranspose: ("kernel",),
        keras.layers.Conv2DTranspose: ("kernel",),
        keras.layers.Conv3DTranspose: ("kernel",),
        keras.layers.DepthwiseConv1D: ("kernel",),
        keras.layers.DepthwiseConv2D: ("kernel",),
        keras.layers.SeparableConv1D: ("depthwise_kernel", "pointwise_kernel"),
        keras.layers.SeparableConv2D: ("depthwise_kernel", "pointwise_kernel"),
    }
)


def _table_entry(layer) -> tuple[str, ...] | None:
    for cls in type(layer).__mro__:
        if cls in PRUNABLE_WEIGHTS:
            return PRUNABLE_WEIGHTS[cls]
    return None


def is_prunable(layer) -> bool:
    """True if `prune` can wrap `layer` (in the table, or has the protocol)."""
    if isinstance(layer, (PruningWrapper, keras.Model)):
        return False
    return hasattr(layer, "tfedge_prunable_weights") or _table_entry(layer) is not None


def prunable_weights(layer) -> list:
    """The built `layer`'s variables that pruning masks, in a fixed order."""
    if not layer.built:
        raise ValueError(
            f"Layer {layer.name!r} is not built; call it on data or "
            "`layer.build(shape)` before asking for its prunable weights."
        )
    trainable = list(layer.trainable_weights)
    if hasattr(layer, "tfedge_prunable_weights"):
        chosen = list(layer.tfedge_prunable_weights())
        for v in chosen:
            if not any(v is t for t in trainable):
                raise ValueError(
                    f"Layer {layer.name!r}: `tfedge_prunable_weights()` returned "
                    f"{getattr(v, 'path', v)!r}, which is not one of the layer's "
                    "trainable weights. Return variables created by the layer's "
                    "`add_weight(..., trainable=True)`."
                )
        return chosen
    names = _table_entry(layer)
    if names is None:
        raise ValueError(_not_prunable_message(layer))
    chosen = [v for name in names for v in trainable if v.name == name]
    if len(chosen) != len(names):
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}) should have trainable "
            f"weights {list(names)}; found {[v.name for v in trainable]}. Is it frozen "
            "(trainable=False)? Unfreeze it or leave it out of pruning."
        )
    return chosen


def _not_prunable_message(layer) -> str:
    return (
        f"Layer {layer.name!r} ({type(layer).__name__}) cannot be pruned: tfedge knows "
        f"how to prune {sorted(c.__name__ for c in PRUNABLE_WEIGHTS)}. Leave it out "
        "(a dict or callable `schedule` picks the layers), or give its class a method "
        "`tfedge_prunable_weights(self)` returning the variables to prune."
    )


class _MaskConstraint(keras.constraints.Constraint):
    """Re-applies a mask after each optimizer step (chained after any user constraint).

    Keeps the stored weight exactly zero where pruned, even with momentum, Adam or
    weight decay. Attached to variables at build time; never serialized.
    """

    def __init__(self, mask, inner=None):
        self.mask = mask
        self.inner = inner

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        return ops.multiply(w, ops.cast(self.mask, w.dtype))


@keras.saving.register_keras_serializable(package="tfedge")
class PruningWrapper(keras.layers.Wrapper):
    """Runs `layer` with some of its weights masked to zero, updating the masks in fit.

    State (all created in `build`, all saved by checkpoints and `.keras` files):

    - `<weight>_mask`, one per prunable weight: 1.0 where the weight survives. Updated
      in `call` when `training` is true and the schedule fires at the current step: the
      `k = max(round(n * (1 - sparsity)), 1)` weights of highest saliency survive.
    - `<weight>_hessian` (criterion "obd" only): the diagonal Hessian estimate h used by
      the saliency h * w**2 / 2. Written by `tfedge.keras.estimate_hessian`.
    - `hessian_batches` (criterion "obd" only): batches behind that estimate.
    - `pruning_step`: training calls seen so far; incremented in `call` under
      `training`, after the mask update (the first training batch is step 0, as in
      tfmot).

    The forward pass always uses `weight * mask`, so pruned weights contribute exactly
    zero and get zero gradient. On backends other than JAX the stored weight is also
    re-masked after every optimizer step (a variable constraint), so it stays exactly
    zero under SGD momentum, Adam and weight decay; under JAX the optimizer runs on
    purged variables, so only the effective weight `weight * mask` (what `strip` bakes
    in) is guaranteed zero.

    A layer called several times per training step (a shared layer) counts several
    steps: give it a schedule in calls, or prune a copy per use.

    Args:
        layer: the layer to prune (`PRUNABLE_WEIGHTS` or `tfedge_prunable_weights`).
        schedule: a `PruningSchedule`.
        criterion: "magnitude" (|w|) or "obd" (h * w**2 / 2).
        block_size: `(1, 1)` (single weights), `(1, 4)` or `(4, 1)` (see the module
            doc): whole blocks are kept or pruned; a block's score is the L2 norm of
            its weights ("magnitude") or the sum of its saliencies ("obd"). Blocks at
            a ragged edge are partial.
        **kwargs: base layer arguments; `name` defaults to the wrapped layer's name.
    """

    def __init__(
        self,
        layer: keras.layers.Layer,
        schedule: PruningSchedule,
        criterion: str = "magnitude",
        block_size: tuple[int, int] = (1, 1),
        **kwargs,
    ):
        if isinstance(layer, PruningWrapper):
            raise ValueError(
                f"Layer {layer.name!r} is already a PruningWrapper. Prune the layer it "
                "wraps (`wrapper.layer`), or strip the model first with "
                "`tfedge.keras.strip`."
            )
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                f"Expected a Keras layer. Received: layer={layer!r} of type "
                f"{type(layer).__name__}"
            )
        if not is_prunable(layer):
            raise ValueError(_not_prunable_message(layer))
        if not isinstance(schedule, PruningSchedule):
            raise ValueError(
                "Expected `schedule` to be a PruningSchedule (ConstantSparsity, "
                f"PolynomialDecay, IterativePruning). Received: schedule={schedule!r} "
                f"for layer {layer.name!r}"
            )
        if criterion not in CRITERIA:
            raise ValueError(
                f"Expected `criterion` in {CRITERIA}. Received: criterion={criterion!r}"
            )
        block_size = check_block_size(block_size)
        kwargs.setdefault("name", layer.name)
        super().__init__(layer, **kwargs)
        self.schedule = schedule
        self.criterion = criterion
        self.block_size = block_size
        self._inner_takes_training = (
            "training" in inspect.signature(layer.call).parameters
        )
        self._hessian_ready = False

    # --- state -----------------------------------------------------------------------

    def build(self, input_shape=None):
        super().build(input_shape)
        self._build_input_shape = input_shape
        targets = prunable_weights(self.layer)
        if not targets:
            raise ValueError(
                f"Layer {self.layer.name!r} declared no prunable weights; nothing "
                "to prune."
            )
        if self.block_size != (1, 1):
            for v in targets:
                if len(v.shape) < 2:
                    raise ValueError(
                        f"Layer {self.layer.name!r}: weight {v.name!r} of shape "
                        f"{tuple(v.shape)} has no [in, out] axes to prune in blocks "
                        f"of {self.block_size}. Use block_size=(1, 1) for this layer "
                        "(a dict or callable `schedule` leaves it to another "
                        "`prune` call)."
                    )
        inner = list(self.layer.trainable_variables)
        self._target_index = tuple(
            next(i for i, t in enumerate(inner) if t is v) for v in targets
        )
        self.masks = []
        self.hessians = []
        for v in targets:
            mask = self.add_weight(
                name=f"{v.name}_mask",
                shape=v.shape,
                dtype=v.dtype,
                initializer="ones",
                trainable=False,
                aggregation="only_first_replica",
            )
            self.masks.append(mask)
            if self.criterion == "obd":
                self.hessians.append(
                    self.add_weight(
                        name=f"{v.name}_hessian",
                        shape=v.shape,
                        dtype=v.dtype,
                        initializer="ones",
                        trainable=False,
                        aggregation="only_first_replica",
                    )
                )
        if self.criterion == "obd":
            self.hessian_batches = self.add_weight(
                name="hessian_batches",
                shape=(),
                dtype="int32",
                initializer="zeros",
                trainable=False,
                aggregation="only_first_replica",
            )
        self.pruning_step = self.add_weight(
            name="pruning_step",
            shape=(),
            dtype="int32",
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
        )
        if keras.backend.backend() != "jax":
            for v, mask in zip(targets, self.masks, strict=True):
                v.constraint = _MaskConstraint(mask, v.constraint)
        self.built = True

    def load_own_variables(self, store):
        super().load_own_variables(store)
        if self.criterion == "obd":
            self._hessian_ready = int(ops.convert_to_numpy(self.hessian_batches)) > 0

    @property
    def pruned_variables(self) -> list:
        """The wrapped layer's variables that are masked, in mask order."""
        inner = self.layer.trainable_variables
        return [inner[i] for i in self._target_index]

    # --- forward ---------------------------------------------------------------------

    def _saliency(self, w, i):
        if self.criterion == "magnitude":
            return ops.abs(w)
        return ops.convert_to_tensor(self.hessians[i]) * ops.square(w) * 0.5

    def _new_mask(self, w, i, sparsity):
        if self.block_size != (1, 1):
            return self._new_block_mask(w, i, sparsity)
        saliency = ops.reshape(self._saliency(w, i), (-1,))
        n = int(np.prod(w.shape))
        keep = ops.maximum(ops.round(float(n) * (1.0 - sparsity)), 1.0)
        n_prune = float(n) - keep
        rank = ops.argsort(ops.argsort(saliency))
        mask = ops.cast(ops.greater_equal(ops.cast(rank, "float32"), n_prune), w.dtype)
        return ops.reshape(mask, w.shape)

    def _new_block_mask(self, w, i, sparsity):
        """Keeps the blocks of highest score: axis -2 (inputs) in runs of
        block_size[1], axis -1 (outputs) in runs of block_size[0]."""
        shape = tuple(int(d) for d in w.shape)
        rows, cols = shape[-2], shape[-1]
        bi, bo = self.block_size[1], self.block_size[0]
        nr, nc = -(-rows // bi), -(-cols // bo)
        saliency = self._saliency(w, i)
        if self.criterion == "magnitude":
            saliency = ops.square(saliency)  # block score: the L2 norm (squared)
        lead = int(np.prod(shape[:-2]))
        saliency = ops.reshape(saliency, (lead, rows, cols))
        saliency = ops.pad(saliency, ((0, 0), (0, nr * bi - rows), (0, nc * bo - cols)))
        scores = ops.sum(ops.reshape(saliency, (lead, nr, bi, nc, bo)), axis=(2, 4))
        n = lead * nr * nc
        keep = ops.maximum(ops.round(float(n) * (1.0 - sparsity)), 1.0)
        rank = ops.argsort(ops.argsort(ops.reshape(scores, (-1,))))
        kept = ops.greater_equal(ops.cast(rank, "float32"), float(n) - keep)
        kept = ops.reshape(ops.cast(kept, w.dtype), (lead, nr, nc))
        mask = ops.repeat(ops.repeat(kept, bi, axis=1), bo, axis=2)
        mask = mask[:, :rows, :cols]
        return ops.reshape(mask, shape)

    def _maybe_update_mask(self, should, sparsity, v, mask, i):
        """Recompute `mask` when `should` is true; the ranking work stays in the branch.

        The assignment itself stays outside the branch: JAX branches must be pure, and
        under tf.distribute an assignment inside a branch would need a merge_call.
        """

        def compute():
            w = ops.multiply(ops.convert_to_tensor(v), ops.convert_to_tensor(mask))
            return self._new_mask(w, i, sparsity)

        mask.assign(ops.cond(should, compute, lambda: ops.convert_to_tensor(mask)))

    def call(self, inputs, training=None, **kwargs):
        targets = self.pruned_variables
        if training:
            if self.criterion == "obd" and not self._hessian_ready:
                raise ValueError(
                    f"Layer {self.name!r} prunes with criterion='obd' but has no "
                    "Hessian estimate. Call `tfedge.keras.estimate_hessian(model, "
                    "data, loss=...)` before training (or pass `hessian_data` and "
                    "`loss` to `tfedge.keras.prune`)."
                )
            step = ops.convert_to_tensor(self.pruning_step)
            should, sparsity = self.schedule(step)
            for i, (v, mask) in enumerate(zip(targets, self.masks, strict=True)):
                self._maybe_update_mask(should, sparsity, v, mask, i)
            self.pruning_step.assign(step + 1)
        masked = dict(zip(self._target_index, self.masks, strict=True))
        trainable = [
            ops.multiply(v, ops.convert_to_tensor(masked[i]))
            if i in masked
            else v.value
            for i, v in enumerate(self.layer.trainable_variables)
        ]
        non_trainable = [v.value for v in self.layer.non_trainable_variables]
        if self._inner_takes_training:
            kwargs["training"] = training
        outputs, updated = self.layer.stateless_call(
            trainable, non_trainable, inputs, **kwargs
        )
        for v, value in zip(self.layer.non_trainable_variables, updated, strict=True):
            v.assign(value)
        return outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    # --- inspection and export -------------------------------------------------------

    def effective_weights(self) -> list[np.ndarray]:
        """The wrapped layer's weights as `strip` bakes them (masks applied), numpy."""
        masks = {
            id(v): m for v, m in zip(self.pruned_variables, self.masks, strict=True)
        }
        out = []
        for v in self.layer.weights:
            value = ops.convert_to_numpy(v)
            if id(v) in masks:
                # np.where, not a product: a pruned negative weight times 0 is -0.0, and
                # two kinds of zero would cost a lossless packer a stored value each.
                keep = ops.convert_to_numpy(masks[id(v)]) != 0
                value = np.where(keep, value, np.zeros((), value.dtype))
            out.append(value)
        return out

    def prune_now(self, sparsity: float) -> None:
        """Recompute the masks at once to `sparsity` (one-shot; 0.0 restores all).

        Ranks the current effective weights by the wrapper's criterion. Used by
        `sensitivity` and for one-shot pruning outside `fit`; does not move the step.
        """
        if isinstance(sparsity, bool) or not 0.0 <= float(sparsity) < 1.0:
            raise ValueError(
                f"Expected `sparsity` in [0, 1). Received: sparsity={sparsity!r}"
            )
        if not self.built:
            raise ValueError(
                f"Layer {self.name!r} is not built; call it on data first."
            )
        if self.criterion == "obd" and not self._hessian_ready and sparsity > 0:
            raise ValueError(
                f"Layer {self.name!r} prunes with criterion='obd' but has no Hessian "
                "estimate; call `tfedge.keras.estimate_hessian(model, data, loss=...)`."
            )
        if sparsity == 0.0:
            for mask in self.masks:
                mask.assign(ops.ones(mask.shape, dtype=mask.dtype))
            return
        value = ops.convert_to_tensor(float(sparsity), dtype="float32")
        for i, (v, mask) in enumerate(
            zip(self.pruned_variables, self.masks, strict=True)
        ):
            effective = ops.multiply(
                ops.convert_to_tensor(v), ops.convert_to_tensor(mask)
            )
            mask.assign(self._new_mask(effective, i, value))

    def sparsity(self) -> float:
        """Fraction of zeros in the masks of this layer (all prunable weights)."""
        zeros = sum(float(np.sum(ops.convert_to_numpy(m) == 0)) for m in self.masks)
        total = sum(int(np.prod(m.shape)) for m in self.masks)
        return zeros / total

    def tfedge_strip(self) -> keras.layers.Layer:
        """A plain, built copy of the wrapped layer with the masks baked in."""
        plain = type(self.layer).from_config(self.layer.get_config())
        plain.name = self.name
        plain.build(self._build_input_shape)
        plain.set_weights(self.effective_weights())
        return plain

    # --- config ----------------------------------------------------------------------

    def get_config(self) -> dict:
        config = super().get_config()
        config["schedule"] = keras.saving.serialize_keras_object(self.schedule)
        config["criterion"] = self.criterion
        config["block_size"] = list(self.block_size)
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        config = dict(config)
        layer = keras.saving.deserialize_keras_object(
            config.pop("layer"), custom_objects=custom_objects
        )
        schedule = keras.saving.deserialize_keras_object(
            config.pop("schedule"), custom_objects=custom_objects
        )
        if "block_size" in config:
            config["block_size"] = tuple(config["block_size"])
        return cls(layer, schedule=schedule, **config)


# --- prune ----------------------------------------------------------------------------

ScheduleSpec = (
    PruningSchedule
    | Mapping[str, PruningSchedule]
    | Callable[[keras.layers.Layer], PruningSchedule | None]
)


def _is_graph_model(model) -> bool:
    if isinstance(model, keras.Sequential):
        return True
    # Functional models are instances of Keras's (non-exported) Functional class.
    return any(c.__name__ == "Functional" for c in type(model).__mro__)


def _copy_layer(layer):
    return type(layer).from_config(layer.get_config())


def _resolver(schedule: ScheduleSpec, model) -> Callable:
    if isinstance(schedule, PruningSchedule):

        def pick(layer):
            return schedule if is_prunable(layer) else None

        return pick
    if isinstance(schedule, Mapping):
        names = {layer.name: layer for layer in walk_layers(model)}
        for name, value in schedule.items():
            if name not in names:
                raise ValueError(
                    f"`schedule` names layer {name!r}, which is not in model "
                    f"{model.name!r}. Layers: {sorted(names)}"
                )
            if not isinstance(value, PruningSchedule):
                raise ValueError(
                    f"Expected a PruningSchedule for layer {name!r}. "
                    f"Received: {value!r}"
                )
            if not is_prunable(names[name]):
                raise ValueError(_not_prunable_message(names[name]))

        def pick(layer):
            return schedule.get(layer.name)

        return pick
    if callable(schedule):

        def pick(layer):
            if isinstance(layer, keras.Model):
                return None
            value = schedule(layer)
            if value is None:
                return None
            if not isinstance(value, PruningSchedule):
                raise ValueError(
                    f"`schedule({layer.name!r})` must return a PruningSchedule or "
                    f"None. Received: {value!r}"
                )
            if not is_prunable(layer):
                raise ValueError(_not_prunable_message(layer))
            return value

        return pick
    raise ValueError(
        "Expected `schedule` to be a PruningSchedule, a dict {layer name: schedule} "
        f"or a callable layer -> schedule | None. Received: schedule={schedule!r}"
    )


def prune(
    model_or_layer,
    *,
    schedule: ScheduleSpec,
    criterion: str = "magnitude",
    hessian_data=None,
    loss=None,
    hessian_method: str = "gauss_newton",
    block_size: tuple[int, int] = (1, 1),
):
    """Wrap the prunable layers of a model (or one layer) in `PruningWrapper`s.

    For a Sequential or functional model (nested models included) this returns a new
    model with copied weights; the input model is left untouched. Layers that cannot
    be pruned (no weights, normalization, recurrent ...) are copied unwrapped when
    `schedule` is a single schedule; naming one in a dict, or returning a schedule for
    one from a callable, is an error.

    For a subclassed model, wrap layers where they are created instead:
    `self.fc = tfedge.keras.prune(keras.layers.Dense(10), schedule=...)` (this wraps the
    given layer object itself). The model's `call` must accept a `training` argument
    and pass it to the wrappers (`self.fc(x, training=training)`): Keras passes
    `training=True` in `fit` only to models whose `call` takes it, and the JAX trainer
    calls `call` directly, without the call context that would forward it.

    Args:
        model_or_layer: a Sequential or functional `keras.Model`, or a single layer.
        schedule: one `PruningSchedule` for every prunable layer; a dict
            `{layer name: schedule}` (other layers stay dense); or a callable
            `layer -> schedule | None`.
        criterion: "magnitude" (Han et al.) or "obd" (LeCun et al.: h * w**2 / 2 with a
            diagonal Hessian estimate).
        hessian_data: for "obd" on a model: `(x, y)` arrays or a dataset of batches
            from which `estimate_hessian` computes h right away.
        loss: for "obd": the training loss (a name, `keras.losses.Loss` or callable).
        hessian_method: for "obd": how `estimate_hessian` estimates h,
            "gauss_newton" or "empirical_fisher".
        block_size: `(1, 1)` prunes single weights; `(1, 4)` or `(4, 1)` prunes
            blocks (four consecutive inputs of one output unit, or four outputs of
            one input, in TFLite's `[out, in]` kernel terms), scored by their L2
            norm ("magnitude") or summed saliency ("obd"), so the bundled delegate's
            sparse kernels run them with vector loads (see `tfedge.Interpreter`).

    Returns:
        The pruned model, or the `PruningWrapper` around the given layer.
    """
    if criterion not in CRITERIA:
        raise ValueError(
            f"Expected `criterion` in {CRITERIA}. Received: criterion={criterion!r}"
        )
    block_size = check_block_size(block_size)
    if not isinstance(model_or_layer, keras.Model):
        if not isinstance(model_or_layer, keras.layers.Layer):
            raise ValueError(
                "Expected a Keras model or layer. Received: "
                f"model_or_layer={model_or_layer!r}"
            )
        if hessian_data is not None:
            raise ValueError(
                "`hessian_data` needs a model: build the model around the pruned "
                "layer, then call "
                "`tfedge.keras.estimate_hessian(model, data, loss=...)`."
            )
        layer = model_or_layer
        picked = _resolver(schedule, keras.Sequential([layer]))(layer)
        if picked is None:
            raise ValueError(_not_prunable_message(layer))
        return PruningWrapper(
            layer, schedule=picked, criterion=criterion, block_size=block_size
        )

    model = model_or_layer
    if not _is_graph_model(model):
        raise ValueError(
            f"prune() rebuilds Sequential and functional models; {model.name!r} is a "
            f"subclassed model ({type(model).__name__}). Wrap its layers where they "
            "are created instead: `self.fc = tfedge.keras.prune("
            "keras.layers.Dense(10), schedule=...)`."
        )
    for layer in walk_layers(model):
        if isinstance(layer, PruningWrapper):
            raise ValueError(
                f"Model {model.name!r} is already pruned: layer {layer.name!r} is a "
                "PruningWrapper. Continue training it as is, or call "
                "`tfedge.keras.strip(model)` first and prune the result."
            )
    if criterion == "obd" and (hessian_data is None or loss is None):
        raise ValueError(
            "criterion='obd' ranks weights by h * w**2 / 2 and needs a Hessian "
            "estimate: pass `hessian_data=(x, y)` (a few training batches) and `loss`, "
            "or use criterion='magnitude'."
        )
    pick = _resolver(schedule, model)
    copies: list[tuple] = []
    skipped: list[str] = []

    def clone(layer):
        chosen = pick(layer)
        new = _copy_layer(layer)
        copies.append((layer, new))
        if chosen is None:
            # Normalization scales and biases are vectors: nothing to prune there.
            if holds_matrix(layer) and not isinstance(layer, keras.Model):
                skipped.append(layer.name)
            return new
        return PruningWrapper(
            new, schedule=chosen, criterion=criterion, block_size=block_size
        )

    if isinstance(schedule, PruningSchedule):
        warn_skipped(
            model,
            "prune",
            lambda layer: is_prunable(layer) or isinstance(layer, PruningWrapper),
            "tfedge prunes "
            f"{', '.join(sorted(c.__name__ for c in PRUNABLE_WEIGHTS))}; give a "
            "custom layer's class a `tfedge_prunable_weights()` method returning the "
            "variables to prune.",
        )
    pruned = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for original, new in copies:
        new.set_weights(original.get_weights())
    if skipped:
        logging.info("tfedge.keras.prune: left dense (not pruned): %s", skipped)
    if not any(isinstance(x, PruningWrapper) for x in walk_layers(pruned)):
        raise ValueError(
            f"Model {model.name!r} has no layer to prune (the schedule picked none). "
            f"Prunable layer types: {sorted(c.__name__ for c in PRUNABLE_WEIGHTS)}, "
            "or any layer with a `tfedge_prunable_weights()` method."
        )
    if criterion == "obd":
        estimate_hessian(pruned, hessian_data, loss=loss, method=hessian_method)
    return pruned
