"""Fixed-point arithmetic in numpy: rounding, quantization and the choice of lengths.

A fixed-point number of width `bits` and fractional length `fl` is an integer code
`q` in [-2**(bits-1), 2**(bits-1) - 1] standing for `q * 2**-fl` (Qiu et al. 2016,
section 6). `fl` may be negative (a step larger than 1) or larger than `bits`.

Both phases of Qiu's scheme choose `fl` the same way, by the paper's rule
`fl = argmin_fl sum |x_float - x(bits, fl)|`, searched from the largest length that
avoids overflow of the observed range (`no_overflow_length`) to a few lengths above it,
which trade a little saturation of outliers for a finer step.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

# The fractional lengths tfedge will choose. A scale 2**-fl outside this range makes
# TFLite's integer rescaling (a multiplier 2**(f_out - f_in - f_w) held as a 32-bit
# mantissa and a shift of at most 31) lose the value, so a range that would need a
# length below FL_MIN is an overflow error, and a range so small that it would want a
# length above FL_MAX is clamped to FL_MAX (with a warning: the values are then coarser
# than the width allows, but none overflows).
FL_MIN = -16
FL_MAX = 24

# Lengths tried above the overflow-free one: 0 keeps every value in range, each step
# halves the step size and saturates the values beyond half the previous range.
SEARCH_ABOVE = 3


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero (as TFLite's QUANTIZE and pooling do)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def code_range(bits: int) -> tuple[int, int]:
    """The smallest and largest integer code of a signed `bits`-wide number."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def to_codes(x: np.ndarray, bits: int, fl: int) -> np.ndarray:
    """The saturated integer codes of `x` at width `bits` and fractional length `fl`."""
    lo, hi = code_range(bits)
    scaled = np.asarray(x, dtype=np.float64) * math.ldexp(1.0, fl)
    return np.clip(round_half_away(scaled), lo, hi)


def quantize(x: np.ndarray, bits: int, fl: int) -> np.ndarray:
    """`x` rounded to the fixed-point grid (saturating), as float32."""
    return (to_codes(x, bits, fl) * math.ldexp(1.0, -fl)).astype(np.float32)


def no_overflow_length(max_abs: float, bits: int) -> int:
    """The largest fractional length at which `max_abs` rounds into the code range."""
    _, hi = code_range(bits)
    fl = math.floor(math.log2((hi + 0.5) / max_abs))
    # log2 is inexact near powers of two: settle the boundary with exact arithmetic.
    while abs(round_half_away(np.float64(max_abs) * math.ldexp(1.0, fl))) > hi:
        fl -= 1
    while abs(round_half_away(np.float64(max_abs) * math.ldexp(1.0, fl + 1))) <= hi:
        fl += 1
    return fl


def choose_length(
    items: Sequence[tuple[np.ndarray, np.ndarray, int]], what: str
) -> int:
    """Qiu's `argmin_fl sum |reference - fixed(values, bits, fl)|`, from no overflow.

    `items` are `(values, reference, bits)` triples sharing one length: the values to
    round, what they should come out as (the values themselves in the weight phase; the
    float model's feature map in the data phase) and their width. The search starts at
    the longest length at which no value overflows and tries `SEARCH_ABOVE` finer ones.

    Raises `ValueError` when the values are not finite or when even `FL_MIN` overflows
    (the range cannot be held at this width); clamps to `FL_MAX` with a warning when the
    values are so small that a longer fraction would be needed.
    """
    start = None
    max_abs = 0.0
    for values, _, bits in items:
        if values.size == 0:
            continue
        if not np.all(np.isfinite(values)):
            raise ValueError(
                f"{what} holds non-finite values (inf or NaN); a fixed-point length "
                "cannot be chosen. Check the model weights and the representative data."
            )
        peak = float(np.max(np.abs(values)))
        if peak == 0.0:
            continue
        fl = no_overflow_length(peak, bits)
        if start is None or fl < start:
            start, max_abs, width = fl, peak, bits
    if start is None:
        # All zeros: every length is exact; take the finest allowed one.
        return FL_MAX
    if start < FL_MIN:
        _, hi = code_range(width)
        raise ValueError(
            f"{what} overflows every fractional length at {width} bits: its range "
            f"{max_abs:.6g} needs a length of {start}, below the smallest allowed "
            f"({FL_MIN}, at most {hi * 2.0**-FL_MIN:.6g} at this width). Use more bits "
            "or rescale the layer."
        )
    if start > FL_MAX:
        warnings.warn(
            f"{what} has range {max_abs:.6g}, which would take a fractional length of "
            f"{start} at {width} bits; clamped to {FL_MAX} (values keep a coarser "
            "step, none overflows).",
            stacklevel=3,
        )
        return FL_MAX
    best, best_err = start, math.inf
    for fl in range(start, min(start + SEARCH_ABOVE, FL_MAX) + 1):
        # Each array's mean error, summed: with one array this is Qiu's sum; with
        # several (static fixed point) a small map such as the logits counts as much
        # as a large one, instead of being saturated to serve the large ones.
        err = sum(
            float(np.mean(np.abs(ref - quantize(values, bits, fl))))
            for values, ref, bits in items
            if values.size
        )
        if err < best_err:
            best, best_err = fl, err
    return best
