"""plan(): exact sizes, budgets met, measured accuracy, floor errors, bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tfedge
from tfedge.budget import Option, Plan, analyze, floor_bytes, plan, transform
from tfedge.pack import interpreter_class

# Small option grids keep each plan() under a second on the tiny model.
FAST = dict(sparsities=(0.5, 0.9), bits=(4, 2), curve_points=3)
# Budgets as fractions of the float .tflite: loose (float fits), middle, tight.
BUDGET_FRACTIONS = (1.2, 0.6, 0.4)


def _accuracy_of(tflite: bytes, x, y) -> float:
    it = interpreter_class()(model_content=tflite)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    out = it.get_tensor(it.get_output_details()[0]["index"])
    return float(np.mean(np.argmax(out, -1) == y))


@pytest.fixture(scope="module")
def plans(tiny):
    _, data, eval_data = tiny
    return {
        f: plan(data, int(f * len(data)), eval_data, **FAST) for f in BUDGET_FRACTIONS
    }


@pytest.mark.parametrize("fraction", BUDGET_FRACTIONS)
def test_apply_is_exactly_predicted_and_within_budget(plans, fraction):
    p = plans[fraction]
    packed = p.apply()
    assert isinstance(packed, tfedge.Packed)
    assert len(packed) <= p.predicted_bytes <= p.budget_bytes
    assert len(packed) == p.predicted_bytes  # exact, not only a bound
    assert p.floor_bytes <= p.predicted_bytes


@pytest.mark.parametrize("fraction", BUDGET_FRACTIONS)
def test_measured_accuracy_is_that_of_the_packed_file(plans, tiny, fraction):
    _, _, (x, y) = tiny
    p = plans[fraction]
    expanded = tfedge.expand(bytes(p.apply()))
    assert _accuracy_of(expanded, x, y) == pytest.approx(p.measured, abs=1e-12)
    assert p.accuracy_cost == pytest.approx(p.baseline - p.measured)


def test_loose_budget_keeps_float_weights(plans, tiny):
    _, data, (x, y) = tiny
    p = plans[1.2]
    assert all(c.coding in ("float", "lossless") and c.sparsity == 0 for c in p.choices)
    assert p.measured == p.baseline == _accuracy_of(data, x, y)


def test_tighter_budget_gives_smaller_file(plans):
    sizes = [plans[f].predicted_bytes for f in BUDGET_FRACTIONS]
    assert sizes == sorted(sizes, reverse=True)
    tight = plans[BUDGET_FRACTIONS[-1]]
    assert any(
        c.coding != "float" or c.sparsity > 0
        for c in tight.choices
        if c.coding != "lossless"
    )


def test_plan_reports_choices_and_tradeoff(plans):
    p = plans[0.6]
    assert isinstance(p, Plan)
    kernels = [c for c in p.choices if c.coding != "lossless"]
    assert len(kernels) == 3  # fc1, fc2 and out kernels are tuned; biases are not
    for c in kernels:
        assert c.bytes_after <= c.bytes_before
        assert c.coding in ("float", "4-bit", "2-bit", "ternary")
    assert [t["bytes"] for t in p.tradeoff] == sorted(t["bytes"] for t in p.tradeoff)
    assert sum(t["chosen"] for t in p.tradeoff) == 1
    chosen = next(t for t in p.tradeoff if t["chosen"])
    assert (chosen["bytes"], chosen["metric"]) == (p.predicted_bytes, p.measured)
    d = p.to_dict()
    assert d["predicted_bytes"] == p.predicted_bytes and len(d["choices"]) == len(
        p.choices
    )
    assert "predicted_bytes" in p.to_json() and "budget" in p.table()


def test_budget_at_the_floor_fits(tiny):
    _, data, eval_data = tiny
    loose = plan(data, 10**6, eval_data, **FAST)
    at_floor = plan(data, loose.floor_bytes, eval_data, **FAST)
    assert len(at_floor.apply()) <= at_floor.budget_bytes == loose.floor_bytes


def test_budget_below_floor_raises_with_the_floor(tiny):
    _, data, eval_data = tiny
    with pytest.raises(tfedge.BudgetError, match="floor") as info:
        plan(data, "1KB", eval_data, **FAST)
    # A ValueError too: callers that caught ValueError before BudgetError see the same.
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, tfedge.TfedgeError)
    floor = int(re.search(r"floor of (\d+) bytes", str(info.value)).group(1))
    assert floor > 1000
    # The default grid reaches at most as low as floor_bytes' ternary/2-bit at 98%.
    assert floor_bytes(data) <= floor


def test_keras_model_maps_tensors_to_layers(tiny):
    model, _, eval_data = tiny
    p = plan(model, "100KB", eval_data, sparsities=(0.9,), bits=(2,), curve_points=0)
    assert {c.layer for c in p.choices} >= {"fc1", "fc2", "out"}
    assert p.tradeoff == []


def test_layers_and_ternary_restrict_the_options(tiny):
    _, data, eval_data = tiny
    p = plan(data, int(0.4 * len(data)), eval_data, ternary=False, **FAST)
    assert not any(c.ternary for c in p.choices)
    fc1 = next(c.layer for c in p.choices if "fc1" in c.tensor and len(c.shape) == 2)
    only = plan(data, 10**6, eval_data, layers=[fc1], **FAST)
    assert [c.layer for c in only.choices if c.coding != "lossless"] == [fc1]
    with pytest.raises(ValueError, match="Unknown layers"):
        plan(data, 10**6, eval_data, layers=["nope"], **FAST)
    with pytest.raises(ValueError, match="Unknown layers"):
        plan(data, 10**6, eval_data, ternary=["nope"], **FAST)


def test_without_eval_data_measures_agreement(tiny):
    _, data, _ = tiny
    p = plan(data, int(0.4 * len(data)), None, **FAST)
    assert p.metric == "agreement" and p.baseline == 1.0
    assert 0.0 <= p.measured <= 1.0


BAD_ARGS = [
    (dict(sparsities=(0.5, 1.0)), "sparsities"),
    (dict(bits=(9,)), "bits"),
    (dict(bits=(True,)), "bits"),
    (dict(metric="f1"), "metric"),
    (dict(finalists=0), "finalists"),
    (dict(ternary="fc1"), "ternary"),
]


@pytest.mark.parametrize("kwargs,message", BAD_ARGS, ids=[m for _, m in BAD_ARGS])
def test_bad_arguments(tiny, kwargs, message):
    _, data, eval_data = tiny
    with pytest.raises(ValueError, match=message):
        plan(data, "50KB", eval_data, **kwargs)


def test_bad_eval_data_and_budget(tiny):
    _, data, (x, y) = tiny
    with pytest.raises(ValueError, match="same, non-zero number"):
        plan(data, "50KB", (x, y[:-1]), **FAST)
    with pytest.raises(ValueError, match="tuple"):
        plan(data, "50KB", x, **FAST)
    with pytest.raises(ValueError, match="Unknown unit"):
        plan(data, "50 parsecs", (x, y), **FAST)


def test_transform_options():
    values = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    pruned = transform(values, Option(0.9))
    assert np.sum(pruned == 0) == 900 and pruned.dtype == np.float32
    kept = pruned != 0
    np.testing.assert_array_equal(pruned[kept], values[kept])
    assert np.min(np.abs(values[kept])) >= np.max(np.abs(values[~kept]))
    ternary = transform(values, Option(0.5, ternary=True))
    assert len(np.unique(ternary)) == 3 and np.sum(ternary == 0) == 500
    assert np.all(np.sign(ternary[ternary != 0]) == np.sign(values[ternary != 0]))
    shared = transform(values, Option(0.7, bits=3))
    assert len(np.unique(shared)) <= 8 and np.sum(shared == 0) >= 700
    assert str(Option(0.5, 4)) == "4-bit @ 50% pruned"


def test_analysis_plans_several_budgets_with_one_sensitivity_run(tiny):
    _, data, eval_data = tiny
    analysis = analyze(data, eval_data, sparsities=(0.9,), bits=(2,))
    loose = analysis.plan(10**6, curve_points=0)
    runs = analysis._evaluator.runs
    tight = analysis.plan(analysis.floor_bytes + 500, curve_points=0)
    # Only the finalists of the second budget run, no second sensitivity sweep.
    assert analysis._evaluator.runs - runs <= 4
    assert tight.predicted_bytes <= analysis.floor_bytes + 500 < loose.predicted_bytes
    with pytest.raises(
        tfedge.BudgetError, match=f"floor of {analysis.floor_bytes} bytes"
    ):
        analysis.plan(analysis.floor_bytes - 1)


def test_keras_file_gets_layer_names(tiny, tmp_path):
    model, _, eval_data = tiny
    path = tmp_path / "tiny.keras"
    model.save(path)
    p = plan(
        str(path), "100KB", eval_data, sparsities=(0.9,), bits=(2,), curve_points=0
    )
    assert {"fc1", "fc2", "out"} <= {c.layer for c in p.choices}
    with pytest.raises(FileNotFoundError):
        plan(str(tmp_path / "missing.keras"), "100KB", eval_data)


def test_layers_with_the_same_weight_values_keep_their_own_names():
    """Two kernels holding the same values in another order (so the converter keeps
    two buffers): each tensor maps to its own layer, not both to the first."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(16, name="twin_a"),
            keras.layers.Dense(16, name="twin_b"),
            keras.layers.Dense(3, name="out"),
        ]
    )
    kernel, bias = model.get_layer("twin_a").get_weights()
    model.get_layer("twin_b").set_weights([kernel.T.copy(), bias])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 16)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    p = plan(model, "100KB", (x, y), sparsities=(0.9,), bits=(2,), curve_points=0)
    kernels = [c for c in p.choices if list(c.shape) == [16, 16]]
    assert len(kernels) == 2
    assert {c.layer for c in kernels} == {"twin_a", "twin_b"}


