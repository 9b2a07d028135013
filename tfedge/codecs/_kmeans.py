"""1-D k-means for weight sharing (Deep Compression, stage 2).

The values are sorted once; each Lloyd iteration then finds the cluster boundaries by
`searchsorted` of the centroid midpoints and the cluster means from prefix sums, so an
iteration costs O(k log n) after the O(n log n) sort.
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


def _labels(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid of each value; centroids ascending. A value exactly between
    two centroids goes to the upper one, as in the Lloyd iterations below."""
    mids = (centroids[:-1] + centroids[1:]) / 2
    return np.searchsorted(mids, values, side="right").astype(np.int32)


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
        values: the weights, any shape (read flat); finite.
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
    if not np.isfinite(flat).all():
        raise ValueError("Expected finite `values`. Received: values with NaN or inf")
    ordered = np.sort(flat)
    n = ordered.size
    distinct = np.flatnonzero(ordered[1:] != ordered[:-1])
    if distinct.size + 1 <= k:
        centroids = np.concatenate([ordered[distinct], ordered[-1:]]).astype(np.float64)
        return centroids, _labels(flat, centroids)

    # Prefix sums of the centred values (centring keeps the float64 sums accurate).
    shift = float(ordered[n // 2])
    centred = ordered.astype(np.float64) - shift
    s1 = np.concatenate([[0.0], np.cumsum(centred)])
    s2 = np.concatenate([[0.0], np.cumsum(centred * centred)])
    del centred
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
        mids = (centroids[:-1] + centroids[1:]) / 2
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
        centroids[full] = sums[full] / counts[full] + shift
        empty = np.flatnonzero(~full)
        if empty.size:
            centroids = _relocate(centroids, empty, bounds, ordered, s1, s2, shift)
        centroids = np.sort(centroids)
    return centroids, _labels(flat, centroids)


def _relocate(centroids, empty, bounds, ordered, s1, s2, shift):
    """Moves each empty cluster's centroid to the value farthest from its centroid
    within the cluster of largest squared error (then that cluster splits)."""
    counts = np.diff(bounds).astype(np.float64)
    sums = s1[bounds[1:]] - s1[bounds[:-1]]
    sq = s2[bounds[1:]] - s2[bounds[:-1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        sse = np.where(counts > 0, sq - sums * sums / np.maximum(counts, 1), -1.0)
    # Clusters by decreasing error that hold at least two distinct values; when there
    # are fewer of them than empty clusters, the rest stay put for this iteration.
    donors = [
        c
        for c in np.argsort(-sse, kind="stable").tolist()
        if counts[c] >= 2 and ordered[bounds[c]] != ordered[bounds[c + 1] - 1]
    ]
    for e, c in zip(empty.tolist(), donors, strict=False):
        first, last = ordered[bounds[c]], ordered[bounds[c + 1] - 1]
        target = first if centroids[c] - first > last - centroids[c] else last
        centroids[e] = float(target)
    return centroids
