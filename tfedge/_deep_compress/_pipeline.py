"""`deep_compress`: the pipeline, its stages in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tfedge._deep_compress._options import OptimizerSpec, SparsitySpec, check_options
from tfedge._deep_compress._pack import pack
from tfedge._deep_compress._prune import (
    DEFAULT_MAX_LOSS,
    SENSITIVITY_SPARSITIES,
    choose_sparsities,
    fold,
    prune,
)
from tfedge._deep_compress._report import layer_rows, stage_rows, weight_bytes
from tfedge._deep_compress._result import DeepCompressed
from tfedge._deep_compress._share import share
from tfedge._deep_compress._training import Training

__all__ = ["deep_compress"]


def deep_compress(
    model,
    train_data,
    val_data,
    *,
    sparsity: SparsitySpec = None,
    max_loss: float = DEFAULT_MAX_LOSS,
    sensitivity_sparsities: Sequence[float] = SENSITIVITY_SPARSITIES,
    block_size: tuple[int, int] = (1, 1),
    prune_rounds: int = 3,
    prune_epochs: int = 3,
    bits=None,
    init: str = "linear",
    method: str = "kmeans",
    rate: float | None = None,
    target_bits: float | None = None,
    share_epochs: int = 2,
    loss=None,
    optimizer: OptimizerSpec = None,
    prune_learning_rate: float = 5e-4,
    share_learning_rate: float = 1e-4,
    metrics: Sequence | None = None,
    metric: str | Callable = "accuracy",
    batch_size: int = 128,
    steps_per_epoch: int | None = None,
    seed: int = 0,
    verbose: int | str = "auto",
) -> DeepCompressed:
    """Prunes, trains shared weights and packs a trained model (Deep Compression).

    A model with batch normalisation is pruned and retrained with it, then each
    batch normalisation after a convolution or dense layer is folded into that layer
    (`tfedge.keras.fold_batch_norm`) before weight sharing: the shared values are then
    the converted kernel's, one codebook per tensor. The "pruned", "shared" and final
    models have no such batch normalisation; the ratios against float32 weights count
    the folded float model's.

    Args:
        model: a trained Sequential or functional Keras 3 model (not changed).
        train_data: `(x, y)` arrays or a tf.data dataset of `(x, y)` batches, for the
            retraining after pruning and the centroid fine-tuning.
        val_data: the same kinds, held out: the sensitivity analysis and every stage's
            accuracy are measured on it (a dataset is read into memory once).
        sparsity: per-layer sparsity: None chooses it by sensitivity analysis; a float
            in [0, 1) for every prunable layer; a dict `{layer name: sparsity}` prunes
            only those layers.
        max_loss: for the sensitivity choice: the one-shot metric drop allowed per
            layer (absolute, 0.02 = two points of accuracy).
        sensitivity_sparsities: the sparsities the analysis tries, increasing.
        block_size: the pruning granularity, as in `tfedge.keras.prune`: (1, 1) single
            weights; (1, 4) blocks of four consecutive inputs of one output unit
            (four neighbours in the packed tensor's order, so the relative index
            holds one long gap and three zeros per block, which the entropy coder
            makes cheap: fewer index bits per kept weight, and the sparse kernels'
            vector loads); (4, 1) four outputs of one input.
        prune_rounds: iterative pruning rounds. Each round removes the same fraction
            of the weights still left (kept fraction (1 - s) ** (i / rounds) after
            round i), then retrains; the last round, at the target, retrains twice as
            long as the others.
        prune_epochs: epochs of pruning and retraining in all (>= 1).
        bits: weight-sharing bits as in `tfedge.keras.share_weights`: None for the
            paper's 8 for convolutions and 5 for the rest, except 7 for a pruned
            convolution (8-bit, Huffman-coded indices address at most 256 values,
            and a pruned layer's codebook holds its zero too), and fewer for a layer
            with fewer distinct non-zero weights; an int; a dict; a callable.
        init: centroid initialisation, "linear" (the paper's), "density" or "random"
            (not for "hessian" and "ecsq").
        method: how the shared values are chosen before fine-tuning, as in
            `tfedge.keras.share_weights`: "kmeans" (the paper's), "hessian"
            (Hessian-weighted k-means) or "ecsq" (entropy-constrained scalar
            quantization); the curvature is the mean squared per-example gradient
            over the first `HESSIAN_BATCHES` batches of 32 training examples.
        rate: "ecsq": lambda for every layer; None searches it per layer to meet
            `target_bits`.
        target_bits: "ecsq" with `rate=None`: index entropy per non-zero weight;
            None: `bits - 2` per layer.
        share_epochs: epochs of centroid fine-tuning (0 keeps the k-means centroids).
        loss: training loss; default the model's compiled loss, else sparse (or, for
            one-hot labels, plain) categorical cross-entropy, from logits unless the
            last layer is a softmax.
        optimizer: None (Adam), a Keras optimizer name, or a callable
            `(stage, learning_rate) -> optimizer` with stage "prune" or "share"; a new
            optimizer is made for each stage.
        prune_learning_rate, share_learning_rate: learning rates of the two stages.
        metrics: metrics for `compile` (shown by `model.fit` when verbose).
        metric: the reported metric: "accuracy" (argmax against integer or one-hot
            labels) or `fn(y_true, y_pred) -> float`, higher is better.
        batch_size: batch size for array data.
        steps_per_epoch: steps per epoch (needed for infinite datasets).
        seed: seed of the Keras random state, k-means and shuffling.
        verbose: as in Keras: 0 silent; 1 `model.fit`'s progress bars and tfedge's
            (the sensitivity analysis, packing), or one line per stage when stderr is
            not a terminal; 2 one line per epoch and per stage; "auto" is 1.

    Returns:
        A `DeepCompressed`: `bytes(result)` is the packed .tflite.

    Raises:
        ValueError: bad arguments or data; a model with no prunable or shareable layer.
    """
    import keras

    options = check_options(
        model,
        sparsity=sparsity,
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
        metric=metric,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        seed=seed,
        verbose=verbose,
    )
    training = Training(model, train_data, val_data, options)
    keras.utils.set_random_seed(options.seed)
    start = training.measure("float", model)

    # 1. Pruning: per-layer sparsities, then iterative pruning with retraining (batch
    # normalisations kept: they train with the pruned layers), then folded.
    targets, sensitivity = choose_sparsities(model, options, training)
    pruned = training.measure("pruned", fold(prune(model, targets, options, training)))

    # 2. Trained quantization: shared weights, their centroids fine-tuned.
    shared_model, shared_bits = share(pruned.model, targets, options, training)
    shared = training.measure("shared", shared_model)

    # 3. Huffman coding: the exact codebooks and the sparse index, packed losslessly.
    packed, packed_accuracy = pack(shared.tflite, options, training)

    snapshots = {"float": start, "pruned": pruned, "shared": shared}
    # The float32 weights as the converter stores them: batch normalisations folded.
    float_weight_bytes = weight_bytes(fold(model))
    return DeepCompressed(
        packed=packed,
        model=shared.model,
        tflite=shared.tflite,
        stages=stage_rows(snapshots, packed, packed_accuracy, float_weight_bytes),
        layers=layer_rows(packed, shared.model, shared_bits),
        sparsity={name: float(targets.get(name, 0.0)) for name in options.prunable},
        bits=shared_bits,
        sensitivity=sensitivity,
        float_weight_bytes=float_weight_bytes,
        stage_models={name: s.model for name, s in snapshots.items()},
    )
