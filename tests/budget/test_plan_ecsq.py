"""The budget planner with ECSQ options (`ecsq=True`), through `tfedge.budget.plan`:
ECSQ codings are offered per kernel, chosen under a budget that float weights miss,
and the plan's file is exactly the predicted size, within the budget, with the
measured accuracy of the packed file."""

from __future__ import annotations

import numpy as np
import pytest

import tfedge
import tfedge.budget
from tests.budget.test_plan import _accuracy_of
from tfedge.budget import DEFAULT_ECSQ_ERRORS, Option, plan, transform

# Only float and ECSQ codings, no pruning: every kernel the budget squeezes must be
# ECSQ coded, and the sensitivity runs stay few.
ECSQ_ONLY = dict(sparsities=(0.0,), bits=(), ternary=False, ecsq=True, curve_points=2)
# The budget between the floor (every kernel at its coarsest ECSQ point) and the file
# of the float weights packed losslessly, at this fraction of the way up: the float
# kernels do not fit.
BUDGET_FRACTION = 0.5


@pytest.fixture(scope="module")
def ecsq_plan(tiny):
    _, data, eval_data = tiny
    float_bytes = len(tfedge.compress(data, lossless=True, progress=False))
    floor = tfedge.budget.analyze(data, eval_data, **_analyze_args()).floor_bytes
    budget = int(floor + BUDGET_FRACTION * (float_bytes - floor))
    return float_bytes, plan(data, budget, eval_data, **ECSQ_ONLY)


def _analyze_args() -> dict:
    return {k: v for k, v in ECSQ_ONLY.items() if k != "curve_points"}


def test_ecsq_codings_fit_a_budget_float_misses(ecsq_plan):
    float_bytes, p = ecsq_plan
    assert p.budget_bytes < float_bytes
    codings = [c.coding for c in p.choices if c.coding != "lossless"]
    assert any(c.startswith("ecsq ") for c in codings), codings
    assert set(codings) <= {"float"} | {f"ecsq {e:g}" for e in DEFAULT_ECSQ_ERRORS}
    packed = p.apply()
    assert isinstance(packed, tfedge.Packed)
    assert len(packed) == p.predicted_bytes <= p.budget_bytes


def test_measured_accuracy_is_that_of_the_packed_file(ecsq_plan, tiny):
    _, p = ecsq_plan
    _, _, (x, y) = tiny
    expanded = tfedge.expand(bytes(p.apply()))
    assert _accuracy_of(expanded, x, y) == pytest.approx(p.measured, abs=1e-12)


def test_transform_gives_the_ecsq_values():
    values = np.random.default_rng(0).standard_normal(4096).astype(np.float32)
    for e in DEFAULT_ECSQ_ERRORS:
        out = transform(values, Option(0.0, ecsq=e))
        err = np.linalg.norm(out - values) / np.linalg.norm(values)
        assert out.dtype == values.dtype and 0 < err < 2 * e
        assert np.unique(out).size <= 256
    assert Option(0.5, ecsq=0.045).coding == "ecsq 0.045"


def test_ecsq_must_be_a_bool(tiny):
    _, data, eval_data = tiny
    with pytest.raises(ValueError, match="Expected `ecsq`"):
        plan(data, 10**6, eval_data, ecsq="yes")
