"""Core pruning tests, backend-agnostic: run under TensorFlow here and under JAX by
tests/keras/test_pruning_backends.py (a subprocess with KERAS_BACKEND=jax)."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest

import tfedge.keras as tk

BACKEND = keras.backend.backend()

# Stored weights re-masked by an optimizer constraint (see PruningWrapper): every
# backend except JAX, whose trainer applies optimizers to purged variables.
LATENT_EXACT = BACKEND != "jax"


def _data(n=128, d=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (np.abs(x[:, :classes]).argmax(axis=1)).astype("int32")
    return x, y


def _mlp(name="mlp"):
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(32, activation="relu", name="fc1"),
            keras.layers.Dense(16, activation="relu", name="fc2"),
            keras.layers.Dense(3, name="out"),
        ],
        name=name,
    )


def _compile(model, optimizer):
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _wrappers(model):
    return [x for x in model.layers if isinstance(x, tk.PruningWrapper)]


# --- every prunable layer type --------------------------------------------------------

LAYERS = {
    "dense": (lambda: keras.layers.Dense(6), (5, 7)),
    "einsum_dense": (
        lambda: keras.layers.EinsumDense("ab,bc->ac", output_shape=6),
        (5, 7),
    ),
    "embedding": (lambda: keras.layers.Embedding(20, 4), None),
    "conv1d": (lambda: keras.layers.Conv1D(4, 3), (2, 9, 3)),
    "conv2d": (lambda: keras.layers.Conv2D(4, 3), (2, 8, 8, 3)),
    "conv3d": (lambda: keras.layers.Conv3D(2, 2), (1, 4, 4, 4, 2)),
    "conv1d_transpose": (lambda: keras.layers.Conv1DTranspose(3, 3), (2, 6, 2)),
    "conv2d_transpose": (lambda: keras.layers.Conv2DTranspose(3, 3), (2, 5, 5, 2)),
    "conv3d_transpose": (lambda: keras.layers.Conv3DTranspose(2, 2), (1, 3, 3, 3, 2)),
    "depthwise_conv1d": (lambda: keras.layers.DepthwiseConv1D(3), (2, 9, 4)),
    "depthwise_conv2d": (lambda: keras.layers.DepthwiseConv2D(3), (2, 7, 7, 4)),
    "separable_conv1d": (lambda: keras.layers.SeparableConv1D(5, 3), (2, 9, 4)),
    "separable_conv2d": (lambda: keras.layers.SeparableConv2D(5, 3), (2, 7, 7, 4)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer_type_prunes_and_strips(name):
    make, shape = LAYERS[name]
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 20, size=(3, 5)) if shape is None else rng.normal(size=shape)
    x = x.astype("int32" if shape is None else "float32")
    wrapper = tk.prune(make(), schedule=tk.ConstantSparsity(0.5, 0))
    dense_out = keras.ops.convert_to_numpy(wrapper(x))
    wrapper.prune_now(0.5)
    assert wrapper.sparsity() == pytest.approx(0.5, abs=0.05)
    pruned_out = keras.ops.convert_to_numpy(wrapper(x))
    assert not np.allclose(dense_out, pruned_out)
    plain = tk.strip(wrapper)
    assert type(plain) is type(wrapper.layer) and plain.name == wrapper.name
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(plain(x)), pruned_out, atol=1e-5
    )
    for v, mask in zip(wrapper.pruned_variables, wrapper.masks, strict=True):
        baked = keras.ops.convert_to_numpy(
            next(p for p in plain.weights if p.name == v.name)
        )
        assert np.all(baked[keras.ops.convert_to_numpy(mask) == 0] == 0)


# --- model.fit ------------------------------------------------------------------------

OPTIMIZERS = {
    "sgd_momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    "adam": lambda: keras.optimizers.Adam(0.01),
    "adamw_decay": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1),
    "sgd_decay": lambda: keras.optimizers.SGD(0.05, momentum=0.9, weight_decay=0.01),
}


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_fit_keeps_pruned_weights_exactly_zero(opt):
    x, y = _data()
    # Dense training first so that momentum/Adam state is non-zero when pruning starts.
    schedule = tk.PolynomialDecay(0.0, 0.75, begin_step=4, end_step=12, frequency=4)
    model = _compile(tk.prune(_mlp(), schedule=schedule), OPTIMIZERS[opt]())
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)  # 16 steps
    for w in _wrappers(model):
        assert int(keras.ops.convert_to_numpy(w.pruning_step)) == 16
        assert w.sparsity() == pytest.approx(0.75, abs=1.0 / w.masks[0].shape[0])
        mask = keras.ops.convert_to_numpy(w.masks[0])
        effective = w.effective_weights()[0]
        assert np.all(effective[mask == 0] == 0.0)
        if LATENT_EXACT:
            latent = keras.ops.convert_to_numpy(w.pruned_variables[0])
            assert np.all(latent[mask == 0] == 0.0)
        assert np.all(effective[mask == 1] != 0.0)


def test_first_batch_is_step_zero_and_masks_follow_schedule():
    x, y = _data(n=64)
    schedule = tk.IterativePruning([0.5, 0.75], round_steps=2, begin_step=1)
    model = _compile(tk.prune(_mlp(), schedule=schedule), "sgd")
    w = _wrappers(model)[0]
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if BACKEND == "jax":
                # The JAX trainer keeps variables outside the model during an epoch.
                self.model.jax_state_sync()
            seen.append(w.sparsity())

    model.fit(
        x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[Record()]
    )
    expected = [0.0, 0.5, 0.5, 0.75, 0.75, 0.75, 0.75, 0.75]
    assert seen == pytest.approx(expected, abs=0.01)


def test_logger_callback_records_sparsity():
    x, y = _data(n=32)
    model = _compile(
        tk.prune(_mlp(), schedule=tk.ConstantSparsity(0.6, 0, frequency=1)), "adam"
    )
    history = model.fit(
        x, y, batch_size=16, epochs=2, verbose=0, callbacks=[tk.PruningLogger()]
    )
    assert history.history["sparsity/fc1"] == pytest.approx([0.6, 0.6], abs=0.01)
    plain = _compile(_mlp(), "adam")
    with pytest.raises(ValueError, match="has no PruningWrapper"):
        plain.fit(x, y, epochs=1, verbose=0, callbacks=[tk.PruningLogger()])


# --- model kinds and schedules per layer ----------------------------------------------


def _functional_with_nested():
    keras.utils.set_random_seed(2)
    inner = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(12, activation="relu", name="inner_fc"),
        ],
        name="block",
    )
    inp = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu", name="fc1")(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = inner(h)
    out = keras.layers.Dense(3, name="out")(h)
    return keras.Model(inp, out, name="func")


def test_functional_nested_prune_leaves_input_model_alone():
    model = _functional_with_nested()
    x, y = _data(n=32)
    before = [w.copy() for w in model.get_weights()]
    ref = model.predict(x, verbose=0)
    pruned = tk.prune(model, schedule=tk.ConstantSparsity(0.5, 0, frequency=1))
    names = {
        layer.name
        for layer in pruned.layers + pruned.get_layer("block").layers
        if isinstance(layer, tk.PruningWrapper)
    }
    assert names == {"fc1", "inner_fc", "out"}
    assert isinstance(pruned.get_layer("bn"), keras.layers.BatchNormalization)
    np.testing.assert_allclose(pruned.predict(x, verbose=0), ref, atol=1e-5)
    _compile(pruned, "adam").fit(x, y, epochs=1, batch_size=16, verbose=0)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not any(isinstance(x, tk.PruningWrapper) for x in model.layers)


def test_dict_and_callable_schedules():
    model = _mlp()
    by_dict = tk.prune(model, schedule={"fc1": tk.ConstantSparsity(0.9, 0)})
    assert [type(x).__name__ for x in by_dict.layers] == [
        "PruningWrapper",
        "Dense",
        "Dense",
    ]
    by_fn = tk.prune(
        model,
        schedule=lambda layer: tk.ConstantSparsity(0.5, 0) if layer.units > 3 else None,
    )
    assert [x.name for x in _wrappers(by_fn)] == ["fc1", "fc2"]


def test_bad_prune_arguments():
    model = _mlp()
    sched = tk.ConstantSparsity(0.5, 0)
    with pytest.raises(ValueError, match="names layer 'nope'.*Layers: \\['fc1'"):
        tk.prune(model, schedule={"nope": sched})
    with pytest.raises(ValueError, match="Expected `criterion` in"):
        tk.prune(model, schedule=sched, criterion="random")
    with pytest.raises(ValueError, match="Expected `schedule` to be"):
        tk.prune(model, schedule=0.5)
    pruned = tk.prune(model, schedule=sched)
    with pytest.raises(ValueError, match="already pruned: layer 'fc1'"):
        tk.prune(pruned, schedule=sched)
    with pytest.raises(ValueError, match="already a PruningWrapper"):
        tk.PruningWrapper(pruned.layers[0], schedule=sched)
    with pytest.raises(ValueError, match="'lstm' \\(LSTM\\) cannot be pruned"):
        tk.prune(keras.layers.LSTM(4, name="lstm"), schedule=sched)
    func = _functional_with_nested()
    with pytest.raises(
        ValueError, match="'bn' \\(BatchNormalization\\) cannot be pruned"
    ):
        tk.prune(func, schedule={"bn": sched})
    with pytest.raises(ValueError, match="needs a Hessian estimate"):
        tk.prune(model, schedule=sched, criterion="obd")


class ScaledLayer(keras.layers.Layer):
    """A custom layer that declares its prunable weight through the protocol."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 4), name="w")
        self.gain = self.add_weight(shape=(), initializer="ones", name="gain")

    def call(self, x):
        return keras.ops.matmul(x, self.w) * self.gain

    def tfedge_prunable_weights(self):
        return [self.w]


