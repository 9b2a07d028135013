"""Low-rank layers and `factorize` (Zhang et al. 2015) on small synthetic models."""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest

from tfedge.keras import (
    LowRankConv2D,
    LowRankDense,
    factorize,
    multiply_adds,
    select_ranks,
)

# float32 products of two factors against one kernel: a few ulps of the activations.
EXACT_ATOL = 1e-4
# Nonlinear reconstruction must beat the weights-only SVD by a clear margin on inputs
# whose statistics SVD ignores (measured over seeds 5-8: 0.35-0.61 of the SVD error).
NONLINEAR_VS_SVD = 0.8
# Asymmetric must beat symmetric at the end of a 4-layer stack, where the errors of the
# earlier layers have accumulated (measured over seeds 5-8: 0.88-0.93).
ASYMMETRIC_VS_SYMMETRIC = 0.95


def _smooth_images(n: int, size: int, channels: int, seed: int) -> np.ndarray:
    """Spatially correlated images: low-frequency structure, as real images have."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(n, size // 2 + 2, size // 2 + 2, channels))
    up = np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2)[:, :size, :size]
    smooth = (up + np.roll(up, 1, axis=1) + np.roll(up, 1, axis=2)) / 3
    return (smooth + 0.1 * rng.normal(size=smooth.shape)).astype(np.float32)


def _conv_stack(seed: int, depth: int = 2, width: int = 16) -> keras.Model:
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((10, 10, 3))]
    for i in range(depth):
        layers.append(
            keras.layers.Conv2D(
                width, 3, padding="same", activation="relu", name=f"c{i}"
            )
        )
    layers += [keras.layers.Flatten(), keras.layers.Dense(5, name="fc")]
    return keras.Sequential(layers, name="stack")


def _mixed_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(12, activation="relu", name="dense"),
            keras.layers.Dense(4, name="logits"),
        ],
        name="mixed",
    )


# --- the layers -----------------------------------------------------------------------

LAYER_CASES = {
    "dense": (LowRankDense, dict(units=6, rank=2, activation="relu"), (4, 5)),
    "dense_3d": (LowRankDense, dict(units=3, rank=1, use_bias=False), (2, 4, 5)),
    "conv": (
        LowRankConv2D,
        dict(filters=6, kernel_size=3, rank=2, padding="same", activation="relu"),
        (2, 7, 7, 3),
    ),
    "conv_strided": (
        LowRankConv2D,
        dict(
            filters=4,
            kernel_size=(3, 2),
            rank=3,
            strides=2,
            dilation_rate=1,
            kernel_regularizer="l2",
        ),
        (2, 9, 8, 2),
    ),
}


@pytest.mark.parametrize("case", list(LAYER_CASES), ids=list(LAYER_CASES))
def test_config_round_trip(case):
    cls, kwargs, _ = LAYER_CASES[case]
    layer = cls(**kwargs)
    config = layer.get_config()
    again = cls.from_config(config)
    assert again.get_config() == config
    for key in kwargs:
        assert key in config, key
    assert config["rank"] == kwargs["rank"]


@pytest.mark.parametrize("case", list(LAYER_CASES), ids=list(LAYER_CASES))
def test_output_shape_matches_call(case):
    cls, kwargs, shape = LAYER_CASES[case]
    layer = cls(**kwargs)
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    y = keras.ops.convert_to_numpy(layer(x))
    assert y.shape == tuple(layer.compute_output_shape(shape))


@pytest.mark.parametrize(
    "ours, theirs, skipped",
    [
        (
            LowRankDense,
            keras.layers.Dense,
            {"lora_rank", "lora_alpha", "quantization_config"},
        ),
        (LowRankConv2D, keras.layers.Conv2D, {"groups", "lora_rank", "lora_alpha"}),
    ],
    ids=["dense", "conv2d"],
)
def test_same_arguments_and_defaults_as_keras(ours, theirs, skipped):
    mine = inspect.signature(ours.__init__).parameters
    keras_params = inspect.signature(theirs.__init__).parameters
    shared = [n for n in keras_params if n not in skipped and n != "kwargs"]
    # Positional order of the shared arguments is Keras's; `rank` is keyword-only.
    assert [n for n in mine if n in shared] == shared
    for name in shared:
        assert mine[name].default == keras_params[name].default, name
    assert mine["rank"].kind is inspect.Parameter.KEYWORD_ONLY


def test_dense_computes_the_product_of_its_factors():
    layer = LowRankDense(3, rank=2)
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    y = keras.ops.convert_to_numpy(layer(x))
    k1, k2, b = (keras.ops.convert_to_numpy(w) for w in layer.weights)
    np.testing.assert_allclose(y, x @ k1 @ k2 + b, atol=EXACT_ATOL)


def test_save_load_gives_equal_predictions(tmp_path):
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            LowRankConv2D(5, 3, rank=2, activation="relu", name="lrc"),
            keras.layers.Flatten(),
            LowRankDense(3, rank=2, name="lrd"),
        ]
    )
    x = np.random.default_rng(2).normal(size=(4, 6, 6, 2)).astype(np.float32)
    path = tmp_path / "lowrank.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("lrc"), LowRankConv2D)
    assert loaded.get_layer("lrd").rank == 2
    np.testing.assert_array_equal(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_fit_trains_both_factors():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            LowRankConv2D(4, 3, rank=2, activation="relu"),
            keras.layers.Flatten(),
            LowRankDense(2, rank=1),
        ]
    )
    rng = np.random.default_rng(3)
    x = rng.normal(size=(32, 6, 6, 1)).astype(np.float32)
    y = rng.normal(size=(32, 2)).astype(np.float32)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert len(after) == 6
    assert all(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))


# --- factorize: exactness and quality -------------------------------------------------

FULL_RANK_METHODS = {
    "svd": dict(method="svd"),
    "nonlinear": dict(method="nonlinear", asymmetric=False),
    "nonlinear_asymmetric": dict(method="nonlinear", asymmetric=True),
}


@pytest.mark.parametrize("case", list(FULL_RANK_METHODS), ids=list(FULL_RANK_METHODS))
def test_full_rank_is_exact(case):
    model = _mixed_model()
    x = np.random.default_rng(4).normal(size=(48, 8, 8, 2)).astype(np.float32)
    # conv: min(3*3*2, 8) = 8; dense: min(288, 12) = 12; logits: min(12, 4) = 4.
    ranks = {"conv": 8, "dense": 12, "logits": 4}
    with pytest.warns(UserWarning, match="as many"):
        out = factorize(model, ranks=ranks, data=x, **FULL_RANK_METHODS[case])
    assert [type(layer).__name__ for layer in out.layers] == [
        "LowRankConv2D",
        "Flatten",
        "LowRankDense",
        "LowRankDense",
    ]
    np.testing.assert_allclose(
        out.predict(x, verbose=0), model.predict(x, verbose=0), atol=EXACT_ATOL
    )
    # The original is untouched and still a plain model.
    assert type(model.get_layer("conv")) is keras.layers.Conv2D


def _layer_relu_error(model, factorized, name, x) -> float:
    """Mean squared post-ReLU error of one layer's output against the original's."""
    ref = keras.Model(model.inputs, model.get_layer(name).output)
    got = keras.Model(factorized.inputs, factorized.get_layer(name).output)
    diff = keras.ops.convert_to_numpy(ref([x])) - keras.ops.convert_to_numpy(got([x]))
    return float(np.mean(diff**2))


def test_nonlinear_beats_svd_in_response_error():
    model = _conv_stack(seed=5, depth=2, width=16)
    calib = _smooth_images(64, 10, 3, seed=5)
    held_out = _smooth_images(32, 10, 3, seed=6)
    ranks = {"c1": 4}
    errors = {}
    for method in ("svd", "nonlinear"):
        out = factorize(
            model,
            ranks=ranks,
            data=calib,
            method=method,
            asymmetric=False,
            iterations=20,
        )
        errors[method] = _layer_relu_error(model, out, "c1", held_out)
    assert errors["nonlinear"] < NONLINEAR_VS_SVD * errors["svd"], errors


def test_asymmetric_beats_symmetric_on_a_stack():
    model = _conv_stack(seed=8, depth=4, width=16)
    calib = _smooth_images(64, 10, 3, seed=8)
    held_out = _smooth_images(32, 10, 3, seed=108)
    ranks = {"c0": 4, "c1": 4, "c2": 4, "c3": 4}
    errors = {}
    for asymmetric in (False, True):
        out = factorize(
            model,
            ranks=ranks,
            data=calib,
            method="nonlinear",
            asymmetric=asymmetric,
            iterations=20,
        )
        errors[asymmetric] = _layer_relu_error(model, out, "c3", held_out)
    assert errors[True] < ASYMMETRIC_VS_SYMMETRIC * errors[False], errors


def test_nonlinear_solver_never_worse_than_its_linear_start():
    # The solver keeps the best iterate, so more iterations cannot hurt on the
    # calibration data itself.
    model = _conv_stack(seed=9, depth=1, width=12)
    calib = _smooth_images(32, 10, 3, seed=9)
    errors = []
    for iterations in (1, 20):
        out = factorize(
            model,
            ranks={"c0": 3},
            data=calib,
            method="nonlinear",
            asymmetric=False,
            iterations=iterations,
        )
        errors.append(_layer_relu_error(model, out, "c0", calib))
    assert errors[1] <= errors[0] * (1 + 1e-5), errors


# --- factorize: multiply-add accounting and rank selection ----------------------------


def test_multiply_adds_are_counted_exactly():
    model = _mixed_model()
    # conv: 6x6 positions * 3*3*2 * 8; dense: 288 * 12; logits: 12 * 4.
    expected = {"conv": 36 * 18 * 8, "dense": 288 * 12, "logits": 12 * 4}
    assert multiply_adds(model) == expected
    with pytest.warns(UserWarning, match="as many"):
        out = factorize(model, ranks={"conv": 3, "logits": 4}, method="svd")
    assert multiply_adds(out) == {
        "conv": 36 * 3 * (18 + 8),
        "dense": 288 * 12,
        "logits": 4 * (12 + 4),
    }


@pytest.mark.parametrize("speedup", [1.5, 2.0, 3.0], ids=["1.5x", "2x", "3x"])
def test_speedup_target_is_met_and_tight(speedup):
    model = _conv_stack(seed=10, depth=3, width=16)
    x = _smooth_images(32, 10, 3, seed=10)
    before = multiply_adds(model)
    ranks = select_ranks(model, speedup=speedup, data=x)
    out = factorize(model, ranks=ranks, method="svd")
    after = multiply_adds(out)
    achieved = sum(before.values()) / sum(after.values())
    assert achieved >= speedup
    # Greedy stops at the first step that meets the target: undoing its last rank
    # reduction (one rank back on any factorized layer) would miss it.
    for name, rank in ranks.items():
        positions = {"c0": 100, "c1": 100, "c2": 100, "fc": 1}[name]
        rows = {"c0": 27, "c1": 144, "c2": 144, "fc": 1600}[name]
        cols = {"c0": 16, "c1": 16, "c2": 16, "fc": 5}[name]
        assert after[name] == positions * rank * (rows + cols)
    # Greedy stops at the first step that meets the target; its steps are one rank
    # (16,000 multiply-adds here) or a small break-even jump: it cannot overshoot far.
    assert achieved < speedup * 1.1
    # factorize(speedup=...) makes the same choice as select_ranks.
    direct = factorize(model, speedup=speedup, data=x, method="svd")
    assert {n: direct.get_layer(n).rank for n in ranks} == ranks


def test_rank_multiple_keeps_ranks_on_vector_tiles():
    model = _conv_stack(seed=10, depth=3, width=16)
    x = _smooth_images(32, 10, 3, seed=10)
    before = sum(multiply_adds(model).values())
    out = factorize(model, speedup=2.0, data=x, method="svd", rank_multiple=4)
    ranks = {
        layer.name: layer.rank
        for layer in out.layers
        if isinstance(layer, LowRankConv2D | LowRankDense)
    }
    assert ranks and all(r % 4 == 0 for r in ranks.values()), ranks
    assert before / sum(multiply_adds(out).values()) >= 2.0
    # c0 (27 -> 16) breaks even below rank 11: at multiples of 8 only rank 8 is
    # allowed; fc (1600 -> 5) never gets cheaper at rank 8.
    with pytest.raises(ValueError, match=r"at rank 8 .*'fc'.*multiple of 8"):
        select_ranks(model, speedup=50.0, rank_multiple=8)


def test_greedy_prefers_layers_with_redundant_responses():
    # Layer c1's responses live in 2 dimensions (rank-2 kernel): dropping its other
    # components costs no energy, so the greedy cuts it first and hardest.
    model = _conv_stack(seed=11, depth=2, width=16)
    layer = model.get_layer("c1")
    kernel, bias = layer.get_weights()
    flat = kernel.reshape(-1, 16)
    u, s, vt = np.linalg.svd(flat, full_matrices=False)
    layer.set_weights([((u[:, :2] * s[:2]) @ vt[:2]).reshape(kernel.shape), bias])
    x = _smooth_images(32, 10, 3, seed=11)
    # c0: 43,200 multiply-adds; c1: 230,400, then 16,000 per rank. A 3x target over
    # both needs <= 91,200, met exactly by c1 at rank 3 with c0 untouched.
    ranks = select_ranks(model, speedup=3.0, data=x, layers=["c0", "c1"])
    assert ranks == {"c1": 3}


def test_svd_without_data_selects_from_weight_spectrum():
    model = _conv_stack(seed=12, depth=2, width=16)
    ranks = select_ranks(model, speedup=2.0)
    assert ranks and all(1 <= r <= 16 for r in ranks.values())


def test_strip_keeps_low_rank_layers():
    from tfedge.keras import strip

    model = _mixed_model()
    out = factorize(model, ranks={"conv": 3, "dense": 4}, method="svd")
    stripped = strip(out)
    assert isinstance(stripped.get_layer("conv"), LowRankConv2D)
    assert isinstance(stripped.get_layer("dense"), LowRankDense)
    x = np.random.default_rng(14).normal(size=(4, 8, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(
        stripped.predict(x, verbose=0), out.predict(x, verbose=0), atol=EXACT_ATOL
    )


def test_factorized_model_exports_two_ops_per_layer(capsys):
    tf = pytest.importorskip("tensorflow")
    from ai_edge_litert.interpreter import Interpreter

    model = _mixed_model()
    x = np.random.default_rng(13).normal(size=(1, 8, 8, 2)).astype(np.float32)
    out = factorize(model, ranks={"conv": 3, "dense": 4}, method="svd")
    content = tf.lite.TFLiteConverter.from_keras_model(out).convert()
    tf.lite.experimental.Analyzer.analyze(model_content=content)
    ops = capsys.readouterr().out
    # conv -> two CONV_2D; dense -> two FULLY_CONNECTED; logits stays one.
    assert ops.count(" CONV_2D(") == 2
    assert ops.count(" FULLY_CONNECTED(") == 3
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, out.predict(x, verbose=0), atol=EXACT_ATOL)


# --- bad input ------------------------------------------------------------------------


def _data(shape=(8, 8, 8, 2)):
    return np.zeros(shape, np.float32)


BAD_INPUTS = {
    "rank_too_large": (
        dict(ranks={"conv": 9}, method="svd"),
        r"Layer 'conv': expected a rank in \[1, 8\].*Received: ranks\['conv'\]=9",
    ),
    "rank_zero": (dict(ranks={"dense": 0}, method="svd"), r"Layer 'dense'.*\[1, 12\]"),
    "rank_not_int": (
        dict(ranks={"dense": 2.5}, method="svd"),
        r"Layer 'dense'.*integer",
    ),
    "speedup_unreachable": (
        dict(speedup=100.0, method="svd"),
        r"Cannot reach speedup=100.*'conv'.*at most",
    ),
    "speedup_not_above_one": (dict(speedup=1.0, method="svd"), r"greater than 1"),
    "data_wrong_shape": (
        dict(ranks={"conv": 2}, data=_data((8, 8, 8)), method="nonlinear"),
        r"shape \('batch', 8, 8, 2\).*'conv'.*Received: data of shape \(8, 8, 8\)",
    ),
    "data_wrong_count": (
        dict(ranks={"conv": 2}, data=[_data(), _data()], method="nonlinear"),
        r"1 input\(s\) but calibration `data` holds 2",
    ),
    "data_empty": (
        dict(ranks={"conv": 2}, data=_data((0, 8, 8, 2)), method="nonlinear"),
        r"at least one sample",
    ),
    "unsupported_layer": (
        dict(ranks={"flatten": 2}, method="svd"),
        r"Layer 'flatten' \(Flatten\) cannot be factorized.*Dense.*Conv2D",
    ),
    "unsupported_candidate": (
        dict(speedup=2.0, layers=["conv", "flatten"], method="svd"),
        r"Layer 'flatten' \(Flatten\) cannot be factorized",
    ),
    "unknown_layer": (
        dict(ranks={"nope": 2}, method="svd"),
        r"no layer named 'nope' \(in `ranks`\)",
    ),
    "both_ranks_and_speedup": (
        dict(ranks={"conv": 2}, speedup=2.0, method="svd"),
        r"exactly one of `ranks`",
    ),
    "neither": (dict(method="svd"), r"exactly one of `ranks`"),
    "nonlinear_without_data": (
        dict(ranks={"conv": 2}, method="nonlinear"),
        r"needs calibration `data`",
    ),
    "rank_multiple_with_ranks": (
        dict(ranks={"conv": 2}, method="svd", rank_multiple=4),
        r"`rank_multiple` constrains",
    ),
    "bad_method": (dict(ranks={"conv": 2}, method="tucker"), r"Expected `method`"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_raises_a_clear_error(case):
    kwargs, message = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=message):
        factorize(_mixed_model(), **kwargs)


def test_grouped_conv_is_rejected_by_name():
    model = keras.Sequential(
        [keras.Input((6, 6, 4)), keras.layers.Conv2D(4, 3, groups=2, name="grouped")]
    )
    with pytest.raises(ValueError, match=r"'grouped' \(Conv2D with groups=2\)"):
        factorize(model, ranks={"grouped": 1}, method="svd")


def test_subclassed_model_is_rejected():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = keras.layers.Dense(2)

        def call(self, x):
            return self.fc(x)

    net = Net()
    net(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="subclassed"):
        factorize(net, ranks={"dense": 1}, method="svd")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(units=4, rank=0), r"`rank` to be a positive integer"),
        (dict(units=0, rank=1), r"`units` to be a positive integer"),
    ],
    ids=["rank", "units"],
)
def test_layer_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LowRankDense(**kwargs)


def test_conv_layer_rejects_bad_padding():
    with pytest.raises(ValueError, match=r"Expected `padding`|expected `padding`"):
        LowRankConv2D(4, 3, rank=2, padding="causal")
