"""1-D k-means for weight sharing (Deep Compression, stage 2).

The values are sorted once; each Lloyd iteration then finds the cluster boundaries by
`searchsorted` of the centroid midpoints and the cluster means from prefix sums, so an
iteration costs O(k log n) after the O(n log n) sort. Float32 weights stay float32
(midpoints are rounded up to float32, which keeps the comparisons exact).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

INITS = ("linear", "density", "random")


class QuantizeError(NamedTuple):
    """How far `centroids[labels]` is from the values."""

    mse: float
    max_abs: float


def quantize_error(
    values: np.ndarray, centroids: np.ndarray, labels: np.ndarray
) -> QuantizeError:
    """Returns the mean squared and largest absolute error of `centroids[labels]`."""
    v = np.asarray(values, np.float64).reshape(-1)
    if v.size == 0:
        return QuantizeError(0.0, 0.0)
    err = np.abs(np.asarray(centroids, np.float64)[np.asarray(labels).reshape(-1)] - v)
    return QuantizeError(float(np.mean(err * err)), float(err.max()))


def _midpoints(centroids: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The midpoints between ascending centroids, as `dtype` for fast searchsorted.

    For float32 values each float64 midpoint is rounded up to the next float32, which
    keeps every comparison exact: for a float32 v, v >= mid iff v >= ceil32(mid).
    """
    mids = (centroids[:-1] + centroids[1:]) / 2
    if dtype == np.float64:
        return mids
    rounded = mids.astype(dtype)
    low = rounded < mids
    rounded[low] = np.nextafter(rounded[low], dtype.type(np.inf))
    return rounded


# Float32 arrays at least this large are labelled through a bucket table (below).
_TABLE_LABELS_MIN_SIZE = 1 << 21
# Buckets are the top 20 bits of a float32's bit pattern (sign, exponent and 11
# mantissa bits): each bucket is an interval of floats 2**-11 of its octave wide.
_BUCKET_SHIFT = 12