class SubclassedNet(keras.Model):
    def __init__(self):
        super().__init__()
        self.fc = tk.prune(keras.layers.Dense(8), schedule=tk.ConstantSparsity(0.5, 0))
        self.head = tk.prune(ScaledLayer(), schedule=tk.ConstantSparsity(0.5, 0))

    def call(self, x, training=None):
        # Keras passes `training` only to models whose `call` accepts it, and the JAX
        # trainer calls `call` directly (no call context): pass it on explicitly.
        return self.head(self.fc(x, training=training), training=training)


def test_custom_protocol_and_subclassed_model():
    x, y = _data(n=32)
    model = _compile(SubclassedNet(), "adam")
    model.fit(x, y % 4, epochs=1, batch_size=16, verbose=0)
    assert model.fc.sparsity() == pytest.approx(0.5)
    assert model.head.sparsity() == pytest.approx(0.5)
    assert [v.name for v in model.head.pruned_variables] == ["w"]
    with pytest.raises(ValueError, match="subclassed model"):
        tk.prune(SubclassedNet(), schedule=tk.ConstantSparsity(0.5, 0))
    with pytest.raises(ValueError, match="subclassed model .* cannot be rebuilt"):
        tk.strip(model)
    plain_head = tk.strip(model.head)
    assert isinstance(plain_head, ScaledLayer) and plain_head.built


