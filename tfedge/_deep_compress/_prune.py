"""Stage 1, pruning (Han et al. 2015).

Per-layer sparsities come from a sensitivity analysis (`tfedge.keras.sensitivity` +
`choose_sparsity`: each layer pruned alone, one-shot, on the validation data) or are
given. The layers are then pruned iteratively inside `model.fit`
(`tfedge.keras.IterativePruning`: prune part of the way to the target, retrain, prune
harder, ...) and stripped back to plain layers.
"""

from __future__ import annotations

import numpy as np
from absl import logging

__all__ = [
    "DEFAULT_MAX_LOSS",
    "SENSITIVITY_SPARSITIES",
    "choose_sparsities",
    "fold",
    "prune",
    "pruned_layers",
]

# The sparsities the sensitivity analysis tries. Denser near the top than the keras
# default: LeNet-like fully-connected layers tolerate 90-97%, and the choice between
# those decides most of the final size.
SENSITIVITY_SPARSITIES = (0.5, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97)
# Allowed one-shot (no retraining) accuracy drop per layer when choosing sparsities.
# Retraining recovers most of it (Han et al. 2015, fig. 5): one-shot losses of a few
# points typically end below half a point after iterative retraining.
DEFAULT_MAX_LOSS = 0.02


def choose_sparsities(model, options, training) -> tuple[dict[str, float], object]:
    """The per-layer target sparsities and the sensitivity table: the given
    sparsities (table None), or those the sensitivity analysis allows within
    `max_loss`."""
    import tfedge.keras as tk

    targets, table = options.sparsity, None
    if targets is None:
        table = tk.sensitivity(
            model,
            (training.x_val, training.y_val),
            sparsities=options.sensitivity_sparsities,
            metric=options.metric,
            verbose=options.verbose,
        )
        targets = tk.choose_sparsity(table, max_loss=float(options.max_loss))
        logging.info("deep_compress: sensitivity chose %s", targets)
    if not pruned_layers(targets):
        raise ValueError(
            "No layer can be pruned within `max_loss`="
            f"{options.max_loss} (sensitivity chose {targets}). Raise `max_loss` or "
            "pass `sparsity`."
        )
    return targets, table


def pruned_layers(targets: dict[str, float]) -> dict[str, float]:
    """The layers that `targets` prunes, with their sparsities."""
    return {name: s for name, s in targets.items() if s > 0}


def prune(model, targets: dict[str, float], options, training):
    """`model` pruned to `targets` in `prune_rounds` rounds over `prune_epochs` of
    retraining, stripped to a plain model whose pruned weights are +0.0."""
    import tfedge.keras as tk

    total_steps = options.prune_epochs * training.train.steps
    round_steps = max(1, total_steps // (options.prune_rounds + 1))
    schedules = {
        name: tk.IterativePruning(
            _round_sparsities(s, options.prune_rounds), round_steps
        )
        for name, s in pruned_layers(targets).items()
    }
    pruning = tk.prune(model, schedule=schedules, block_size=options.block_size)
    training.fit(
        pruning,
        "prune",
        "pruning",
        options.prune_learning_rate,
        options.prune_epochs,
    )
    return _positive_zeros(tk.strip(pruning))


def fold(model):
    """`model` with its batch normalisations folded into the convolutions and dense
    layers before them (`tfedge.keras.fold_batch_norm`), or `model` itself when it has
    none to fold.

    Pruning retrains with the batch normalisations (a residual net retrained without
    them loses its accuracy); weight sharing then works on the folded kernels, the
    values the .tflite holds (the converter would fold them anyway, scaling each
    output channel's shared values apart). Folding keeps every pruned zero.
    """
    import tfedge.keras as tk

    folds = tk.foldable_batch_norms(model)
    if not folds:
        return model
    logging.info("deep_compress: folding batch normalisations %s", folds)
    return tk.fold_batch_norm(model)


def _round_sparsities(target: float, rounds: int) -> list[float]:
    """Sparsity after each round: each keeps the same fraction of what is left."""
    values = [1.0 - (1.0 - target) ** ((i + 1) / rounds) for i in range(rounds)]
    values[-1] = target
    # Strictly increasing for IterativePruning (equal only if target is tiny).
    return sorted(set(values))


def _positive_zeros(model):
    """`model` with every -0.0 weight set to +0.0 (in place; returns it).

    Masking by multiplication leaves -0.0 where a negative weight was pruned; a
    lossless coder sees two different zeros and stores half the pruned weights.
    """
    model.set_weights(
        [np.where(w == 0, np.zeros_like(w), w) for w in model.get_weights()]
    )
    return model