def _labels(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid of each value; centroids ascending. A value exactly between
    two centroids goes to the upper one, as in the Lloyd iterations below.

    For large float32 arrays a table gives the label of every bucket of floats that
    no midpoint splits (one gather per value); only values in the few split buckets
    are searched.
    """
    mids = _midpoints(centroids, values.dtype)
    if (
        values.dtype != np.float32
        or values.size < _TABLE_LABELS_MIN_SIZE
        or not mids.size
    ):
        return np.searchsorted(mids, values, side="right").astype(np.int32)
    first = np.arange(1 << (32 - _BUCKET_SHIFT), dtype=np.uint32) << _BUCKET_SHIFT
    ends = (
        first.view(np.float32),
        (first | np.uint32((1 << _BUCKET_SHIFT) - 1)).view(np.float32),
    )
    with np.errstate(invalid="ignore"):
        low = np.searchsorted(mids, np.fmin(*ends), side="right")
        high = np.searchsorted(mids, np.fmax(*ends), side="right")
    table = low.astype(np.int32)
    key = values.view(np.uint32) >> _BUCKET_SHIFT
    labels = table[key]
    split = np.flatnonzero((low != high)[key])
    labels[split] = np.searchsorted(mids, values[split], side="right")
    return labels


def kmeans_1d(
    values: np.ndarray,
    k: int,
    *,
    init: str = "linear",
    max_iter: int = 50,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Clusters scalar values into `k` shared values (Lloyd's algorithm in 1-D).

    Args:
        values: the weights, any shape (read flat); finite. Float32 is fastest.
        k: the number of clusters (codebook entries), >= 1.
        init: "linear" (Deep Compression's default: evenly spaced between the min and
            the max), "density" (quantiles of the values' CDF) or "random" (k distinct
            positions sampled from the values).
        max_iter: the most Lloyd iterations; it stops earlier when no boundary moves.
        seed: the random generator seed (for "random").

    Returns:
        `(centroids, labels)`: float64 centroids sorted ascending (fewer than k when the
        values have fewer than k distinct values: then they are exactly those values,
        with zero error), and the int32 index of each value's nearest centroid, in the
        values' flat order.

    Raises:
        ValueError: bad `k`, `init` or `max_iter`, or non-finite values.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"Expected `k` >= 1. Received: k={k!r}")
    if init not in INITS:
        raise ValueError(f"Expected `init` in {INITS}. Received: init={init!r}")
    if max_iter < 0:
        raise ValueError(f"Expected `max_iter` >= 0. Received: max_iter={max_iter}")
    flat = np.asarray(values).reshape(-1)
    if flat.size == 0:
        return np.zeros(0, np.float64), np.zeros(0, np.int32)
    if not np.issubdtype(flat.dtype, np.floating):
        flat = flat.astype(np.float64)
    elif flat.dtype.itemsize < 4:
        flat = flat.astype(np.float32)
    elif flat.dtype == np.float64 and flat.size >= _TABLE_LABELS_MIN_SIZE:
        # Float32 weights widened to float64 (as callers often pass them) are
        # clustered as the float32 values they are: the same numbers, a faster sort
        # and the bucket-table labels.
        narrow = flat.astype(np.float32)
        if np.array_equal(narrow, flat):
            flat = narrow
    ordered = np.sort(flat)
    n = ordered.size
    if not np.isfinite(ordered[[0, -1]]).all():  # NaN sorts last, infinities first/last
        raise ValueError("Expected finite `values`. Received: values with NaN or inf")
    if 1 + np.count_nonzero(ordered[1:] != ordered[:-1]) <= k:
        distinct = np.flatnonzero(ordered[1:] != ordered[:-1])
        centroids = np.concatenate([ordered[distinct], ordered[-1:]]).astype(np.float64)
        return centroids, _labels(flat, centroids)

    # Prefix sums: the sum of ordered[a:b] is s1[b] - s1[a].
    s1 = np.empty(n + 1, np.float64)
    s1[0] = 0.0
    s1[1:] = ordered
    np.cumsum(s1[1:], out=s1[1:])
    lo, hi = float(ordered[0]), float(ordered[-1])
    if init == "linear":
        centroids = np.linspace(lo, hi, k)
    elif init == "density":
        centroids = ordered[((np.arange(k) + 0.5) * n / k).astype(np.int64)].astype(
            np.float64
        )
    else:
        rng = np.random.default_rng(seed)
        centroids = ordered[np.sort(rng.choice(n, size=k, replace=False))].astype(
            np.float64
        )
    centroids = np.sort(centroids)

    bounds = None
    for _ in range(max_iter):
        mids = _midpoints(centroids, ordered.dtype)
        new_bounds = np.concatenate(
            [[0], np.searchsorted(ordered, mids, side="left"), [n]]
        )
        if bounds is not None and np.array_equal(new_bounds, bounds):
            break
        bounds = new_bounds
        counts = np.diff(bounds)
        sums = s1[bounds[1:]] - s1[bounds[:-1]]
        full = counts > 0
        centroids = centroids.copy()
        centroids[full] = sums[full] / counts[full]
        empty = np.flatnonzero(~full)
        if empty.size:
            centroids = _relocate(centroids, empty, bounds, ordered)
        centroids = np.sort(centroids)
    return centroids, _labels(flat, centroids)


def _relocate(centroids, empty, bounds, ordered):
    """Moves each empty cluster's centroid onto a populated cluster's extreme value.

    Donors are the clusters with the largest count x spread**2 (a cheap upper bound
    of their squared error) that hold at least two distinct values; the centroid
    goes to the donor's value farthest from the donor's centroid, so the donor splits
    at the next iteration. When there are fewer donors than empty clusters, the rest
    stay put for this iteration.
    """
    counts = np.diff(bounds)
    full = np.flatnonzero(counts > 0)
    first = ordered[bounds[full]].astype(np.float64)
    last = ordered[bounds[full + 1] - 1].astype(np.float64)
    score = counts[full] * (last - first) ** 2
    donors = [j for j in np.argsort(-score, kind="stable").tolist() if score[j] > 0]
    for e, j in zip(empty.tolist(), donors, strict=False):
        c = full[j]
        lo_gap, hi_gap = centroids[c] - first[j], last[j] - centroids[c]
        centroids[e] = first[j] if lo_gap > hi_gap else last[j]
    return centroids
