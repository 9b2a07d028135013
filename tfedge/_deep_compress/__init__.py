"""`deep_compress`: Deep Compression (Han, Mao and Dally 2016) in one call.

The three stages of the paper, each a `model.fit` away from the previous one:

1. **Pruning** (Han et al. 2015). Per-layer sparsities come from a sensitivity analysis
   (`tfedge.keras.sensitivity` + `choose_sparsity`: each layer pruned alone,
   one-shot, on the validation data) or are given. The layers are then pruned
   iteratively inside `model.fit` (`tfedge.keras.IterativePruning`: prune part of the
   way to the target, retrain, prune harder, ...) and stripped back to plain layers.
   Batch normalisations train along (a residual net retrained without them loses its
   accuracy), then fold into the convolutions and dense layers before them
   (`tfedge.keras.fold_batch_norm`; the pruned zeros stay zero), so that the next
   stage shares the values the .tflite holds: the converter would fold them anyway,
   scaling each output channel's shared values apart.
2. **Trained quantization by weight sharing**: `tfedge.keras.share_weights` (8 bits for
   convolutions, 5 for fully-connected layers by default) clusters each kernel's
   surviving weights by k-means with linear initialisation; the centroids are fine-tuned
   with `model.fit` while pruned weights stay exactly zero; stripped again, every kernel
   holds at most 2^bits distinct non-zero values. `method="hessian"` or `"ecsq"`
   replaces the k-means by Hessian-weighted k-means or entropy-constrained scalar
   quantization (Choi, El-Khamy and Lee 2017; curvature from squared per-example
   gradients over a few training batches), fine-tuned the same way.
3. **Huffman coding**: the stripped model is converted to .tflite and packed by
   `tfedge.compress(..., lossless=True)`: the exact codebooks of stage 2, the sparse
   relative index of stage 1, both Huffman coded. Nothing is lost at this stage: the
   packed file expands to the converted model bit for bit.

The result carries the packed bytes, the final Keras model and a report of every stage's
size and accuracy. Sizes of the intermediate stages follow the paper's accounting:
"pruned" stores the surviving float32 values with a fixed-width relative index, "shared"
stores fixed-width codebook indices with the same index; both are exact payload sizes of
tfedge's format (fixed-width streams) in a file with the same graph as the final one.

The modules, one per concept, in the pipeline's order: `_options` (the arguments,
checked before any training), `_training` (data, compiling, fitting, measuring and
converting each stage's model), `_prune`, `_share` and `_pack` (the three stages),
`_report` (the stages' sizes and the per-tensor rows), `_result` (what is returned) and
`_pipeline` (`deep_compress` itself, the stages in order).
"""

# The defaults and types of `deep_compress`'s signature stay attributes of this module,
# as they were of the single module it was.
from tfedge._deep_compress._options import OptimizerSpec, SparsitySpec  # noqa: F401
from tfedge._deep_compress._pipeline import deep_compress
from tfedge._deep_compress._prune import (  # noqa: F401
    DEFAULT_MAX_LOSS,
    SENSITIVITY_SPARSITIES,
)
from tfedge._deep_compress._result import DeepCompressed, LayerRow, Stage
from tfedge._deep_compress._share import HESSIAN_BATCHES  # noqa: F401

__all__ = ["DeepCompressed", "LayerRow", "Stage", "deep_compress"]
