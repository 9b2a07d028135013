"""tfedge.keras.SizeBudget: projected packed size in logs, warn, stop, config."""

from __future__ import annotations

import warnings

import keras
import pytest

from tests.budget.conftest import make_data, make_model
from tfedge.budget import packed_size
from tfedge.keras import ConstantSparsity, SizeBudget, prune


def _fit(model, callbacks, epochs=2):
    x, y = make_data()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model.fit(
        x, y, epochs=epochs, batch_size=128, verbose=0, callbacks=callbacks
    )


def test_logs_the_exact_projected_size():
    model = make_model(train=False)
    cb = SizeBudget("1MB")
    history = _fit(model, [cb])
    sizes = history.history["packed_bytes"]
    assert len(sizes) == 2
    assert sizes[-1] == cb.last_bytes == packed_size(model)
    assert history.history["packed_fraction"][-1] == pytest.approx(sizes[-1] / 1e6)


def test_pruned_training_projects_a_smaller_file():
    dense = packed_size(make_model(train=False))
    model = prune(make_model(train=False), schedule=ConstantSparsity(0.9, begin_step=0))
    cb = SizeBudget(dense, on_exceed="ignore")
    _fit(model, [cb], epochs=1)
    assert cb.last_bytes < dense
    assert packed_size(model, bits=2) < cb.last_bytes


def test_warns_when_over_budget():
    model = make_model(train=False)
    with pytest.warns(UserWarning, match=r"projected packed size \d+ bytes is above"):
        _fit(model, [SizeBudget(1000)], epochs=1)


def test_stops_after_patience():
    model = make_model(train=False)
    history = _fit(model, [SizeBudget(1000, on_exceed="stop", patience=1)], epochs=5)
    assert len(history.history["packed_bytes"]) == 2


def test_floor_check_stops_at_once():
    model = make_model(train=False)
    cb = SizeBudget(500, on_exceed="stop", check_floor=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = _fit(model, [cb], epochs=3)
    assert cb.floor_bytes > 500
    assert (
        len(history.history["loss"]) == 1
    )  # the first epoch ends, then training stops


def test_config_round_trip():
    cb = SizeBudget("200 KiB", bits=4, on_exceed="stop", patience=2, frequency=3)
    config = cb.get_config()
    assert config["budget_bytes"] == 204800
    again = SizeBudget.from_config(config)
    assert again.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(cb)
    )
    assert restored.get_config() == config


BAD = [
    (dict(budget_bytes="lots"), "budget_bytes"),
    (dict(budget_bytes=100, bits=0), "bits"),
    (dict(budget_bytes=100, on_exceed="panic"), "on_exceed"),
    (dict(budget_bytes=100, patience=-1), "patience"),
    (dict(budget_bytes=100, frequency=0), "frequency"),
    (dict(budget_bytes=100, check_floor="yes"), "check_floor"),
]


@pytest.mark.parametrize("kwargs,message", BAD, ids=[m for _, m in BAD])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SizeBudget(**kwargs)