# --- serialization --------------------------------------------------------------------


def test_wrapper_config_round_trip():
    wrapper = tk.PruningWrapper(
        keras.layers.Conv2D(3, 2, name="c"),
        schedule=tk.PolynomialDecay(0.1, 0.8, 0, 100, power=2, frequency=10),
        criterion="obd",
    )
    config = wrapper.get_config()
    again = tk.PruningWrapper.from_config(config)
    assert again.get_config() == config
    assert again.schedule == wrapper.schedule and again.criterion == "obd"


def test_keras_save_mid_pruning_and_resume(tmp_path):
    x, y = _data(n=64)
    schedule = tk.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=16, frequency=2)
    model = _compile(tk.prune(_functional_with_nested(), schedule=schedule), "adam")
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)  # 4 of 16 steps
    path = os.path.join(tmp_path, "mid.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )
    pairs = list(zip(_wrappers(model), _wrappers(loaded), strict=True))
    for a, b in pairs:
        assert int(keras.ops.convert_to_numpy(b.pruning_step)) == 4
        assert b.schedule == a.schedule
        for ma, mb in zip(a.masks, b.masks, strict=True):
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(ma), keras.ops.convert_to_numpy(mb)
            )
    for m in (model, loaded):
        m.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    for a, b in pairs:
        assert a.sparsity() == pytest.approx(0.8, abs=0.01)
        for ma, mb in zip(a.masks, b.masks, strict=True):
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(ma), keras.ops.convert_to_numpy(mb)
            )
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )


