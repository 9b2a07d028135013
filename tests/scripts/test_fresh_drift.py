"""scripts/fresh_drift.py on a small model: what it records is what the search did."""

from __future__ import annotations

import pytest

from tests._scripts import load_script

# The float MLP as a corpus manifest entry would describe it (no metadata: the
# representative data is drawn in this range, as the corpus test draws it).
ENTRY = {"id": "dense_f32", "covers": ["float32"], "input_range": [-1.0, 1.0]}
TOLERANCE = 0.02
SETS = 2


@pytest.fixture(scope="module")
def fresh_drift():
    return load_script("fresh_drift.py", "fresh_drift")


@pytest.mark.parametrize("reserve", [True, False])
def test_every_combination_with_its_fresh_sets(fresh_drift, tflite_model, reserve):
    row = fresh_drift.measure(
        ENTRY, tflite_model("dense_f32"), TOLERANCE, SETS, reserve
    )
    assert row["combinations"], row
    for c in row["combinations"]:
        assert len(c["fresh"]) == SETS
        # The estimate is never below what was measured.
        assert c["estimate"] >= c["measured"]
    assert len(row["written_fresh"]) == SETS
    # With the reserve the note says what it was; without, the search's note still
    # gives the factor it would have applied to the measured drift (1x).
    assert any("reserve" in n for n in row["notes"]), row["notes"]
    assert row["ratio"] > 1.0


def test_reestimate_reproduces_the_search_estimate(fresh_drift, tflite_model):
    from tfedge.pack import _compress

    row = fresh_drift.measure(ENTRY, tflite_model("dense_f32"), TOLERANCE, SETS, False)
    fresh = [(x, c["estimate"]) for c in row["combinations"] for x in c["fresh"]]
    want = sum(x > e for x, e in fresh) / len(fresh)
    got = fresh_drift.reestimate(
        [row], _compress.FRESH_CONFIDENCE, _compress.TAIL_FRACTION
    )
    assert got["past"] == want
    # A lower confidence never gives a larger estimate, so never fewer sets past it.
    lower = fresh_drift.reestimate([row], 0.5, _compress.TAIL_FRACTION)
    assert lower["past"] >= got["past"]
    assert all(
        lower["median_reserve"][m] <= r for m, r in got["median_reserve"].items()
    )
