"""Deep Compression's relative index for sparse tensors (docs/FORMAT.md 2.1).

Stored entries are addressed by their gap to the previous stored entry: a cursor starts
at -1 and advances by `gap + 1` per entry. A gap wider than the `gap_bits` symbol width
can hold (2**gap_bits - 1) is bridged by filler entries that hold the fill value.
"""

from __future__ import annotations

import numpy as np

from tfedge.codecs._bitpack import check_bits
from tfedge.errors import FormatError


def relative_index(
    positions: np.ndarray, n: int, gap_bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """Returns the gap stream and the element position of every stored entry.

    Args:
        positions: the sorted, distinct indices (in [0, n)) of the elements that differ
            from the fill value.
        n: the number of elements.
        gap_bits: the width of a gap symbol, 1..8.

    Returns:
        `(gaps, stored)`: one entry per stored element, real or filler, in order.
        `gaps` (uint8) are the symbols of stream G; `stored` (int64) are the element
        positions the entries land on (a filler entry lands on a fill position, so its
        value is the fill value: `values[stored]` gives stream V for any value array).

    Raises:
        ValueError: bad `gap_bits`, or positions not sorted, distinct and in [0, n).
    """
    gap_bits = check_bits(gap_bits, "gap_bits")
    pos = np.asarray(positions).reshape(-1).astype(np.int64)
    if pos.size == 0:
        return np.zeros(0, np.uint8), np.zeros(0, np.int64)
    if pos[0] < 0 or pos[-1] >= n:
        raise ValueError(
            f"Expected `positions` in [0, {n}). Received: [{int(pos.min())}, "
            f"{int(pos.max())}]"
        )
    gap = np.diff(pos, prepend=-1) - 1
    if gap.min() < 0:
        raise ValueError("Expected `positions` sorted and distinct.")
    span = np.int64(1 << gap_bits)  # largest gap + 1
    fillers = gap // span
    per_entry = fillers + 1
    total = int(per_entry.sum())
    gaps = np.full(total, span - 1, np.int64)
    last = np.cumsum(per_entry) - 1
    gaps[last] = gap % span
    stored = np.cumsum(gaps + 1) - 1
    return gaps.astype(np.uint8), stored


def positions_from_gaps(
    gaps: np.ndarray,
    n: int,
    *,
    name: str | None = None,
    offset: int | None = None,
) -> np.ndarray:
    """Returns the element position of every stored entry (the inverse of the above).

    Raises:
        FormatError: the cursor leaves [0, n).
    """
    g = np.asarray(gaps).reshape(-1).astype(np.int64)
    if g.size == 0:
        return np.zeros(0, np.int64)
    positions = np.cumsum(g + 1) - 1
    if positions[-1] >= n:
        j = int(np.argmax(positions >= n))
        raise FormatError(
            f"sparse index entry {j} lands on element {int(positions[j])}, "
            f"past the {n} elements",
            tensor=name,
            offset=offset,
        )
    return positions