# --- strip ----------------------------------------------------------------------------


def test_strip_gives_plain_layers_with_exact_zeros():
    x, y = _data(n=32)
    model = _compile(
        tk.prune(_functional_with_nested(), schedule=tk.ConstantSparsity(0.9, 0)),
        "adam",
    )
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    plain = tk.strip(model)
    every = plain.layers + plain.get_layer("block").layers
    assert not any(hasattr(layer, "tfedge_strip") for layer in every)
    assert [x.name for x in plain.layers] == [x.name for x in model.layers]
    np.testing.assert_allclose(
        plain.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )
    for name in ("fc1", "out"):
        kernel = keras.ops.convert_to_numpy(plain.get_layer(name).kernel)
        assert np.mean(kernel == 0.0) == pytest.approx(0.9, abs=0.02)
    # The input model is still usable and still pruning.
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert _wrappers(model)[0].sparsity() == pytest.approx(0.9, abs=0.02)


# --- OBD ------------------------------------------------------------------------------


OBD_MC_RTOL = 0.35


def _obd_case():
    """y = x0 + x1, x0 ~ N(0, 3^2), x1 ~ N(0, 0.1^2): the x1 weight matters little."""
    rng = np.random.default_rng(3)
    x = np.stack([3.0 * rng.normal(size=256), 0.1 * rng.normal(size=256)], 1).astype(
        "float32"
    )
    y = (x[:, 0] + x[:, 1])[:, None].astype("float32")
    layer = keras.layers.Dense(1, use_bias=False, name="lin")
    model = keras.Sequential([keras.Input((2,)), layer])
    layer.kernel.assign(np.array([[0.8], [1.2]], dtype="float32"))
    return model, x, y


def test_obd_prunes_by_saliency_not_magnitude():
    model, x, y = _obd_case()
    sched = tk.ConstantSparsity(0.5, 0)
    magnitude = tk.prune(model, schedule=sched)
    magnitude.layers[0].prune_now(0.5)
    np.testing.assert_array_equal(
        magnitude.layers[0].effective_weights()[0][:, 0] != 0, [False, True]
    )
    obd = tk.prune(
        model, schedule=sched, criterion="obd", hessian_data=(x, y), loss="mse"
    )
    w = obd.layers[0]
    h = keras.ops.convert_to_numpy(w.hessians[0])[:, 0]
    assert h[0] > 100 * h[1] > 0
    w.prune_now(0.5)
    np.testing.assert_array_equal(w.effective_weights()[0][:, 0] != 0, [True, False])
    # For squared error the Gauss-Newton diagonal is the exact Hessian, 2 E[x_i^2]. The
    # estimate is Monte-Carlo over 256 sampled targets: relative standard deviation
    # sqrt(2 * E[x^4] / E[x^2]^2 / 256) ~ 0.15, so allow about two of them.
    np.testing.assert_allclose(h, 2 * np.mean(x**2, axis=0), rtol=OBD_MC_RTOL)
    with pytest.raises(ValueError, match="Use method='empirical_fisher'"):
        tk.estimate_hessian(obd, (x, y), loss=keras.losses.Huber())
    tk.estimate_hessian(
        obd, (x, y), loss=keras.losses.Huber(), method="empirical_fisher"
    )
    with pytest.raises(ValueError, match="Expected `method` in"):
        tk.estimate_hessian(obd, (x, y), loss="mse", method="exact")


