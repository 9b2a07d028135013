"""The readers' resource bound (docs/FORMAT.md, "Resource bound").

A reader decodes a payload of `c` bytes to at most `max(EXPANSION_RATIO * c,
EXPANSION_FLOOR)` bytes unless its caller trusts the file, so the work a file can ask
for is proportional to its size: a forged header cannot make a 9 KB file allocate and
fill gigabytes. Huffman blocks are at most `MAX_BLOCK_SIZE` symbols, so the numpy
reader (which decodes all blocks in step, one symbol of each per step) never loops
over millions of symbols of one block.
"""

from __future__ import annotations

# R: decoded bytes per coded byte. The densest payload tfedge writes for a published
# model, 95% pruned and shared on 16 values (scripts/bench_expansion.py), expands
# by 178x (a zero-bias tensor coded as one sparse run can go higher, but those are
# small: F covers them); R leaves a margin of more than 5x over it.
EXPANSION_RATIO = 1024
# F: decoded bytes any payload may have whatever its size (16 MiB): constant tensors
# (all zero, all one) code to a few bytes, and R alone would refuse them.
EXPANSION_FLOOR = 1 << 24
# Symbols per Huffman block: tfedge's encoder writes at most 16,383
# (default_block_size), and 65,536 keeps the numpy reader's per-step loop under a
# second.
MAX_BLOCK_SIZE = 1 << 16


def decoded_bound(coded_bytes: int) -> int:
    """The most bytes a payload of `coded_bytes` bytes may decode to (untrusted)."""
    return max(EXPANSION_RATIO * int(coded_bytes), EXPANSION_FLOOR)
