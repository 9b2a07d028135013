"""1-D k-means: exact codebooks, Lloyd fixed points, inits, empty clusters."""

import numpy as np
import pytest

from tfedge.codecs import _kmeans, kmeans_1d, quantize_error

INITS = ["linear", "density", "random"]
DTYPES = [np.float16, np.float32, np.float64, np.int8]


def _assert_nearest(values, centroids, labels):
    v = np.asarray(values, np.float64).reshape(-1)
    distance = np.abs(v[:, None] - centroids[None, :])
    chosen = distance[np.arange(v.size), labels]
    np.testing.assert_array_equal(chosen, distance.min(axis=1))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("distinct", [1, 2, 15, 16], ids=lambda d: f"distinct{d}")
def test_few_distinct_values_give_the_exact_codebook(distinct, dtype):
    rng = np.random.default_rng(distinct)
    table = np.sort(rng.choice(np.arange(-60, 60), distinct, replace=False)).astype(
        dtype
    )
    values = rng.choice(table, size=(40, 7))
    centroids, labels = kmeans_1d(values, 16)
    np.testing.assert_array_equal(centroids, np.unique(values).astype(np.float64))
    assert labels.shape == (280,) and labels.dtype == np.int32
    np.testing.assert_array_equal(centroids[labels], values.reshape(-1))
    assert quantize_error(values, centroids, labels) == (0.0, 0.0)


def test_empty_input():
    centroids, labels = kmeans_1d(np.zeros(0, np.float32), 4)
    assert centroids.size == 0 and labels.size == 0


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("k", [1, 2, 7, 32], ids=lambda k: f"k{k}")
def test_lloyd_fixed_point(k, init):
    rng = np.random.default_rng(k)
    values = np.concatenate(
        [rng.normal(0, 0.05, 3000), rng.normal(0.5, 0.2, 1000), [4.0, -3.0]]
    ).astype(np.float32)
    centroids, labels = kmeans_1d(values, k, init=init, max_iter=300, seed=3)
    assert centroids.size == k
    assert np.all(np.diff(centroids) > 0)
    _assert_nearest(values, centroids, labels)
    # At convergence every centroid is the mean of its members (no empty cluster).
    counts = np.bincount(labels, minlength=k)
    assert counts.min() > 0
    means = np.bincount(labels, weights=values.astype(np.float64), minlength=k) / counts
    np.testing.assert_allclose(centroids, means, rtol=0, atol=1e-9)


def test_linear_initialisation_is_evenly_spaced():
    values = np.array([0.0, 0.1, 0.2, 0.9, 1.0, 3.0], np.float32)
    centroids, labels = kmeans_1d(values, 4, max_iter=0)
    np.testing.assert_allclose(centroids, [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 3])


def test_more_clusters_reduce_error_and_are_deterministic():
    rng = np.random.default_rng(0)
    values = rng.laplace(size=20000).astype(np.float32)
    errors = [quantize_error(values, *kmeans_1d(values, k)).mse for k in (2, 4, 16, 64)]
    assert errors == sorted(errors, reverse=True)
    a, b = (
        kmeans_1d(values, 16, init="random", seed=5),
        kmeans_1d(values, 16, init="random", seed=5),
    )
    np.testing.assert_array_equal(a[0], b[0])


def test_empty_clusters_are_relocated():
    # Linear initialisation over a range dominated by two outliers leaves most
    # initial centroids with no members; all must end up used.
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0, 0.01, 5000), [-100.0, 100.0]])
    centroids, labels = kmeans_1d(values, 8, max_iter=100)
    assert np.bincount(labels, minlength=8).min() > 0
    assert np.unique(centroids).size == 8


def test_float32_bucket_table_labels_match_search(monkeypatch):
    monkeypatch.setattr(_kmeans, "_TABLE_LABELS_MIN_SIZE", 1000)
    rng = np.random.default_rng(2)
    size = 200_000
    values = np.concatenate([rng.standard_normal(size), [0.0, -0.0, 1e-40]]).astype(
        np.float32
    )
    centroids = np.sort(rng.standard_normal(200)) * np.float64(1.5)
    centroids = np.concatenate([centroids, [0.0, 1e-45]])
    centroids.sort()
    labels = _kmeans._labels(values, centroids)
    mids = (centroids[:-1] + centroids[1:]) / 2
    expected = np.searchsorted(mids, values.astype(np.float64), side="right")
    np.testing.assert_array_equal(labels, expected)


@pytest.mark.parametrize(
    "values, k, kwargs, match",
    [
        ([1.0, np.nan], 2, {}, "finite"),
        ([1.0, np.inf], 2, {}, "finite"),
        ([1.0], 0, {}, "Expected `k` >= 1"),
        ([1.0], 2, {"init": "kmeans++"}, "Expected `init`"),
        ([1.0], 2, {"max_iter": -1}, "max_iter"),
    ],
    ids=["nan", "inf", "k0", "init", "max_iter"],
)
def test_bad_arguments(values, k, kwargs, match):
    with pytest.raises(ValueError, match=match):
        kmeans_1d(np.array(values), k, **kwargs)


def test_float64_holding_float32_values_gives_the_same_result(monkeypatch):
    monkeypatch.setattr(_kmeans, "_TABLE_LABELS_MIN_SIZE", 1000)
    rng = np.random.default_rng(4)
    values = rng.standard_normal(5000).astype(np.float32)
    narrow = kmeans_1d(values, 8, max_iter=5)
    wide = kmeans_1d(values.astype(np.float64), 8, max_iter=5)
    np.testing.assert_array_equal(narrow[0], wide[0])
    np.testing.assert_array_equal(narrow[1], wide[1])
