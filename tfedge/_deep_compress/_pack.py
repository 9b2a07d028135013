"""Stage 3, Huffman coding.

The stripped model's .tflite is packed by `tfedge.compress(..., lossless=True)`: the
exact codebooks of stage 2, the sparse relative index of stage 1, both Huffman coded.
Nothing is lost at this stage: the packed file expands to the converted model bit for
bit.
"""

from __future__ import annotations

from tfedge._progress import stage
from tfedge.pack import tflite_metric

__all__ = ["pack"]


def pack(tflite: bytes, options, training) -> tuple[object, float]:
    """`tflite` packed losslessly, and the metric of its expansion on the validation
    data in the stock interpreter."""
    from tfedge.convert import compress
    from tfedge.runtime import expand

    with stage("deep_compress: packing", verbose=options.verbose):
        packed = compress(tflite, lossless=True, seed=options.seed, progress=False)
    accuracy = tflite_metric(
        expand(bytes(packed)), training.x_val, training.y_val, options.metric
    )
    return packed, accuracy
