"""Trained ternary quantization: tfedge.keras.ternarize and TernaryWrapper."""

from __future__ import annotations

import re
import warnings

import keras
import numpy as np
import pytest

from tests.keras import _distribute
from tfedge.keras import _ternary
from tfedge.keras._ternary import SCALE_FLOOR, TernaryWrapper, ternarize

_distribute.configure_two_cpus()

# float32 matmul/conv outputs of the same kernel computed through different call paths
# (wrapper vs. plain layer, before vs. after a .keras round trip) agree to rounding.
OUTPUT_ATOL = 1e-6


def _data(seed=0, n=16, shape=(6, 6, 1), classes=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype("float32")
    y = rng.integers(0, classes, size=n)
    return x, y


def _convnet(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
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


def _dense(units=5, inputs=4, seed=0):
    keras.utils.set_random_seed(seed)
    layer = keras.layers.Dense(units, name="fc")
    layer.build((None, inputs))
    return layer


# --- the forward value and the paper's gradients -------------------------------------


def test_kernel_holds_only_minus_wn_zero_plus_wp():
    latent = np.array([[-1.0, -0.04, 0.0], [0.05, 0.3, -0.2]], dtype="float32")
    got = keras.ops.convert_to_numpy(_ternary.ternary_kernel(latent, 0.7, 0.4, 0.1))
    # delta = 0.1 * max|w| = 0.1; |w| <= 0.1 -> 0.
    np.testing.assert_array_equal(
        got, np.array([[-0.4, 0.0, 0.0], [0.0, 0.7, -0.4]], dtype="float32")
    )


def test_threshold_is_relative_to_the_layer_maximum():
    latent = np.array([2.0, 0.19, 0.21, -0.21, -0.19], dtype="float32")
    got = keras.ops.convert_to_numpy(_ternary.ternary_kernel(latent, 1.0, 1.0, 0.1))
    np.testing.assert_array_equal(got, [1.0, 0.0, 1.0, -1.0, 0.0])


def test_gradients_are_the_papers():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    latent = tf.Variable(rng.normal(size=(7, 5)).astype("float32"))
    wp, wn = tf.Variable(0.8), tf.Variable(0.3)
    upstream = rng.normal(size=(7, 5)).astype("float32")
    t = 0.3
    with tf.GradientTape() as tape:
        kernel = _ternary.ternary_kernel(latent, wp, wn, t)
        loss = tf.reduce_sum(kernel * upstream)  # dL/dkernel = upstream
    g_latent, g_wp, g_wn = tape.gradient(loss, [latent, wp, wn])

    w = latent.numpy()
    delta = t * np.abs(w).max()
    pos, neg = w > delta, w < -delta
    # eq. 8: scaled by Wp / Wn on the ternary weights, passed through in the zero band.
    expected = np.where(pos, 0.8, np.where(neg, 0.3, 1.0)) * upstream
    np.testing.assert_allclose(g_latent.numpy(), expected, rtol=1e-6)
    # eq. 7: each scale gets the sum of its weights' gradients (Wn enters as -Wn).
    np.testing.assert_allclose(g_wp.numpy(), upstream[pos].sum(), rtol=1e-5)
    np.testing.assert_allclose(g_wn.numpy(), -upstream[neg].sum(), rtol=1e-5)
    assert pos.any() and neg.any() and (~pos & ~neg).any()


def test_wrapper_computes_with_the_ternary_kernel():
    layer = _dense()
    wrapper = TernaryWrapper(layer, threshold=0.2)
    x = np.random.default_rng(2).normal(size=(3, 4)).astype("float32")
    out = keras.ops.convert_to_numpy(wrapper(x))
    kernel = wrapper.ternary_values()
    assert len(np.unique(kernel)) == 3
    np.testing.assert_allclose(
        out, x @ kernel + layer.bias.numpy(), atol=OUTPUT_ATOL, rtol=0
    )


def test_initial_scales_are_the_mean_magnitudes():
    layer = _dense(units=50, inputs=40)
    w = layer.kernel.numpy()
    wrapper = TernaryWrapper(layer, threshold=0.05)
    wrapper.build((None, 40))
    delta = 0.05 * np.abs(w).max()
    np.testing.assert_allclose(
        float(wrapper.wp.numpy()), w[w > delta].mean(), rtol=1e-6
    )
    np.testing.assert_allclose(
        float(wrapper.wn.numpy()), -w[w < -delta].mean(), rtol=1e-6
    )


def test_fixed_initial_scale():
    wrapper = TernaryWrapper(_dense(), initial_scale=1.0)
    wrapper.build((None, 4))
    assert float(wrapper.wp.numpy()) == 1.0 and float(wrapper.wn.numpy()) == 1.0


# --- scales kept positive -----------------------------------------------------------


def test_optimizer_cannot_drive_a_scale_negative_and_strip_reports_it():
    wrapper = TernaryWrapper(_dense())
    wrapper.build((None, 4))
    opt = keras.optimizers.SGD(learning_rate=10.0)
    opt.apply_gradients([(keras.ops.ones(()), wrapper.wp)])  # wp - 10 < 0
    assert float(wrapper.wp.numpy()) == pytest.approx(SCALE_FLOOR)
    kernel = wrapper.ternary_values()
    assert kernel.max() == pytest.approx(SCALE_FLOOR) and kernel.min() < 0
    assert _warned(wrapper.tfedge_strip, r"Wp = .* is at its floor")


def _warned(fn, pattern):
    # pytest.warns re-emits the DeprecationWarning numpy 2 raises inside Keras'
    # convert_to_numpy without its module, which the ignore list then misses: record.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return any(
        issubclass(w.category, UserWarning) and re.search(pattern, str(w.message))
        for w in caught
    )


# --- model.fit, strip, selection -----------------------------------------------------


def test_ternarize_excludes_first_and_last_kernel_layers_by_default():
    model = ternarize(_convnet())
    kinds = {layer.name: type(layer).__name__ for layer in model.layers}
    assert kinds == {
        "c1": "Conv2D",
        "c2": "TernaryWrapper",
        "flat": "Flatten",
        "d1": "TernaryWrapper",
        "d2": "Dense",
    }


@pytest.mark.parametrize(
    "layers, wrapped",
    [
        (["c1", "d2"], {"c1", "d2"}),
        (lambda layer: isinstance(layer, keras.layers.Dense), {"d1", "d2"}),
    ],
    ids=["names", "predicate"],
)
def test_ternarize_by_name_or_predicate(layers, wrapped):
    model = ternarize(_convnet(), layers=layers)
    got = {lyr.layer.name for lyr in model.layers if isinstance(lyr, TernaryWrapper)}
    assert got == wrapped


def test_exclude_first_last_false_wraps_every_kernel_layer():
    model = ternarize(_convnet(), exclude_first_last=False)
    assert sum(isinstance(lyr, TernaryWrapper) for lyr in model.layers) == 4


def test_fit_trains_latent_and_scales_and_leaves_the_original_alone():
    original = _convnet()
    before = [w.copy() for w in original.get_weights()]
    model = ternarize(original, threshold=0.1)
    wrapper = model.get_layer("d1")
    wp0, latent0 = float(wrapper.wp.numpy()), wrapper.layer.kernel.numpy().copy()
    x, y = _data()
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    loss0 = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < loss0
    assert float(wrapper.wp.numpy()) != wp0
    assert not np.array_equal(wrapper.layer.kernel.numpy(), latent0)
    for a, b in zip(before, original.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_ternarize_copies_the_trained_weights():
    original = _convnet()
    model = ternarize(original)
    np.testing.assert_array_equal(
        model.get_layer("c2").layer.kernel.numpy(),
        original.get_layer("c2").kernel.numpy(),
    )
    np.testing.assert_array_equal(
        model.get_layer("c1").kernel.numpy(), original.get_layer("c1").kernel.numpy()
    )


def test_tfedge_strip_gives_the_plain_layer_with_three_values():
    model = ternarize(_convnet(), threshold=0.3)
    x, _ = _data()
    wrapper = model.get_layer("c2")
    plain = wrapper.tfedge_strip()
    assert type(plain) is keras.layers.Conv2D and plain.name == "c2"
    values = np.unique(plain.kernel.numpy())
    np.testing.assert_array_equal(
        values, np.array([-wrapper.wn.numpy(), 0.0, wrapper.wp.numpy()], "float32")
    )
    np.testing.assert_array_equal(plain.bias.numpy(), wrapper.layer.bias.numpy())
    # Rebuild the model from stripped layers: identical predictions.
    layers = [
        lyr.tfedge_strip() if isinstance(lyr, TernaryWrapper) else lyr
        for lyr in model.layers
    ]
    stripped = keras.Sequential([keras.Input((6, 6, 1)), *layers])
    np.testing.assert_allclose(
        stripped.predict(x, verbose=0), model.predict(x, verbose=0), atol=OUTPUT_ATOL
    )


def test_strip_gives_a_plain_model_with_equal_predictions():
    from tfedge.keras import strip

    model = ternarize(_convnet(), threshold=0.2)
    x, _ = _data()
    plain = strip(model)
    assert [type(lyr).__name__ for lyr in plain.layers] == [
        "Conv2D",
        "Conv2D",
        "Flatten",
        "Dense",
        "Dense",
    ]
    assert [lyr.name for lyr in plain.layers] == ["c1", "c2", "flat", "d1", "d2"]
    for name in ("c2", "d1"):
        wrapper = model.get_layer(name)
        np.testing.assert_array_equal(
            np.unique(plain.get_layer(name).kernel.numpy()),
            np.array([-wrapper.wn.numpy(), 0.0, wrapper.wp.numpy()], "float32"),
        )
    np.testing.assert_allclose(
        plain.predict(x, verbose=0), model.predict(x, verbose=0), atol=OUTPUT_ATOL
    )


def test_functional_and_nested_models():
    keras.utils.set_random_seed(3)
    inner = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(6, name="in1")], name="inner"
    )
    inputs = keras.Input((5,))
    h = keras.layers.Dense(5, name="pre")(inputs)
    h = inner(h)
    outputs = keras.layers.Dense(2, name="post")(h)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    tern = ternarize(model, layers=["in1", "post"])
    out = tern.predict(x, verbose=0)
    assert out.shape == (4, 2)
    assert isinstance(tern.get_layer("post"), TernaryWrapper)
    nested = [lyr for lyr in tern.layers if isinstance(lyr, keras.Model)]
    assert isinstance(nested[0].layers[0], TernaryWrapper)


