"""Stage 2, trained quantization by weight sharing.

`tfedge.keras.share_weights` (8 bits for convolutions, 5 for fully-connected layers by
default) clusters each kernel's surviving weights by k-means with linear
initialisation; the centroids are fine-tuned with `model.fit` while pruned weights stay
exactly zero; stripped again, every kernel holds at most 2^bits distinct non-zero
values. `method="hessian"` or `"ecsq"` replaces the k-means by Hessian-weighted k-means
or entropy-constrained scalar quantization (Choi, El-Khamy and Lee 2017; curvature from
squared per-example gradients over a few training batches), fine-tuned the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tfedge._deep_compress._prune import pruned_layers
from tfedge._deep_compress._training import sublayers
from tfedge.codecs import MAX_CODEBOOK

__all__ = ["HESSIAN_BATCHES", "share"]

# `method="hessian"`/"ecsq": batches (of 32 training examples) behind the curvature
# estimate; 512 examples measure the squared gradients of LeNet-sized layers to a few
# percent, and the clustering only needs their relative sizes.
HESSIAN_BATCHES = 16


def share(pruned, targets: dict[str, float], options, training):
    """The `pruned` model with shared weights, fine-tuned for `share_epochs` and
    stripped to a plain model, and the bits of each shared layer (name: bits).

    `targets` are the pruning stage's sparsities: the default bits leave room in the
    codebook for a pruned layer's zero.
    """
    import tfedge.keras as tk

    curvature = {}
    curvature_examples = HESSIAN_BATCHES * tk.HESSIAN_BATCH_SIZE
    train = training.train
    if options.method != "kmeans":
        curvature = dict(
            hessian_data=train.dataset
            if train.dataset is not None
            else (train.x[:curvature_examples], train.y[:curvature_examples]),
            hessian_batches=HESSIAN_BATCHES,
            loss=training.loss,
        )
    bits = options.bits
    sharing = tk.share_weights(
        pruned,
        bits=_default_bits(set(pruned_layers(targets))) if bits is None else bits,
        init=options.init,
        seed=options.seed,
        method=options.method,
        rate=options.rate,
        target_bits=options.target_bits,
        **curvature,
    )
    chosen_bits = {
        w.name: w.bits
        for w in sublayers(sharing)
        if isinstance(w, tk.WeightSharingWrapper)
    }
    if options.share_epochs:
        training.fit(
            sharing,
            "share",
            "weight sharing",
            options.share_learning_rate,
            options.share_epochs,
        )
    return tk.strip(sharing), chosen_bits


def _default_bits(pruned: set[str]) -> Callable:
    """`bits` for `share_weights` given the `pruned` layers' names: the paper's bits
    (8 conv, 5 fc), 7 for a pruned layer whose 2^8 values + 0 would not fit a codebook
    of 8-bit indices, and fewer for a layer with fewer distinct non-zero weights than
    that: just enough bits to hold each of them (so that no centroid is wasted, and
    share_weights has nothing to warn about).

    A pruned layer's codebook also holds its zero. Past `codecs.MAX_CODEBOOK` (256)
    entries the indices take 9 bits or more, which only rANS codes (format version
    3): no Huffman coding, the paper's third stage, for that layer.
    """
    from tfedge.keras import default_bits, kernel_variable, to_numpy

    def pick(layer) -> int:
        b = default_bits(layer)
        if layer.name in pruned and 2**b + 1 > MAX_CODEBOOK:
            b -= 1
        kernel = kernel_variable(layer)
        if kernel is not None:
            values = to_numpy(kernel)
            distinct = np.unique(values[values != 0]).size
            if 0 < distinct <= 2**b:
                b = max(1, math.ceil(math.log2(distinct)))
        return b

    return pick
