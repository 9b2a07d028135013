"""The relative index: gaps, filler entries, and the cursor check."""

import numpy as np
import pytest

from tfedge.codecs import positions_from_gaps, relative_index
from tfedge.errors import FormatError

# (id, positions, n, gap_bits, expected gaps, expected stored positions)
KNOWN = [
    ("empty", [], 10, 3, [], []),
    ("first", [0], 1, 1, [0], [0]),
    ("adjacent", [0, 1, 2], 3, 1, [0, 0, 0], [0, 1, 2]),
    ("fits", [2, 6], 7, 2, [2, 3], [2, 6]),
    # A gap of 5 with 1-bit gaps: fillers at 1 and 3, then the element at 5.
    ("fillers", [5], 6, 1, [1, 1, 1], [1, 3, 5]),
    # A gap of exactly 2**g: one filler at 3, the element right after it.
    ("exact_span", [4], 5, 2, [3, 0], [3, 4]),
    ("gap_8bit", [300], 301, 8, [255, 44], [255, 300]),
]


@pytest.mark.parametrize(
    "positions, n, gap_bits, gaps, stored",
    [k[1:] for k in KNOWN],
    ids=[k[0] for k in KNOWN],
)
def test_known_indices(positions, n, gap_bits, gaps, stored):
    got_gaps, got_stored = relative_index(np.array(positions, np.int64), n, gap_bits)
    assert got_gaps.dtype == np.uint8
    np.testing.assert_array_equal(got_gaps, gaps)
    np.testing.assert_array_equal(got_stored, stored)
    np.testing.assert_array_equal(positions_from_gaps(got_gaps, n), stored)


@pytest.mark.parametrize("gap_bits", range(1, 9), ids=lambda g: f"g{g}")
@pytest.mark.parametrize("density", [0.001, 0.1, 0.9], ids=lambda d: f"d{d}")
def test_round_trip(gap_bits, density):
    rng = np.random.default_rng(gap_bits)
    n = 20000
    positions = np.flatnonzero(rng.random(n) < density)
    gaps, stored = relative_index(positions, n, gap_bits)
    assert gaps.max(initial=0) < 1 << gap_bits
    np.testing.assert_array_equal(positions_from_gaps(gaps, n), stored)
    # Every real position is stored, and the others are fillers that sit on fill
    # positions spaced exactly 2**g apart from the previous entry.
    assert set(positions) <= set(stored.tolist())
    fillers = ~np.isin(stored, positions)
    np.testing.assert_array_equal(gaps[fillers], (1 << gap_bits) - 1)


def test_cursor_out_of_range_raises_format_error():
    with pytest.raises(FormatError, match="past the 5 elements") as info:
        positions_from_gaps(np.array([1, 3], np.uint8), 5, name="w", offset=40)
    assert info.value.tensor == "w" and info.value.offset == 40


@pytest.mark.parametrize(
    "positions, n", [([3, 3], 5), ([2, 1], 5), ([5], 5), ([-1], 5)], ids=str
)
def test_bad_positions_raise_value_error(positions, n):
    with pytest.raises(ValueError, match="Expected `positions`"):
        relative_index(np.array(positions), n, 4)