# --- serialization -------------------------------------------------------------------


def test_config_round_trip():
    wrapper = TernaryWrapper(
        keras.layers.Dense(3, name="fc"), threshold=0.2, initial_scale=0.5, name="t"
    )
    config = wrapper.get_config()
    assert config["threshold"] == 0.2 and config["initial_scale"] == 0.5
    clone = TernaryWrapper.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(wrapper)
    )
    assert type(restored) is TernaryWrapper and restored.get_config() == config


def test_keras_save_load_gives_equal_predictions(tmp_path):
    model = ternarize(_convnet(), threshold=0.1)
    x, y = _data()
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,  # no tracing cost: graph mode is covered by the fit test
    )
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = str(tmp_path / "ternary.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("c2"), TernaryWrapper)
    np.testing.assert_array_equal(
        loaded.get_layer("c2").wn.numpy(), model.get_layer("c2").wn.numpy()
    )
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=OUTPUT_ATOL
    )


# --- MirroredStrategy ----------------------------------------------------------------


def _mirrored_check():
    import tensorflow as tf

    x, y = _data(n=16)
    base = _convnet()

    def train(strategy):
        with strategy.scope():
            model = ternarize(base, threshold=0.1)
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
    w = mirrored.get_layer("c2")
    assert len(np.unique(w.tfedge_strip().kernel.numpy())) <= 3


