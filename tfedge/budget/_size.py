"""`packed_size`: the exact size of a model's packed file, as it stands."""

from __future__ import annotations

import numbers

import numpy as np


def packed_size(model, *, bits: int | None = None, min_bytes: int = 256) -> int:
    """The exact byte size of the packed file of `model`'s current weights.

    Args:
        model: a Keras model (tfedge wrappers are stripped first) or anything
            `tfedge.compress` takes.
        bits: None packs the weights losslessly (the size a model trained with
            `prune`, `share_weights` or `ternarize` ships at); an int in [1, 8] first
            shares every float kernel (rank >= 2) by k-means with 2^bits clusters,
            pruned zeros kept.
        min_bytes: buffers smaller than this stay raw (as in `tfedge.compress`).

    Returns:
        `len(tfedge.compress(...))` of that model, in bytes.
    """
    from tfedge.budget._evaluator import Evaluator
    from tfedge.budget._options import (
        Option,
        pack_lossless,
        transform,
        weight_matrix_buffers,
    )
    from tfedge.convert import to_plain_tflite
    from tfedge.pack import weight_candidates
    from tfedge.tflite import read

    if bits is not None and (
        isinstance(bits, bool)
        or not isinstance(bits, numbers.Integral)
        or not 1 <= bits <= 8
    ):
        raise ValueError(f"Expected `bits` in [1, 8] or None. Received: bits={bits!r}")
    tflite, _, _ = to_plain_tflite(model)
    if bits is not None:
        plain = read(tflite)
        candidates, _ = weight_candidates(plain, min_bytes, "linear", 0)
        matrices = weight_matrix_buffers(plain)
        replaced = {
            c.buffer: transform(c.values, Option(0.0, int(bits)))
            for c in candidates
            if c.values.dtype in (np.float32, np.float16)
            and c.buffer in matrices
            and bool(np.all(np.isfinite(c.values)))
        }
        tflite = Evaluator(tflite, None, None, None, 1).bytes_with(replaced)
    return len(pack_lossless(tflite, min_bytes))
