"""Trained weight sharing (Deep Compression): tfedge.keras.share_weights."""

from __future__ import annotations

import re
import warnings

import keras
import numpy as np
import pytest

from tests.keras import _distribute
from tfedge.codecs import kmeans_1d
from tfedge.keras import WeightSharingWrapper, share_weights, strip
from tfedge.keras._weight_sharing import DEFAULT_BITS

_distribute.configure_two_cpus()

# float32 outputs of the same kernel computed through different call paths (wrapper vs.
# plain layer, before vs. after a .keras round trip) agree to rounding.
OUTPUT_ATOL = 1e-6


def _data(seed=0, n=16, shape=(6, 6, 1), classes=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype("float32")
    y = rng.integers(0, classes, size=n)
    return x, y


def _convnet(seed=0, prune_fraction=0.0):
    """A tiny conv net; optionally with the smallest weights of d1 set to zero."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(4, 3, name="c1"),
            keras.layers.Conv2D(6, 3, activation="relu", name="c2"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(8, activation="relu", name="d1"),
            keras.layers.Dense(3, name="d2"),
        ],
        name="convnet",
    )
    if prune_fraction:
        w = model.get_layer("d1").kernel.numpy()
        w[np.abs(w) < np.quantile(np.abs(w), prune_fraction)] = 0.0
        model.get_layer("d1").kernel.assign(w)
    return model


def _pruned_dense(units=40, inputs=30, fraction=0.5, seed=0):
    keras.utils.set_random_seed(seed)
    layer = keras.layers.Dense(units, name="fc")
    layer.build((None, inputs))
    w = layer.kernel.numpy()
    w[np.abs(w) < np.quantile(np.abs(w), fraction)] = 0.0
    layer.kernel.assign(w)
    return layer


def _warned(fn, pattern):
    # pytest.warns re-emits the DeprecationWarning numpy 2 raises inside Keras'
    # convert_to_numpy without its module, which the ignore list then misses: record.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    assert any(
        issubclass(w.category, UserWarning) and re.search(pattern, str(w.message))
        for w in caught
    ), [str(w.message) for w in caught]
    return result


def _compile(model, lr=0.01, run_eagerly=False):
    model.compile(
        keras.optimizers.Adam(lr),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=run_eagerly,  # eager: no tracing where graph mode is not tested
    )
    return model


# --- clustering, pruned zeros, eq. 3 -----------------------------------------------


def test_kernel_has_at_most_2_to_the_bits_values_and_pruned_zeros_stay():
    layer = _pruned_dense()
    original = layer.kernel.numpy()
    wrapper = WeightSharingWrapper(layer, bits=3)
    wrapper.build((None, 30))
    shared = wrapper.shared_values()
    np.testing.assert_array_equal(shared == 0, original == 0)
    assert len(np.unique(shared[shared != 0])) <= 8
    x = np.random.default_rng(1).normal(size=(2, 30)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(wrapper(x)),
        x @ shared + layer.bias.numpy(),
        atol=OUTPUT_ATOL,
    )


@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_centroids_start_from_kmeans_of_the_non_zero_weights(init):
    layer = _pruned_dense()
    w = layer.kernel.numpy()
    wrapper = WeightSharingWrapper(layer, bits=4, init=init, seed=3)
    wrapper.build((None, 30))
    # A pruned kernel keeps one of the 16 codes for its zero: 15 shared values.
    assert wrapper.reserve_zero and wrapper.clusters == 15
    centroids, labels = kmeans_1d(w[w != 0], 15, init=init, seed=3)
    np.testing.assert_allclose(wrapper.centroids.numpy(), centroids, rtol=1e-6)
    np.testing.assert_array_equal(wrapper.indices.numpy()[w != 0], labels)
    np.testing.assert_array_equal(wrapper.indices.numpy()[w == 0], 15)


def test_pruned_shared_layer_fits_its_bits_with_the_zero():
    layer = _pruned_dense()
    wrapper = WeightSharingWrapper(layer, bits=3)
    wrapper.build((None, 30))
    values = np.unique(wrapper.shared_values())
    assert 0 in values and values.size <= 2**3
    assert wrapper.get_config()["reserve_zero"] is True
    dense = keras.layers.Dense(4)
    dense.build((None, 30))
    unpruned = WeightSharingWrapper(dense, bits=3)
    unpruned.build((None, 30))
    assert unpruned.reserve_zero is False and unpruned.clusters == 8


def test_centroid_gradient_is_the_sum_of_member_gradients():
    import tensorflow as tf

    layer = _pruned_dense(units=9, inputs=7)
    wrapper = WeightSharingWrapper(layer, bits=2)
    wrapper.build((None, 7))
    upstream = np.random.default_rng(4).normal(size=(7, 9)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(wrapper.shared_kernel() * upstream)
    grad = tape.gradient(loss, wrapper.centroids.value)
    grad = tf.convert_to_tensor(grad).numpy()
    idx = wrapper.indices.numpy()
    expected = [upstream[idx == j].sum() for j in range(wrapper.clusters)]
    np.testing.assert_allclose(grad, expected, rtol=1e-5)


def test_optimizer_step_moves_each_centroid_by_its_summed_gradient():
    # The raw gradient of a gather is sparse with repeated indices (IndexedSlices on
    # TensorFlow); the optimizer must add the repeats up, not keep one of them.
    import tensorflow as tf

    layer = _pruned_dense(units=9, inputs=7)
    wrapper = WeightSharingWrapper(layer, bits=2)
    wrapper.build((None, 7))
    upstream = np.random.default_rng(5).normal(size=(7, 9)).astype("float32")
    before = wrapper.centroids.numpy().copy()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(wrapper.shared_kernel() * upstream)
    (grad,) = tape.gradient(loss, [wrapper.centroids.value])
    keras.optimizers.SGD(learning_rate=0.5).apply_gradients([(grad, wrapper.centroids)])
    idx = wrapper.indices.numpy()
    summed = np.array([upstream[idx == j].sum() for j in range(wrapper.clusters)])
    np.testing.assert_allclose(
        wrapper.centroids.numpy(), before - 0.5 * summed, rtol=1e-5
    )


def test_fit_trains_only_centroids_and_keeps_indices_and_zeros():
    original = _convnet(prune_fraction=0.5)
    model = _compile(share_weights(original, bits=2))
    wrapper = model.get_layer("d1")
    assert all(v is not wrapper.layer.kernel for v in model.trainable_weights)
    centroids0 = wrapper.centroids.numpy().copy()
    indices0 = wrapper.indices.numpy().copy()
    x, y = _data()
    loss0 = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < loss0
    assert not np.array_equal(wrapper.centroids.numpy(), centroids0)
    np.testing.assert_array_equal(wrapper.indices.numpy(), indices0)
    shared = wrapper.shared_values()
    np.testing.assert_array_equal(
        shared == 0, original.get_layer("d1").kernel.numpy() == 0
    )


def test_fewer_distinct_weights_than_clusters_keeps_them_exactly():
    layer = keras.layers.Dense(4, name="few")
    layer.build((None, 5))
    w = np.random.default_rng(0).choice([-0.5, 0.0, 0.25, 0.75], size=(5, 4))
    layer.kernel.assign(w.astype("float32"))
    wrapper = WeightSharingWrapper(layer, bits=3)
    _warned(
        lambda: wrapper.build((None, 5)), r"3 distinct non-zero weights, fewer than"
    )
    np.testing.assert_array_equal(wrapper.shared_values(), w.astype("float32"))


# --- bits per layer ------------------------------------------------------------------


def _bits_of(model):
    return {
        lyr.name: lyr.bits
        for lyr in model.layers
        if isinstance(lyr, WeightSharingWrapper)
    }


@pytest.mark.parametrize(
    "bits, expected",
    [
        (4, {"c1": 4, "c2": 4, "d1": 4, "d2": 4}),
        ({"c2": 6, "d1": 3}, {"c2": 6, "d1": 3}),
        (lambda layer: 2 if layer.name.startswith("d") else None, {"d1": 2, "d2": 2}),
    ],
    ids=["int", "dict", "callable"],
)
def test_bits_per_layer(bits, expected):
    assert _bits_of(share_weights(_convnet(), bits=bits)) == expected


def test_paper_default_bits_warn_for_convs_smaller_than_256_weights():
    # c1 holds 36 weights and c2 216, fewer than 2^8: they keep their exact values.
    model = _warned(
        lambda: share_weights(_convnet()),
        r"Layer 'c1' has 36 distinct non-zero weights, fewer than its 256 clusters",
    )
    assert _bits_of(model) == {"c1": 8, "c2": 8, "d1": 5, "d2": 5}


def test_default_bits_table_is_the_papers():
    assert DEFAULT_BITS == {"conv": 8, "dense": 5}
    assert share_weights(keras.layers.Conv1D(2, 3)).bits == 8
    assert share_weights(keras.layers.Dense(2)).bits == 5


# --- strip ---------------------------------------------------------------------------


def test_strip_gives_plain_layers_with_shared_values():
    model = _compile(
        share_weights(_convnet(prune_fraction=0.3), bits={"c2": 3, "d1": 2}),
        run_eagerly=True,
    )
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    plain = strip(model)
    assert [type(lyr).__name__ for lyr in plain.layers] == [
        "Conv2D",
        "Conv2D",
        "Flatten",
        "Dense",
        "Dense",
    ]
    assert [lyr.name for lyr in plain.layers] == ["c1", "c2", "flat", "d1", "d2"]
    for name, bits in (("c2", 3), ("d1", 2)):
        k = plain.get_layer(name).kernel.numpy()
        assert len(np.unique(k[k != 0])) <= 2**bits
    d1 = plain.get_layer("d1").kernel.numpy()
    assert np.mean(d1 == 0) >= 0.3
    np.testing.assert_allclose(
        plain.predict(x, verbose=0), model.predict(x, verbose=0), atol=OUTPUT_ATOL
    )


# --- serialization -------------------------------------------------------------------


def test_config_round_trip():
    wrapper = WeightSharingWrapper(
        keras.layers.Dense(3, name="fc"), bits=3, init="density", seed=7, name="s"
    )
    config = wrapper.get_config()
    assert (config["bits"], config["init"], config["seed"]) == (3, "density", 7)
    assert WeightSharingWrapper.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(wrapper)
    )
    assert type(restored) is WeightSharingWrapper and restored.get_config() == config


def test_keras_save_load_gives_equal_predictions(tmp_path):
    model = _compile(
        share_weights(_convnet(prune_fraction=0.5), bits=3), run_eagerly=True
    )
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = str(tmp_path / "shared.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    for name in ("c1", "d1"):
        np.testing.assert_array_equal(
            loaded.get_layer(name).indices.numpy(),
            model.get_layer(name).indices.numpy(),
        )
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=OUTPUT_ATOL
    )


# --- MirroredStrategy ----------------------------------------------------------------


def _mirrored_check():
    import tensorflow as tf

    x, y = _data(n=16)
    base = _convnet(prune_fraction=0.5)

    def train(strategy):
        with strategy.scope():
            model = share_weights(base, bits=3)
            model.compile(
                keras.optimizers.SGD(0.05),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
        model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
        return model

    mirrored = train(_distribute.mirrored_strategy())
    single = train(tf.distribute.get_strategy())
    for a, b in zip(mirrored.get_weights(), single.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=_distribute.MIRRORED_ATOL)
    k = mirrored.get_layer("d1").tfedge_strip().kernel.numpy()
    assert len(np.unique(k[k != 0])) <= 8


def test_mirrored_strategy_on_two_cpus_matches_one_device():
    if _distribute.have_two_cpus():
        _mirrored_check()
    else:
        _distribute.run_in_fresh_process(
            "from tests.keras.test_weight_sharing import _mirrored_check\n"
            "_mirrored_check()"
        )


# --- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize("bits", [0, 9, 2.5, True, "5", -1])
def test_bits_outside_1_to_8(bits):
    with pytest.raises(
        ValueError, match=r"Expected `bits` to be an integer in \[1, 8\]"
    ):
        share_weights(_convnet(), bits=bits)
    with pytest.raises(
        ValueError, match=r"Expected `bits` to be an integer in \[1, 8\]"
    ):
        WeightSharingWrapper(keras.layers.Dense(2), bits=bits)


def test_bad_bits_in_dict_or_callable():
    with pytest.raises(ValueError, match=r"`bits\['d1'\]`.*Received: bits\['d1'\]=12"):
        share_weights(_convnet(), bits={"d1": 12})
    with pytest.raises(ValueError, match=r"`bits\('c1'\)`"):
        share_weights(_convnet(), bits=lambda layer: 0)
    with pytest.raises(ValueError, match=r"no layer named \['nope'\]"):
        share_weights(_convnet(), bits={"nope": 4})


def test_bad_init_and_seed():
    with pytest.raises(ValueError, match=r"Expected `init` to be one of"):
        share_weights(_convnet(), init="kmeans++")
    with pytest.raises(ValueError, match=r"Expected `seed`"):
        WeightSharingWrapper(keras.layers.Dense(2), seed=-1)


def test_no_shareable_layer():
    model = keras.Sequential(
        [keras.Input((4, 4)), keras.layers.Flatten(), keras.layers.Activation("relu")]
    )
    with pytest.raises(ValueError, match="no layer has a `kernel` weight"):
        share_weights(model)
    with pytest.raises(ValueError, match="`bits` selected none of them"):
        share_weights(_convnet(), bits=lambda layer: None)
    with pytest.raises(ValueError, match="`bits` selected none of them"):
        share_weights(_convnet(), bits={})


def test_unstripped_pruned_model_is_refused_and_stripped_one_keeps_its_zeros():
    from tfedge.keras import ConstantSparsity, prune

    pruned = prune(_convnet(), schedule=ConstantSparsity(0.5, begin_step=0))
    with pytest.raises(ValueError, match=r"layer 'c1' is a PruningWrapper\. Strip"):
        share_weights(pruned, bits=2)
    x, y = _data()
    _compile(pruned, run_eagerly=True).fit(x, y, epochs=1, batch_size=8, verbose=0)
    plain = strip(pruned)
    shared = share_weights(plain, bits=2)
    kernel = plain.get_layer("d1").kernel.numpy()
    assert np.mean(kernel == 0) >= 0.5
    np.testing.assert_array_equal(
        shared.get_layer("d1").shared_values() == 0, kernel == 0
    )


def test_layer_without_kernel_and_all_zero_kernel():
    flat = keras.layers.Flatten()
    flat.build((None, 3, 3))
    with pytest.raises(ValueError, match="has none. Leave it unwrapped"):
        WeightSharingWrapper(flat)
    model = _convnet()
    model.get_layer("d1").kernel.assign(np.zeros((24, 8), "float32"))
    with pytest.raises(ValueError, match="kernel of layer 'd1' is all zeros"):
        share_weights(model, bits=2)


# --- Hessian-weighted k-means and ECSQ (Choi et al. 2017) ----------------------------

# ECSQ rates on a fixed kernel, from "almost k-means" to "a handful of clusters".
ECSQ_RATES = (0.0, 0.01, 0.1, 0.5)
# The Hessian-weighted clustering must cut the weighted error of plain k-means by at
# least this factor on a kernel whose curvature is concentrated on few weights (the
# codec test measures about 0.5 on such data; 0.9 leaves room for the small kernel).
HESSIAN_GAIN = 0.9


def _weighted_error(wrapper, original, h):
    shared = wrapper.shared_values()
    keep = original != 0
    return float(np.sum(h[keep] * (shared[keep] - original[keep]) ** 2))


def _entropy(wrapper, original):
    from tfedge.codecs import entropy_bits

    return entropy_bits(wrapper.indices.numpy()[original != 0])


def test_hessian_weighting_lowers_weighted_error_vs_plain_kmeans():
    layer = _pruned_dense(units=60, inputs=50, fraction=0.3)
    w = layer.kernel.numpy()
    rng = np.random.default_rng(2)
    h = np.where(np.abs(w) > np.quantile(np.abs(w), 0.9), 30.0, 1.0) * rng.gamma(
        2.0, size=w.shape
    )
    plain = WeightSharingWrapper(_pruned_dense(60, 50, 0.3), bits=3)
    plain.build((None, 50))
    weighted = WeightSharingWrapper(layer, bits=3, method="hessian", importance=h)
    weighted.build((None, 50))
    assert _weighted_error(weighted, w, h) < HESSIAN_GAIN * _weighted_error(plain, w, h)


def test_ecsq_larger_rate_gives_lower_entropy_and_higher_distortion():
    w = _pruned_dense(units=60, inputs=50, fraction=0.3).kernel.numpy()
    entropy, error = [], []
    for rate in ECSQ_RATES:
        wrapper = WeightSharingWrapper(
            _pruned_dense(units=60, inputs=50, fraction=0.3),
            bits=5,
            method="ecsq",
            rate=rate,
        )
        wrapper.build((None, 50))
        assert wrapper.used_rate == rate
        entropy.append(_entropy(wrapper, w))
        error.append(_weighted_error(wrapper, w, np.ones_like(w)))
    assert all(a > b for a, b in zip(entropy, entropy[1:], strict=False)), entropy
    assert all(a < b for a, b in zip(error, error[1:], strict=False)), error


@pytest.mark.parametrize("target", [None, 2.0])
def test_ecsq_without_rate_meets_the_entropy_target(target):
    layer = _pruned_dense(units=60, inputs=50, fraction=0.3)
    w = layer.kernel.numpy()
    wrapper = WeightSharingWrapper(layer, bits=5, method="ecsq", target_bits=target)
    wrapper.build((None, 50))
    goal = 3.0 if target is None else target  # default: bits - 2
    assert _entropy(wrapper, w) <= goal and wrapper.used_rate > 0


def test_hessian_from_data_and_from_adam_moments():
    x, y = _data(n=32)
    base = _compile(_convnet(prune_fraction=0.5), run_eagerly=True)
    with pytest.raises(ValueError, match="hessian_data"):
        share_weights(base, bits=3, method="hessian")  # no data, never trained
    from_data = share_weights(
        base, bits=3, method="hessian", hessian_data=(x, y), hessian_batches=1
    )
    base.fit(x, y, epochs=1, batch_size=16, verbose=0)
    from_adam = share_weights(base, bits=3, method="hessian")
    from tfedge.codecs import weighted_kmeans_1d

    velocity = {v.name: v.numpy() for v in base.optimizer.variables}
    d1 = base.get_layer("d1")
    w = d1.kernel.numpy()
    h = velocity[f"{d1.kernel.path.replace('/', '_')}_velocity"]
    # Training moved the zeros: no code is reserved for them, 8 clusters.
    k = from_adam.get_layer("d1").clusters
    _, labels = weighted_kmeans_1d(w[w != 0], k, h[w != 0])
    np.testing.assert_array_equal(
        from_adam.get_layer("d1").indices.numpy()[w != 0], labels
    )
    assert from_data.get_layer("d1").method == "hessian"


@pytest.mark.parametrize("method", ["hessian", "ecsq"])
def test_rate_distortion_wrapper_trains_in_fit_and_strips_to_shared_values(method):
    x, y = _data(n=32)
    model = share_weights(
        _convnet(prune_fraction=0.5),
        bits=3,
        method=method,
        hessian_data=(x, y),
        hessian_batches=1,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    _compile(model, run_eagerly=True)
    before = model.get_layer("d1").centroids.numpy().copy()
    indices = model.get_layer("d1").indices.numpy().copy()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    wrapper = model.get_layer("d1")
    assert not np.array_equal(wrapper.centroids.numpy(), before)
    np.testing.assert_array_equal(wrapper.indices.numpy(), indices)
    table = np.append(wrapper.centroids.numpy(), np.float32(0))
    stripped = strip(model).get_layer("d1").kernel.numpy()
    np.testing.assert_array_equal(stripped, table[indices])


RD_CONFIGS = {
    "hessian": dict(method="hessian"),
    "ecsq-rate": dict(method="ecsq", rate=0.05),
    "ecsq-target": dict(method="ecsq", target_bits=2.5),
}


@pytest.mark.parametrize("options", RD_CONFIGS.values(), ids=RD_CONFIGS.keys())
def test_rate_distortion_config_round_trip(options):
    wrapper = WeightSharingWrapper(keras.layers.Dense(3, name="fc"), bits=4, **options)
    config = wrapper.get_config()
    assert {k: config[k] for k in options} == options
    assert WeightSharingWrapper.from_config(config).get_config() == config


@pytest.mark.parametrize("method", ["hessian", "ecsq"])
def test_rate_distortion_keras_save_load_gives_equal_predictions(tmp_path, method):
    x, y = _data(n=32)
    model = _compile(
        share_weights(
            _convnet(prune_fraction=0.5),
            bits=3,
            method=method,
            hessian_data=(x, y),
            hessian_batches=1,
            loss="sparse_categorical_crossentropy",
        ),
        run_eagerly=True,
    )
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path = str(tmp_path / f"{method}.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_layer("d1").method == method
    np.testing.assert_array_equal(
        loaded.get_layer("d1").indices.numpy(), model.get_layer("d1").indices.numpy()
    )
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=OUTPUT_ATOL
    )


BAD_RD_ARGS = {
    "method": (dict(method="lloyd"), "method"),
    "negative-rate": (dict(method="ecsq", rate=-0.1), "rate"),
    "bool-rate": (dict(method="ecsq", rate=True), "rate"),
    "target-too-big": (dict(method="ecsq", target_bits=9), "target_bits"),
    "rate-and-target": (dict(method="ecsq", rate=0.1, target_bits=2), "not both"),
    "rate-for-kmeans": (dict(rate=0.1), "ecsq"),
    "random-init": (dict(method="ecsq", init="random"), "init"),
}


@pytest.mark.parametrize("kwargs, match", BAD_RD_ARGS.values(), ids=BAD_RD_ARGS.keys())
def test_bad_rate_distortion_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WeightSharingWrapper(keras.layers.Dense(3), **kwargs)
    with pytest.raises(ValueError, match=match):
        share_weights(_convnet(), **kwargs)


def test_hessian_needs_importance():
    layer = _pruned_dense()
    with pytest.raises(ValueError, match="importance"):
        WeightSharingWrapper(layer, method="hessian").build((None, 30))
    with pytest.raises(ValueError, match="single layer"):
        share_weights(_pruned_dense(), method="hessian")
    with pytest.raises(ValueError, match="shape"):
        WeightSharingWrapper(
            _pruned_dense(), method="hessian", importance=np.ones((2, 2))
        ).build((None, 30))
