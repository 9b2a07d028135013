"""Hessian-weighted k-means and ECSQ (tfedge.codecs, Choi et al. 2017)."""

from __future__ import annotations

import numpy as np
import pytest

from tfedge.codecs import (
    ecsq_1d,
    ecsq_search,
    kmeans_1d,
    rate_distortion,
    weighted_kmeans_1d,
)

# Rates spanning "almost k-means" to "a handful of clusters" on a unit-variance tensor.
RATES = (0.0, 0.003, 0.03, 0.1, 0.3, 1.0)
# Normalised distortions of two quantizers that should agree (k-means computed two
# ways) differ by rounding of float32 assignment costs only.
SAME_DISTORTION_RTOL = 1e-6


def _weights(n=4000, seed=0):
    return np.random.default_rng(seed).laplace(size=n).astype(np.float32)


def test_ecsq_larger_rate_gives_lower_entropy_and_higher_distortion():
    v = _weights()
    points = [rate_distortion(v, *ecsq_1d(v, 31, r)) for r in RATES]
    entropy = [p.entropy for p in points]
    distortion = [p.distortion for p in points]
    assert all(a > b for a, b in zip(entropy, entropy[1:], strict=False)), entropy
    assert all(a < b for a, b in zip(distortion, distortion[1:], strict=False)), (
        distortion
    )


def test_ecsq_at_rate_zero_is_kmeans_from_the_uniform_start():
    v = _weights()
    ecsq = rate_distortion(v, *ecsq_1d(v, 16, 0.0, max_iter=200))
    plain = rate_distortion(v, *kmeans_1d(v, 16, init="linear", max_iter=200))
    assert ecsq.distortion == pytest.approx(plain.distortion, rel=SAME_DISTORTION_RTOL)


def test_hessian_weighting_lowers_weighted_error_vs_plain_kmeans():
    rng = np.random.default_rng(1)
    v = _weights(seed=1)
    # Curvature concentrated on the large weights (as in a layer whose few big
    # weights carry the loss): plain k-means spends its clusters on the dense middle.
    h = np.where(np.abs(v) > 2, 50.0, 1.0) * rng.gamma(2.0, size=v.size)
    weighted = rate_distortion(v, *weighted_kmeans_1d(v, 8, h), importance=h)
    plain = rate_distortion(v, *kmeans_1d(v, 8), importance=h)
    assert weighted.distortion < 0.8 * plain.distortion, (weighted, plain)


def test_uniform_importance_is_plain_kmeans():
    v = _weights()
    c1, l1 = weighted_kmeans_1d(v, 8, np.full(v.size, 3.0), max_iter=200)
    c2, l2 = kmeans_1d(v, 8, max_iter=200)
    np.testing.assert_allclose(c1, c2, rtol=1e-9)
    np.testing.assert_array_equal(l1, l2)


@pytest.mark.parametrize("target", [1.0, 2.0, 3.0])
def test_search_meets_the_entropy_target(target):
    v = _weights()
    rate, c, labels = ecsq_search(v, 31, target)
    achieved = rate_distortion(v, c, labels).entropy
    assert achieved <= target
    # The smallest rate meeting it: the next smaller grid point misses the target
    # (the search's bisection resolution is a factor of about 1.07).
    assert rate_distortion(v, *ecsq_1d(v, 31, rate / 1.5, max_iter=30)).entropy > (
        target - 0.2
    )


def test_search_returns_kmeans_when_its_entropy_is_already_below_target():
    v = _weights()
    rate, _, labels = ecsq_search(v, 4, 8.0)
    assert rate == 0.0 and rate_distortion(v, np.zeros(4), labels).entropy <= 2.0


def test_labels_index_sorted_used_centroids():
    v = _weights()
    c, labels = ecsq_1d(v, 31, 0.3)
    used = np.unique(labels)
    np.testing.assert_array_equal(used, np.arange(used.size))
    assert np.all(np.diff(c[: used.size]) > 0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda v: ecsq_1d(v, 4, -1.0), "rate"),
        (lambda v: ecsq_1d(v, 4, float("nan")), "rate"),
        (lambda v: ecsq_1d(v, 0, 0.1), "k"),
        (lambda v: ecsq_1d(v, 4, 0.1, init="random"), "init"),
        (lambda v: weighted_kmeans_1d(v, 4, -np.ones(v.size)), "importance"),
        (lambda v: weighted_kmeans_1d(v, 4, np.ones(3)), "importance"),
        (lambda v: ecsq_search(v, 4, -1.0), "target_bits"),
        (lambda v: weighted_kmeans_1d(np.array([np.nan]), 4), "finite"),
    ],
    ids=[
        "negative-rate",
        "nan-rate",
        "k0",
        "init",
        "negative-importance",
        "importance-shape",
        "negative-target",
        "nan",
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call(_weights(100))
