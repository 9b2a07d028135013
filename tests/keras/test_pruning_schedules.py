"""Pruning schedules: values against tfmot's classes, iterative rounds, bad input."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from tfedge.keras import ConstantSparsity, IterativePruning, PolynomialDecay

STEPS = list(range(0, 1300, 7)) + [0, 99, 100, 101, 200, 999, 1000, 1001]

# (our schedule, tfmot constructor arguments) with the same meaning.
CASES = {
    "constant_forever": (ConstantSparsity, dict(target_sparsity=0.8, begin_step=50)),
    "constant_window": (
        ConstantSparsity,
        dict(target_sparsity=0.5, begin_step=100, end_step=900, frequency=50),
    ),
    "poly_default": (
        PolynomialDecay,
        dict(initial_sparsity=0.0, final_sparsity=0.9, begin_step=0, end_step=1000),
    ),
    "poly_power1": (
        PolynomialDecay,
        dict(
            initial_sparsity=0.2,
            final_sparsity=0.95,
            begin_step=200,
            end_step=800,
            power=1,
            frequency=30,
        ),
    ),
}


def _ours(schedule, step):
    should, sparsity = schedule(ops.convert_to_tensor(step, dtype="int32"))
    return bool(ops.convert_to_numpy(should)), float(ops.convert_to_numpy(sparsity))


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_values_as_tfmot(name):
    import tensorflow as tf
    from tensorflow_model_optimization.python.core.sparsity.keras import (
        pruning_schedule,
    )

    cls, kwargs = CASES[name]
    ours = cls(**kwargs)
    theirs = getattr(pruning_schedule, cls.__name__)(**kwargs)
    for step in STEPS:
        should, sparsity = theirs(tf.constant(step, dtype=tf.int64))
        got_should, got_sparsity = _ours(ours, step)
        assert got_should == bool(should), (name, step)
        np.testing.assert_allclose(got_sparsity, float(sparsity), rtol=1e-6, atol=1e-7)


def test_iterative_rounds():
    sched = IterativePruning([0.5, 0.75, 0.9], round_steps=10, begin_step=5)
    fired = {s: _ours(sched, s)[1] for s in range(60) if _ours(sched, s)[0]}
    assert fired == pytest.approx({5: 0.5, 15: 0.75, 25: 0.9})
    assert _ours(sched, 0)[0] is False
    assert sched.final_sparsity == 0.9


@pytest.mark.parametrize(
    "sched",
    [
        ConstantSparsity(0.3, 4, 40, 2),
        PolynomialDecay(0.1, 0.7, 10, 110, power=2, frequency=20),
        IterativePruning([0.2, 0.4], round_steps=3, begin_step=1),
    ],
    ids=["constant", "poly", "iterative"],
)
def test_config_round_trip(sched):
    config = keras.saving.serialize_keras_object(sched)
    again = keras.saving.deserialize_keras_object(config)
    assert type(again) is type(sched) and again.get_config() == sched.get_config()
    assert again == sched


BAD = {
    "sparsity_high": (
        lambda: ConstantSparsity(1.2, 0),
        "Expected `target_sparsity` in \\[0, 1\\)",
    ),
    "sparsity_one": (lambda: ConstantSparsity(1.0, 0), "Received: target_sparsity=1.0"),
    "sparsity_negative": (
        lambda: PolynomialDecay(-0.1, 0.5, 0, 100),
        "initial_sparsity",
    ),
    "end_before_begin": (
        lambda: ConstantSparsity(0.5, 100, end_step=50),
        "end before it begins",
    ),
    "poly_forever": (lambda: PolynomialDecay(0.0, 0.5, 0, -1), "finite end step"),
    "never_fires": (
        lambda: PolynomialDecay(0.0, 0.9, 0, 100, frequency=200),
        "never reach final_sparsity=0.9",
    ),
    "frequency_zero": (lambda: ConstantSparsity(0.5, 0, frequency=0), "`frequency`"),
    "negative_begin": (lambda: ConstantSparsity(0.5, -3), "`begin_step`"),
    "iterative_decreasing": (
        lambda: IterativePruning([0.5, 0.4], round_steps=10),
        "strictly increasing",
    ),
    "iterative_empty": (lambda: IterativePruning([], round_steps=10), "at least one"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_arguments(name):
    make, message = BAD[name]
    with pytest.raises(ValueError, match=message):
        make()


def test_warns_when_last_update_misses_end_step():
    with pytest.warns(UserWarning, match="last mask update is at step 100"):
        PolynomialDecay(0.0, 0.8, 0, 150, frequency=100)
