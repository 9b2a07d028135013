"""The arguments of `deep_compress`, all checked before any training."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping, Sequence

from tfedge._checks import (
    check_block_size,
    check_int,
    check_sharing_bits,
    top1_accuracy,
)
from tfedge._deep_compress._training import prunable_layers, sublayers
from tfedge._progress import resolve_verbose

__all__ = ["OptimizerSpec", "Options", "SparsitySpec", "check_options"]

SparsitySpec = float | Mapping[str, float] | None
OptimizerSpec = str | Callable[[str, float], object] | None


@dataclasses.dataclass(frozen=True)
class Options:
    """`deep_compress`'s arguments, checked (see its docstring), with:

    Attributes:
        sparsity: the given per-layer sparsities of every named layer, or None to
            choose them by sensitivity analysis.
        prunable: the names of the model's prunable layers.
        metric: the metric as a function `(y_true, y_pred) -> float`.
    """

    sparsity: dict[str, float] | None
    prunable: list[str]
    max_loss: float
    sensitivity_sparsities: Sequence[float]
    block_size: tuple[int, int]
    prune_rounds: int
    prune_epochs: int
    bits: object
    init: str
    method: str
    rate: float | None
    target_bits: float | None
    share_epochs: int
    loss: object
    optimizer: OptimizerSpec
    prune_learning_rate: float
    share_learning_rate: float
    metrics: Sequence | None
    metric: Callable
    batch_size: int
    steps_per_epoch: int | None
    seed: int
    verbose: int | str


def check_options(
    model,
    *,
    sparsity,
    max_loss,
    sensitivity_sparsities,
    block_size,
    prune_rounds,
    prune_epochs,
    bits,
    init,
    method,
    rate,
    target_bits,
    share_epochs,
    loss,
    optimizer,
    prune_learning_rate,
    share_learning_rate,
    metrics,
    metric,
    batch_size,
    steps_per_epoch,
    seed,
    verbose,
) -> Options:
    """`deep_compress`'s arguments as `Options`, or a ValueError naming the first bad
    one."""
    import keras

    if not isinstance(model, keras.Model):
        raise ValueError(
            "Expected `model` to be a trained Keras 3 model. Received: "
            f"{type(model).__name__}"
        )
    if not model.built or not model.weights:
        raise ValueError(
            f"Model {model.name!r} is not built or has no weights: train it first."
        )
    block_size = check_block_size(block_size)
    prune_rounds = check_int(prune_rounds, "prune_rounds", 1)
    prune_epochs = check_int(prune_epochs, "prune_epochs", 1)
    share_epochs = check_int(share_epochs, "share_epochs", 0)
    batch_size = check_int(batch_size, "batch_size", 1)
    seed = check_int(seed, "seed", 0)
    resolve_verbose(verbose)
    if steps_per_epoch is not None:
        steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch", 1)
    if (
        isinstance(max_loss, bool)
        or not isinstance(max_loss, numbers.Real)
        or max_loss < 0
    ):
        raise ValueError(f"Expected `max_loss` >= 0. Received: max_loss={max_loss!r}")
    prune_learning_rate = _check_float(prune_learning_rate, "prune_learning_rate", 0, 1)
    share_learning_rate = _check_float(share_learning_rate, "share_learning_rate", 0, 1)
    if init not in ("linear", "density", "random"):
        raise ValueError(
            "Expected `init` in ['linear', 'density', 'random']. "
            f"Received: init={init!r}"
        )
    from tfedge.keras import check_sharing_method

    check_sharing_method(method, rate, target_bits, init)
    if metric == "accuracy":
        metric_fn = top1_accuracy
    elif callable(metric):
        metric_fn = metric
    else:
        raise ValueError(
            f"Expected `metric` 'accuracy' or a callable. Received: metric={metric!r}"
        )
    if not (optimizer is None or isinstance(optimizer, str) or callable(optimizer)):
        raise ValueError(
            "Expected `optimizer` None, a Keras optimizer name or a callable "
            f"(stage, learning_rate) -> optimizer. Received: optimizer={optimizer!r}"
        )

    prunable = [lyr.name for lyr in prunable_layers(model)]
    if not prunable:
        raise ValueError(
            f"Model {model.name!r} has no prunable layer (Dense, Conv, ...): Deep "
            "Compression has nothing to compress."
        )
    targets = _check_sparsity(sparsity, prunable)
    if targets is not None and not any(s > 0 for s in targets.values()):
        raise ValueError(
            f"`sparsity` prunes no layer (Received: sparsity={sparsity!r}). Give at "
            "least one layer a sparsity in (0, 1), or None to choose by sensitivity."
        )
    _check_bits(bits, [lyr.name for lyr in sublayers(model)])
    return Options(
        sparsity=targets,
        prunable=prunable,
        max_loss=max_loss,
        sensitivity_sparsities=sensitivity_sparsities,
        block_size=block_size,
        prune_rounds=prune_rounds,
        prune_epochs=prune_epochs,
        bits=bits,
        init=init,
        method=method,
        rate=rate,
        target_bits=target_bits,
        share_epochs=share_epochs,
        loss=loss,
        optimizer=optimizer,
        prune_learning_rate=prune_learning_rate,
        share_learning_rate=share_learning_rate,
        metrics=metrics,
        metric=metric_fn,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        seed=seed,
        verbose=verbose,
    )


def _check_float(value, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"Expected `{name}` to be a number. Received: {name}={value!r}"
        )
    if not low < float(value) < high:
        raise ValueError(
            f"Expected `{name}` in ({low:g}, {high:g}). Received: {name}={value!r}"
        )
    return float(value)


def _check_sparsity(sparsity: SparsitySpec, prunable: list[str]) -> dict | None:
    if sparsity is None:
        return None
    if isinstance(sparsity, Mapping):
        out = {}
        for name, s in sparsity.items():
            if name not in prunable:
                raise ValueError(
                    f"`sparsity` names layer {name!r}, which is not a prunable layer "
                    f"of the model. Prunable layers: {prunable}"
                )
            out[name] = _check_float_closed(s, f"sparsity[{name!r}]")
        return out
    value = _check_float_closed(sparsity, "sparsity")
    return {name: value for name in prunable}


def _check_bits(bits, names: list[str]) -> None:
    """Validates an int or dict `bits` before any training (`share_weights` does it
    again, after pruning)."""
    if bits is None or callable(bits):
        return
    if isinstance(bits, Mapping):
        for name, b in bits.items():
            if name not in names:
                raise ValueError(
                    f"`bits` names layer {name!r}, which is not in the model. Layers: "
                    f"{names}"
                )
            check_sharing_bits(b, f"bits[{name!r}]")
        return
    check_sharing_bits(bits)


def _check_float_closed(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"Expected `{name}` to be a float. Received: {name}={value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(
            f"Expected `{name}` in [0, 1). Received: {name}={value!r}. A sparsity is "
            "the fraction of weights set to zero."
        )
    return float(value)