def _bias_after_relu_model() -> bytes:
    """A [1, 128] bias added after a ReLU (as the JAX export adds every bias) and a
    one-unit Dense whose kernel is [1, 128] in TFLite's layout."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)

    class BiasAfterRelu(tf.Module):
        def __init__(self):
            super().__init__()
            self.w1 = tf.constant(rng.standard_normal((16, 128)).astype(np.float32))
            self.b1 = tf.constant(rng.standard_normal((1, 128)).astype(np.float32))
            self.w2 = tf.constant(rng.standard_normal((128, 1)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec((None, 16), tf.float32)])
        def __call__(self, x):
            h = tf.nn.relu(tf.matmul(x, self.w1)) + self.b1
            return tf.matmul(h, self.w2)

    m = BiasAfterRelu()
    return tf.lite.TFLiteConverter.from_concrete_functions(
        [m.__call__.get_concrete_function()], m
    ).convert()


def test_biases_are_never_tuned_however_shaped():
    p = plan(_bias_after_relu_model(), "1MB", sparsities=(0.5,), bits=(4,))
    shapes = sorted((tuple(c.shape), c.coding != "lossless") for c in p.choices)
    # Two [1, 128] tensors: the one-unit kernel is tuned, the ADD's bias is not.
    assert shapes == [((1, 128), False), ((1, 128), True), ((128, 16), True)]