def test_mirrored_strategy_on_two_cpus_matches_one_device():
    if _distribute.have_two_cpus():
        _mirrored_check()
    else:
        _distribute.run_in_fresh_process(
            "from tests.keras.test_ternary import _mirrored_check; _mirrored_check()"
        )


# --- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1.5, -0.1, True, "0.1", float("nan")])
def test_threshold_outside_open_interval(threshold):
    with pytest.raises(ValueError, match=r"Expected `threshold` in \(0, 1\)"):
        TernaryWrapper(keras.layers.Dense(2), threshold=threshold)
    with pytest.raises(ValueError, match=r"Expected `threshold` in \(0, 1\)"):
        ternarize(_convnet(), threshold=threshold)


@pytest.mark.parametrize("initial_scale", ["max", 0.0, -1.0, float("inf")])
def test_bad_initial_scale(initial_scale):
    with pytest.raises(ValueError, match="Expected `initial_scale`"):
        TernaryWrapper(keras.layers.Dense(2), initial_scale=initial_scale)


def test_layer_without_kernel():
    flat = keras.layers.Flatten()
    flat.build((None, 3, 3))
    with pytest.raises(ValueError, match=r"has none\. Leave it unwrapped"):
        TernaryWrapper(flat)
    unbuilt = TernaryWrapper(keras.layers.Flatten(name="f"))
    with pytest.raises(ValueError, match=r"layer='f'.*has none"):
        unbuilt.build((None, 3, 3))
    with pytest.raises(ValueError, match=r"layers \['flat'\] have no `kernel`"):
        ternarize(_convnet(), layers=["c2", "flat"])


def test_all_zero_kernel():
    layer = _dense()
    layer.kernel.assign(np.zeros((4, 5), "float32"))
    with pytest.raises(ValueError, match="kernel of layer 'fc' is all zeros"):
        TernaryWrapper(layer)
    model = _convnet()
    model.get_layer("d1").kernel.assign(np.zeros((24, 8), "float32"))
    with pytest.raises(ValueError, match="kernel of layer 'd1' is all zeros"):
        ternarize(model)


def test_unknown_layer_name_and_nothing_to_wrap():
    with pytest.raises(ValueError, match=r"no layer named \['nope'\]"):
        ternarize(_convnet(), layers=["nope"])
    with pytest.raises(ValueError, match="Use layers=\\['c1'\\]"):
        ternarize(_convnet(), layers="c1")
    two = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="a")])
    with pytest.raises(ValueError, match="exclude_first_last=False"):
        ternarize(two)


def test_subclassed_and_unbuilt_models_are_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = keras.layers.Dense(2)

        def call(self, x):
            return self.fc(x)

    with pytest.raises(ValueError, match="subclassed model"):
        ternarize(Net())
    with pytest.raises(ValueError, match="needs a built model"):
        ternarize(keras.Sequential([keras.layers.Dense(2)]))
