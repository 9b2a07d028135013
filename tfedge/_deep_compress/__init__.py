"""`deep_compress`: Deep Compression (Han, Mao and Dally 2016) in one call.

The three stages of the paper, each a `model.fit` away from the previous one:

1. **Pruning** (Han et al. 2015). Per-layer sparsities come from a sensitivity analysis
   (`tfedge.keras.sensitivity` + `choose_sparsity`: each layer pruned alone,
   one-shot, on the validation data) or are given. The layers are then pruned
   iteratively inside `model.fit` (`tfedge.keras.IterativePruning`: prune part of the
   way to the target, retrain, prune harder, ...) and stripped back to plain layers.
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
"""

from tfedge._deep_compress._pipeline import (
    DEFAULT_MAX_LOSS as DEFAULT_MAX_LOSS,
)
from tfedge._deep_compress._pipeline import (
    HESSIAN_BATCHES as HESSIAN_BATCHES,
)
from tfedge._deep_compress._pipeline import (
    SENSITIVITY_SPARSITIES as SENSITIVITY_SPARSITIES,
)
from tfedge._deep_compress._pipeline import (
    DeepCompressed,
    LayerRow,
    Stage,
    deep_compress,
)
from tfedge._deep_compress._pipeline import (
    OptimizerSpec as OptimizerSpec,
)
from tfedge._deep_compress._pipeline import (
    SparsitySpec as SparsitySpec,
)
from tfedge._deep_compress._pipeline import (
    _default_bits as _default_bits,
)

__all__ = ["DeepCompressed", "LayerRow", "Stage", "deep_compress"]