def test_obd_trains_in_fit_and_needs_an_estimate():
    x, y = _data(n=64)
    sched = tk.ConstantSparsity(0.7, 0, frequency=2)
    model = tk.prune(
        _mlp(),
        schedule=sched,
        criterion="obd",
        hessian_data=(x, y),
        loss="sparse_categorical_crossentropy",
    )
    estimates = tk.estimate_hessian(
        model, (x, y), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    assert set(estimates) == {"fc1", "fc2", "out"} and all(
        v > 0 for v in estimates.values()
    )
    _compile(model, "adam").fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert _wrappers(model)[0].sparsity() == pytest.approx(0.7, abs=0.01)
    fresh = keras.Sequential(
        [
            keras.Input((8,)),
            tk.prune(keras.layers.Dense(3), schedule=sched, criterion="obd"),
        ]
    )
    with pytest.raises(ValueError, match="has no Hessian estimate"):
        _compile(fresh, "sgd").fit(x, y, epochs=1, verbose=0)


# --- sensitivity ----------------------------------------------------------------------


def test_sensitivity_and_choose_sparsity(capsys):
    x, y = _data(n=192)
    model = _compile(_mlp(), keras.optimizers.Adam(0.03))
    model.fit(x, y, batch_size=64, epochs=8, verbose=0)
    sparsities = (0.3, 0.6, 0.9)
    table = tk.sensitivity(model, (x, y), sparsities=sparsities)
    assert set(table.scores) == {"fc1", "fc2", "out"}
    assert table.baseline > 0.7
    for row in table.scores.values():
        assert len(row) == 3 and row[-1] <= table.baseline
    # Scores are reproducible: prune_now(0.0) restored each layer between runs.
    capsys.readouterr()
    again = tk.sensitivity(model, (x, y), sparsities=sparsities, verbose=2)
    assert again.scores == table.scores and again.baseline == table.baseline
    assert capsys.readouterr().err.startswith("tfedge: sensitivity: 9 done in ")
    text = table.table()
    assert str(table) == text
    assert text.splitlines()[0].split() == ["layer", "30%", "60%", "90%"]
    assert [ln.split()[0] for ln in text.splitlines()[2:5]] == ["fc1", "fc2", "out"]
    assert f"unpruned: {table.baseline:.4f}" in text
    generous = tk.choose_sparsity(table, max_loss=1.0)
    assert generous == {"fc1": 0.9, "fc2": 0.9, "out": 0.9}
    strict = tk.choose_sparsity(table, max_loss=0.0)
    for name, s in strict.items():
        row = dict(zip(sparsities, table.scores[name], strict=True))
        assert s == 0.0 or row[s] >= table.baseline
    with pytest.raises(ValueError, match="Expected `max_loss` >= 0"):
        tk.choose_sparsity(table, max_loss=-0.1)
    with pytest.raises(ValueError, match="Expected `sparsities` in \\[0, 1\\)"):
        tk.sensitivity(model, (x, y), sparsities=(0.5, 1.0))
    fig = tk.plot_sensitivity(table)
    assert len(fig.axes[0].lines) == 3 + 1


def test_strip_bakes_positive_zeros():
    # A pruned negative weight times a 0 mask is -0.0; strip must give +0.0 so that a
    # lossless packer sees one zero value, not two.
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, name="fc")])
    pruned = tk.prune(model, schedule=tk.ConstantSparsity(0.75, 0))
    pruned.layers[0].prune_now(0.75)
    kernel = tk.strip(pruned).get_layer("fc").kernel.numpy()
    zeros = kernel == 0
    assert zeros.mean() >= 0.74
    assert not np.any(np.signbit(kernel[zeros]))
