"""The numpy side: rounding, saturation and the choice of fractional lengths."""

from __future__ import annotations

import numpy as np
import pytest

from tfedge.fixed_point import _numeric


def test_round_half_away_from_zero():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49, -0.51])
    np.testing.assert_array_equal(
        _numeric.round_half_away(x), [-3, -2, -1, 1, 2, 3, 0, -1]
    )


def test_to_codes_saturates_at_the_width():
    codes = _numeric.to_codes(np.array([-10.0, -1.0, 0.3, 10.0]), bits=4, fl=2)
    np.testing.assert_array_equal(codes, [-8, -4, 1, 7])
    np.testing.assert_array_equal(
        _numeric.quantize(np.array([0.3, 10.0]), 4, 2), np.float32([0.25, 1.75])
    )


NO_OVERFLOW_CASES = [
    # (max_abs, bits, expected): 127 * 2**-7 is the largest 8-bit value at fl 7.
    (127 / 128, 8, 7),
    (127.4 / 128, 8, 7),
    (127.6 / 128, 8, 6),
    (1.0, 8, 6),
    (100.0, 8, 0),
    (200.0, 8, -1),
    (0.01, 4, 9),
]


@pytest.mark.parametrize(
    "max_abs,bits,expected", NO_OVERFLOW_CASES, ids=[str(c) for c in NO_OVERFLOW_CASES]
)
def test_no_overflow_length_is_the_boundary(max_abs, bits, expected):
    fl = _numeric.no_overflow_length(max_abs, bits)
    assert fl == expected
    _, hi = _numeric.code_range(bits)
    assert abs(_numeric.round_half_away(max_abs * 2.0**fl)) <= hi
    assert abs(_numeric.round_half_away(max_abs * 2.0 ** (fl + 1))) > hi


def test_weight_phase_minimises_l1_error_from_the_range():
    rng = np.random.default_rng(0)
    w = rng.normal(0.0, 0.05, 2000).astype(np.float32)
    fl = _numeric.choose_length([(w, w, 8)], "w")
    start = _numeric.no_overflow_length(float(np.abs(w).max()), 8)
    errors = {
        f: np.abs(w - _numeric.quantize(w, 8, f)).sum()
        for f in range(start, start + _numeric.SEARCH_ABOVE + 1)
    }
    assert fl == min(errors, key=errors.get)
    # Lengths shorter than the overflow-free one only lose precision.
    assert np.abs(w - _numeric.quantize(w, 8, start - 1)).sum() > errors[fl]


def test_an_outlier_is_saturated_when_that_lowers_the_error():
    w = np.concatenate([np.full(1000, 0.1), [1.0]]).astype(np.float32)
    fl = _numeric.choose_length([(w, w, 4)], "w")
    assert fl > _numeric.no_overflow_length(1.0, 4)


def test_data_phase_compares_with_the_reference():
    # The values to round run 2x too large; the reference pulls the choice.
    ref = np.linspace(0.0, 1.0, 101).astype(np.float32)
    values = ref * 1.02
    fl = _numeric.choose_length([(values, ref, 8)], "map")
    errs = [
        np.abs(ref - _numeric.quantize(values, 8, f)).sum()
        for f in range(fl - 1, fl + 2)
        if f >= _numeric.no_overflow_length(1.02, 8)
    ]
    assert np.abs(ref - _numeric.quantize(values, 8, fl)).sum() == min(errs)


def test_range_that_overflows_every_length_raises():
    w = np.array([1e30, -2.0], np.float32)
    with pytest.raises(ValueError, match=r"'w' overflows every fractional length at 8"):
        _numeric.choose_length([(w, w, 8)], "'w'")


def test_non_finite_values_raise():
    w = np.array([np.inf, 1.0], np.float32)
    with pytest.raises(ValueError, match="non-finite"):
        _numeric.choose_length([(w, w, 8)], "w")


def test_tiny_range_is_clamped_with_a_warning():
    w = np.array([1e-12, -3e-12], np.float32)
    with pytest.warns(UserWarning, match=f"clamped to {_numeric.FL_MAX}"):
        assert _numeric.choose_length([(w, w, 8)], "w") == _numeric.FL_MAX


def test_all_zero_takes_the_finest_length():
    z = np.zeros(5, np.float32)
    assert _numeric.choose_length([(z, z, 8)], "z") == _numeric.FL_MAX
