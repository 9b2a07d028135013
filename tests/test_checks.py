"""`tolerance` as people write it: 0.02, "0.02" or "2%", through `tfedge.compress`."""

from __future__ import annotations

import pytest

import tfedge
from tfedge._checks import check_sharing_bits, check_tolerance

# (written, read as)
TOLERANCES = [
    (0.02, 0.02),
    ("2%", 0.02),
    (" 2 % ", 0.02),
    ("0.5%", 0.005),
    ("0.02", 0.02),
    (1, None),
]
# (written, words of the error)
BAD_TOLERANCES = [
    (0, ["lossless=True"]),
    ("0%", ["lossless=True"]),
    (0.0, ["lossless=True"]),
    ("2", ["'2%'"]),
    ("150%", ["'100%'"]),
    (-0.1, ["between 0 and 1"]),
    ("two percent", ["'2%'"]),
    (None, ["tolerance=None"]),
    (True, ["tolerance=True"]),
]


@pytest.mark.parametrize(
    "written,value", TOLERANCES, ids=[str(t) for t, _ in TOLERANCES]
)
def test_tolerance_forms(written, value):
    if value is None:
        with pytest.raises(ValueError, match="between 0 and 1"):
            check_tolerance(written)
    else:
        assert check_tolerance(written) == pytest.approx(value)


def test_percent_string_compresses_like_the_fraction(tflite_model):
    model = tflite_model("dense_f32")
    a = tfedge.compress(model, tolerance="2%")
    b = tfedge.compress(model, tolerance=0.02)
    assert a.report.tolerance == b.report.tolerance == pytest.approx(0.02)
    assert bytes(a) == bytes(b)


@pytest.mark.parametrize(
    "written,words", BAD_TOLERANCES, ids=[repr(t) for t, _ in BAD_TOLERANCES]
)
def test_bad_tolerance_through_compress(tflite_model, written, words):
    with pytest.raises(ValueError) as info:
        tfedge.compress(tflite_model("dense_f32"), tolerance=written)
    for word in words:
        assert word in str(info.value)


def test_zero_tolerance_is_fine_when_lossless(tflite_model):
    packed = tfedge.compress(tflite_model("dense_f32"), tolerance=0, lossless=True)
    assert packed.report.lossless


# (written, read as, or None for an error): weight-sharing bits, shared by
# `tfedge.keras.share_weights` and `tfedge.deep_compress`.
SHARING_BITS = [(1, 1), (5, 5), (8, 8), (0, None), (9, None), (True, None), (4.0, None)]


@pytest.mark.parametrize(
    "written,value", SHARING_BITS, ids=[repr(b) for b, _ in SHARING_BITS]
)
def test_sharing_bits(written, value):
    if value is None:
        with pytest.raises(ValueError, match=r"`bits\['fc'\]` to be an integer in"):
            check_sharing_bits(written, "bits['fc']")
    else:
        assert check_sharing_bits(written) == value
