"""Rate-distortion scalar quantizers for weight sharing (Choi, El-Khamy and Lee 2017).

"Towards the Limit of Network Quantization" replaces Deep Compression's plain k-means
by quantizers that account for what a weight costs the loss and what its index costs
the entropy coder:

- `weighted_kmeans_1d`: Hessian-weighted k-means. Each value v_i has an importance
  h_i >= 0 (the diagonal of the loss curvature, or Adam's second moment of its
  gradient); the distortion is sum_i h_i (v_i - c(i))**2. In one dimension the nearest
  centroid still minimises every term, so the assignment is the plain one; each
  centroid becomes the h-weighted mean of its members.
- `ecsq_1d`: entropy-constrained scalar quantization, a Lloyd-like iteration whose
  assignment cost is the (weighted) distortion plus `rate` times the index's code
  length -log2 p_j, with p_j the current fraction of values in cluster j. Larger `rate`
  trades distortion for fewer bits: clusters empty out and the index entropy falls.
  Starts from evenly spaced ("uniform") centroids.
- `ecsq_search`: the smallest `rate` (on a geometric grid, then bisection) whose index
  entropy is at most a target number of bits per value.

Units of `rate`: distortion is measured relative to the values' weighted variance,
D = mean_i (h_i / mean h) (v_i - c(i))**2 / var_h(v), so `rate` = 0.01 means one bit of
index code is worth 1% of the tensor's weighted variance per value, whatever the
tensor's scale. numpy only.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = [
    "RateDistortion",
    "ecsq_1d",
    "ecsq_search",
    "rate_distortion",
    "weighted_kmeans_1d",
]

_INITS = ("linear", "density")
# Rows of the (values x clusters) cost matrix computed at once: bounds the memory of
# an assignment step to about 8 MB per 16 clusters.
_CHUNK = 1 << 16
# Importances below this fraction of their mean are raised to it, so that a cluster
# whose members all have zero curvature still has a defined (plain) mean.
_MIN_RELATIVE_IMPORTANCE = 1e-6
# `ecsq_search`: the rate grid starts here (a cost of 1e-6 variances per bit moves
# nothing) and is multiplied by 10 until the target is met; then this many bisection
# steps in log(rate) narrow the bracket (to a factor of 10**(1/2**5) ~ 1.07).
_SEARCH_LOW = 1e-6
_SEARCH_HIGH = 1e3
_SEARCH_STEPS = 5


class RateDistortion(NamedTuple):
    """A quantization's normalised distortion and its index entropy.

    Attributes:
        distortion: mean_i (h_i / mean h) (v_i - c(i))**2 / var_h(v) (0 = exact).
        entropy: Shannon entropy of the labels, bits per value.
    """

    distortion: float
    entropy: float


def _prepare(values, importance, name: str = "values"):
    v = np.asarray(values, np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError(f"Expected at least one value. Received: {name} of size 0")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"Expected finite `{name}`. Received: values with NaN or inf")
    if importance is None:
        h = np.ones_like(v)
    else:
        h = np.asarray(importance, np.float64).reshape(-1)
        if h.shape != v.shape:
            raise ValueError(
                f"Expected `importance` with one entry per value ({v.size}). "
                f"Received: {h.size} entries"
            )
        if not np.all(np.isfinite(h)) or np.any(h < 0):
            raise ValueError(
                "Expected `importance` finite and >= 0 (a curvature or a squared "
                "gradient). Received: negative, NaN or infinite entries"
            )
        mean = h.mean()
        h = np.ones_like(v) if mean == 0 else h / mean
        h = np.maximum(h, _MIN_RELATIVE_IMPORTANCE)
    return v, h


def _scale(v: np.ndarray, h: np.ndarray) -> float:
    """The weighted variance of the values (1 when they are all equal)."""
    mean = np.sum(h * v) / np.sum(h)
    var = float(np.sum(h * (v - mean) ** 2) / np.sum(h))
    return var if var > 0 else 1.0


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"Expected `k` >= 1. Received: k={k!r}")
    return int(k)


def _init_centroids(v: np.ndarray, k: int, init: str) -> np.ndarray:
    if init not in _INITS:
        raise ValueError(f"Expected `init` in {_INITS}. Received: init={init!r}")
    if init == "linear":
        return np.linspace(v.min(), v.max(), k)
    ordered = np.sort(v)
    return ordered[((np.arange(k) + 0.5) * v.size / k).astype(np.int64)].astype(
        np.float64
    )


def _weighted_means(v, h, labels, centroids):
    k = centroids.size
    mass = np.bincount(labels, weights=h, minlength=k)
    total = np.bincount(labels, weights=h * v, minlength=k)
    out = centroids.copy()
    full = mass > 0
    out[full] = total[full] / mass[full]
    return out


def rate_distortion(
    values: np.ndarray,
    centroids: np.ndarray,
    labels: np.ndarray,
    importance: np.ndarray | None = None,
) -> RateDistortion:
    """The normalised weighted distortion and index entropy of `centroids[labels]`."""
    v, h = _prepare(values, importance)
    labels = np.asarray(labels).reshape(-1)
    err = np.asarray(centroids, np.float64)[labels] - v
    distortion = float(np.mean(h * err * err) / _scale(v, h))
    counts = np.bincount(labels)
    p = counts[counts > 0] / labels.size
    return RateDistortion(distortion, float(max(0.0, -np.sum(p * np.log2(p)))))


def weighted_kmeans_1d(
    values: np.ndarray,
    k: int,
    importance: np.ndarray | None = None,
    *,
    init: str = "linear",
    max_iter: int = 50,
) -> tuple[np.ndarray, np.ndarray]:
    """Hessian-weighted k-means in one dimension (Choi et al. 2017, section 4).

    Args:
        values: the weights, any shape (read flat); finite.
        k: the number of clusters, >= 1.
        importance: one non-negative weight per value (None: all equal, which is
            plain k-means).
        init: "linear" (evenly spaced between min and max) or "density" (quantiles).
        max_iter: the most Lloyd iterations; stops earlier when no label changes.

    Returns:
        `(centroids, labels)`: k float64 centroids sorted ascending (a centroid that
        lost all its members keeps its last position) and the int32 label of each
        value, minimising sum_i importance_i (v_i - centroids[labels_i])**2 locally.
    """
    k = _check_k(k)
    v, h = _prepare(values, importance)
    centroids = np.sort(_init_centroids(v, k, init))
    labels = None
    for _ in range(max_iter):
        mids = (centroids[:-1] + centroids[1:]) / 2
        new = np.searchsorted(mids, v, side="right").astype(np.int32)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        centroids = _weighted_means(v, h, labels, centroids)
        order = np.argsort(centroids, kind="stable")
        centroids = centroids[order]
        labels = np.argsort(order).astype(np.int32)[labels]
    if labels is None:
        mids = (centroids[:-1] + centroids[1:]) / 2
        labels = np.searchsorted(mids, v, side="right").astype(np.int32)
    return centroids, labels


def _assign(v, h, centroids, lengths, rate, scale):
    """argmin_j h_i (v_i - c_j)**2 / scale + rate * lengths_j, in row chunks.

    Computed as (h_i / scale) (c_j**2 - 2 v_i c_j) + rate * lengths_j (the dropped
    h_i v_i**2 / scale is the same for every j), in float32: ties between two
    clusters within float32 rounding may go either way, which moves the cost by less
    than that rounding.
    """
    live = np.flatnonzero(np.isfinite(lengths))
    c = centroids[live].astype(np.float32)
    square = (c * c)[None, :]
    twice = (2 * c)[None, :]
    penalty = (rate * lengths[live]).astype(np.float32)[None, :]
    weight = (h / scale).astype(np.float32)
    value = v.astype(np.float32)
    out = np.empty(v.size, np.int32)
    for start in range(0, v.size, _CHUNK):
        sl = slice(start, start + _CHUNK)
        cost = square - value[sl, None] * twice
        cost *= weight[sl, None]
        cost += penalty
        out[sl] = live[np.argmin(cost, axis=1)]
    return out


def ecsq_1d(
    values: np.ndarray,
    k: int,
    rate: float,
    importance: np.ndarray | None = None,
    *,
    init: str = "linear",
    max_iter: int = 50,
) -> tuple[np.ndarray, np.ndarray]:
    """Entropy-constrained scalar quantization (Choi et al. 2017, section 5.3).

    Lloyd-like: starting from `init` centroids (evenly spaced: the uniform quantizer),
    each iteration assigns every value to the cluster j minimising

        (h_i / mean h) (v_i - c_j)**2 / var_h(v) + rate * (-log2 p_j)

    where p_j is the fraction of values in cluster j after the previous assignment,
    then moves each centroid to its members' weighted mean. A cluster that empties is
    dropped for good (its code length is infinite). Stops when no label changes.

    Args:
        values: the weights, any shape (read flat); finite.
        k: the most clusters (the codebook size), >= 1.
        rate: lambda >= 0, the cost of one bit of index code in units of the values'
            weighted variance (see the module docstring). 0 is weighted k-means.
        importance: one non-negative weight per value; None: all equal.
        init: "linear" (uniform) or "density" initial centroids.
        max_iter: the most iterations.

    Returns:
        `(centroids, labels)`: k float64 centroids (unused ones keep their last
        position; the used ones ascend) and the int32 label of each value.
    """
    k = _check_k(k)
    if isinstance(rate, bool) or not isinstance(rate, int | float | np.floating):
        raise ValueError(
            f"Expected `rate` to be a number >= 0. Received: rate={rate!r}"
        )
    if not (math.isfinite(rate) and rate >= 0):
        raise ValueError(f"Expected `rate` finite and >= 0. Received: rate={rate!r}")
    v, h = _prepare(values, importance)
    scale = _scale(v, h)
    centroids = np.sort(_init_centroids(v, k, init))
    lengths = np.zeros(k)
    labels = None
    for _ in range(max_iter):
        new = _assign(v, h, centroids, lengths, float(rate), scale)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        counts = np.bincount(labels, minlength=k)
        with np.errstate(divide="ignore"):
            lengths = -np.log2(counts / v.size)
        centroids = _weighted_means(v, h, labels, centroids)
    # Relabel so that the used centroids ascend (the decoder does not care, but sorted
    # codebooks are what the rest of tfedge produces).
    order = np.argsort(centroids, kind="stable")
    used = np.bincount(labels, minlength=k) > 0
    order = np.concatenate([order[used[order]], order[~used[order]]])
    rank = np.empty(k, np.int32)
    rank[order] = np.arange(k, dtype=np.int32)
    return centroids[order], rank[labels]


def ecsq_search(
    values: np.ndarray,
    k: int,
    target_bits: float,
    importance: np.ndarray | None = None,
    *,
    init: str = "linear",
    max_iter: int = 30,
) -> tuple[float, np.ndarray, np.ndarray]:
    """ECSQ with the smallest rate whose index entropy is at most `target_bits`.

    Tries rate = 0 (weighted k-means from the uniform start), then 1e-6, 1e-5, ...
    until the labels' entropy (bits per value) is at most `target_bits`, then bisects
    log(rate) between the last two tries. Entropy falls with the rate but not strictly
    monotonically (each run is a local optimum), so the answer is the smallest rate
    tried that meets the target, not necessarily the smallest that exists.

    Returns:
        `(rate, centroids, labels)` as from `ecsq_1d` at that rate.

    Raises:
        ValueError: `target_bits` < 0, or no rate up to 1e3 meets it (only possible
            when the target is below the entropy of a single cluster, 0).
    """
    if (
        isinstance(target_bits, bool)
        or not isinstance(target_bits, int | float | np.floating)
        or not target_bits >= 0
    ):
        raise ValueError(
            "Expected `target_bits` >= 0 (index entropy per value). Received: "
            f"target_bits={target_bits!r}"
        )

    def run(rate):
        c, lab = ecsq_1d(values, k, rate, importance, init=init, max_iter=max_iter)
        return rate, c, lab, rate_distortion(values, c, lab, importance).entropy

    best = run(0.0)
    if best[3] <= target_bits:
        return best[:3]
    low, rate = 0.0, _SEARCH_LOW
    while rate <= _SEARCH_HIGH:
        tried = run(rate)
        if tried[3] <= target_bits:
            best = tried
            break
        low, rate = rate, rate * 10
    else:
        raise ValueError(
            f"No rate up to {_SEARCH_HIGH:g} brings the index entropy to "
            f"target_bits={target_bits}. Raise `target_bits`."
        )
    if low > 0:
        lo, hi = math.log(low), math.log(best[0])
        for _ in range(_SEARCH_STEPS):
            mid = (lo + hi) / 2
            tried = run(math.exp(mid))
            if tried[3] <= target_bits:
                best, hi = tried, mid
            else:
                lo = mid
    return best[:3]
