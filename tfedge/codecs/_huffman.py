"""Canonical, length-limited Huffman coding (docs/FORMAT.md, section 2.2).

* `code_lengths`: optimal code lengths under a length limit: plain Huffman when its
  longest code fits, otherwise package-merge (Larmore and Hirschberg 1990), so the
  code is the best prefix code whose longest code fits the 4-bit length field.
* `canonical_codes`: the canonical code of a length table (ordered by length, then
  symbol value).
* `huffman_encode`: vectorised; each symbol's code is placed in a 24-bit window at its
  start byte and the windows of all symbols that start in the same byte are summed with
  one `np.bincount` (their bits never overlap, so the sum is their OR).
* `huffman_decode`: table-driven (a lookup table of 2**maxlen entries holding symbol and
  length). Large streams are decoded by stepping through the symbols of every block at
  once; small ones by pointer doubling over all bit positions, which needs only
  log2(block size) numpy passes.
"""

from __future__ import annotations

import heapq

import numpy as np

from tfedge.errors import FormatError

MAX_CODE_LENGTH = 15

# An impossible code length used in decode tables for bit patterns that are no code
# (only the one-symbol code has any): it pushes the cursor past any possible data.
_INVALID = 1 << 36

# The largest data (in bits) decoded by pointer doubling, which needs ~40 bytes per bit.
_DOUBLING_MAX_BITS = 1 << 25

# Symbols per encoding chunk (bounds the temporaries).
_CHUNK = 1 << 20


def code_lengths(freqs: np.ndarray, max_length: int = MAX_CODE_LENGTH) -> np.ndarray:
    """Returns optimal prefix-code lengths no longer than `max_length`.

    Args:
        freqs: one non-negative count per symbol (the alphabet is its indices).
        max_length: the longest allowed code, 1..15.

    Returns:
        A uint8 array of code lengths: 0 for a symbol of frequency 0, 1 for the single
        used symbol when there is only one, otherwise the lengths of a complete prefix
        code (Kraft's sum is exactly 1) minimising sum(freq * length).

    Raises:
        ValueError: a frequency is negative or not finite, `max_length` is out of range,
            or more than 2**max_length symbols are used.
    """
    f = np.asarray(freqs)
    if f.ndim != 1:
        raise ValueError(f"Expected 1-D `freqs`. Received: shape {f.shape}")
    if isinstance(max_length, bool) or not 1 <= max_length <= MAX_CODE_LENGTH:
        raise ValueError(
            f"Expected `max_length` in [1, {MAX_CODE_LENGTH}]. "
            f"Received: max_length={max_length}"
        )
    if f.size and (not np.all(np.isfinite(f)) or f.min() < 0):
        raise ValueError("Expected non-negative finite `freqs`.")
    lengths = np.zeros(f.size, np.uint8)
    used = np.flatnonzero(f > 0)
    m = used.size
    if m == 0:
        return lengths
    if m == 1:
        lengths[used] = 1
        return lengths
    if m > 1 << max_length:
        raise ValueError(
            f"Expected at most 2**max_length={1 << max_length} used symbols. "
            f"Received: {m} used symbols; increase `max_length`."
        )
    weights = f[used].tolist()
    plain = _huffman_depths(weights)
    if max(plain) <= max_length:
        lengths[used] = plain
        return lengths
    # The limit binds: package-merge on the used symbols sorted by weight. Each item
    # is a weight plus how many times each symbol occurs in it; a symbol's code
    # length is the number of the first 2m - 2 items of the final list holding it.
    order = np.argsort(f[used], kind="stable")
    leaf_w = f[used][order].astype(np.float64)
    leaf_c = np.eye(m, dtype=np.int32)
    weights, counts = leaf_w, leaf_c
    for _ in range(max_length - 1):
        p = weights.size // 2
        pack_w = weights[0 : 2 * p : 2] + weights[1 : 2 * p : 2]
        pack_c = counts[0 : 2 * p : 2] + counts[1 : 2 * p : 2]
        all_w = np.concatenate([leaf_w, pack_w])
        merge = np.argsort(all_w, kind="stable")[: 2 * m - 2]
        weights = all_w[merge]
        counts = np.concatenate([leaf_c, pack_c])[merge]
    per_sorted = counts[: 2 * m - 2].sum(axis=0)
    lengths[used[order]] = per_sorted
    return lengths


def _huffman_depths(weights: list) -> list[int]:
    """Code lengths of an (unlimited) Huffman code, by the classic heap merge."""
    m = len(weights)
    heap = [(w, i) for i, w in enumerate(weights)]
    heapq.heapify(heap)
    parent = [0] * (2 * m - 1)
    node = m
    while len(heap) > 1:
        w1, a = heapq.heappop(heap)
        w2, b = heapq.heappop(heap)
        parent[a] = parent[b] = node
        heapq.heappush(heap, (w1 + w2, node))
        node += 1
    depth = [0] * (2 * m - 1)
    for j in range(2 * m - 3, -1, -1):
        depth[j] = depth[parent[j]] + 1
    return depth[:m]


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Returns the canonical code of each symbol (uint32; 0 where the length is 0).

    Symbols are ordered by (length, symbol value); the first gets the all-zero code of
    its length, each next one the previous code plus one, shifted left by the difference
    of lengths. A code of length l is its l low bits, written most significant first.
    """
    lens = np.asarray(lengths).astype(np.int64)
    codes = np.zeros(lens.size, np.uint32)
    order = np.lexsort((np.arange(lens.size), lens))
    order = order[lens[order] > 0]
    code = 0
    prev = 0
    for s in order.tolist():
        length = int(lens[s])
        if prev:
            code = (code + 1) << (length - prev)
        codes[s] = code
        prev = length
    return codes


def length_table_problem(lengths: np.ndarray, count: int) -> str | None:
    """Returns why a code-length table is invalid for `count` symbols, or None.

    Valid tables (docs/FORMAT.md 2.2): for count 0, all lengths zero; otherwise either
    exactly one non-zero length, which is 1, or a complete prefix code (Kraft's sum is
    exactly 1).
    """
    lens = np.asarray(lengths).astype(np.int64)
    if lens.size and (lens.min() < 0 or lens.max() > MAX_CODE_LENGTH):
        return f"code lengths must be in [0, {MAX_CODE_LENGTH}]"
    nonzero = lens[lens > 0]
    if count == 0:
        if nonzero.size:
            return "a stream of 0 symbols must have an all-zero code-length table"
        return None
    if nonzero.size == 0:
        return "the code-length table is all zero but the stream has symbols"
    if nonzero.size == 1:
        if nonzero[0] != 1:
            return f"the only code has length {int(nonzero[0])}, expected 1"
        return None
    kraft = int(np.sum(np.int64(1) << (MAX_CODE_LENGTH - nonzero)))
    if kraft != 1 << MAX_CODE_LENGTH:
        kind = (
            "over-subscribed (not a prefix code)" if kraft > 1 << 15 else "incomplete"
        )
        return f"the code lengths are {kind}: Kraft sum {kraft}/{1 << MAX_CODE_LENGTH}"
    return None


def check_lengths(
    lengths: np.ndarray,
    count: int,
    *,
    name: str | None = None,
    offset: int | None = None,
) -> None:
    """Raises `FormatError` if `lengths` is not a valid table for `count` symbols."""
    problem = length_table_problem(lengths, count)
    if problem is not None:
        raise FormatError(problem, tensor=name, offset=offset)


def encoded_bits(freqs: np.ndarray, lengths: np.ndarray) -> int:
    """Returns the exact number of coded bits: sum(freq * length)."""
    f = np.asarray(freqs).astype(np.int64)
    return int(np.dot(f, np.asarray(lengths).astype(np.int64)))


def huffman_encode(
    symbols: np.ndarray, lengths: np.ndarray, block_size: int | None = None
) -> tuple[bytes, int, np.ndarray]:
    """Encodes `symbols` with the canonical code of `lengths`.

    Args:
        symbols: uint8 symbols, each with a non-zero length in `lengths`.
        lengths: the code-length table (as from `code_lengths`).
        block_size: when given, also return the bit offset of every block start.

    Returns:
        `(data, total_bits, block_offsets)`: the coded bytes (zero-padded to a byte),
        the number of coded bits, and the bit offsets of symbols `block_size`,
        `2*block_size`, ... (int64; empty without `block_size`).
    """
    sym = np.asarray(symbols).reshape(-1).astype(np.uint8, copy=False)
    lens = np.zeros(256, np.int64)
    lens[: np.size(lengths)] = np.asarray(lengths).reshape(-1)
    n = sym.size
    if n == 0:
        return b"", 0, np.zeros(0, np.int64)
    freqs = np.bincount(sym, minlength=256)
    if np.any((freqs > 0) & (lens == 0)):
        raise ValueError("Expected every symbol to have a non-zero code length.")
    total = int(np.dot(freqs, lens))
    # Each code left-aligned in a 24-bit window; shifted right by the start bit's
    # position within its byte it lands where it belongs (codes are <= 15 bits).
    codes = np.zeros(256, np.int64)
    codes[: np.size(lengths)] = canonical_codes(lengths)
    aligned = codes << np.maximum(24 - lens, 0)
    nbytes = (total + 7) // 8
    out = np.zeros(nbytes + 3, np.uint8)
    offsets = []
    carry = 0
    for a in range(0, n, _CHUNK):
        b = min(n, a + _CHUNK)
        chunk = sym[a:b]
        length = lens[chunk]
        start = np.cumsum(length)
        start -= length
        start += carry
        carry = int(start[-1] + length[-1])
        if block_size:
            first = -(-max(a, 1) // block_size) * block_size
            offsets.append(start[first - a : b - a : block_size].copy())
        base = int(start[0]) >> 3
        start -= base * 8
        window = aligned[chunk] >> (start & 7)
        acc = np.bincount(start >> 3, weights=window).astype(np.int64)
        m = acc.size
        seg = out[base : base + m + 2]
        seg[:m] |= (acc >> 16).astype(np.uint8)
        seg[1 : m + 1] |= ((acc >> 8) & 0xFF).astype(np.uint8)
        seg[2 : m + 2] |= (acc & 0xFF).astype(np.uint8)
    blocks = np.concatenate(offsets) if offsets else np.zeros(0, np.int64)
    return out[:nbytes].tobytes(), total, blocks


def decode_table(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Returns `(symbol, length, maxlen)` lookup tables of 2**maxlen entries.

    Entry w (the next maxlen bits of the data, read most significant first) gives the
    symbol whose code is a prefix of w and its length; bit patterns that are no code
    get length `_INVALID`.
    """
    lens = np.asarray(lengths).astype(np.int64)
    maxlen = max(1, int(lens.max()) if lens.size else 1)
    codes = canonical_codes(lens).astype(np.int64)
    size = 1 << maxlen
    sym_table = np.zeros(size, np.uint8)
    len_table = np.full(size, _INVALID, np.int64)
    for s in np.flatnonzero(lens).tolist():
        length = int(lens[s])
        lo = int(codes[s]) << (maxlen - length)
        hi = (int(codes[s]) + 1) << (maxlen - length)
        sym_table[lo:hi] = s
        len_table[lo:hi] = length
    return sym_table, len_table, maxlen


def _windows(data: np.ndarray) -> np.ndarray:
    """24-bit big-endian windows at each byte, plus one zero window at the end."""
    padded = np.zeros(data.size + 3, np.uint32)
    padded[: data.size] = data
    return (padded[:-2] << 16) | (padded[1:-1] << 8) | padded[2:]


def huffman_decode(
    data: bytes | memoryview | np.ndarray,
    lengths: np.ndarray,
    count: int,
    block_size: int,
    block_offsets: np.ndarray,
    *,
    name: str | None = None,
    offset: int | None = None,
    method: str = "auto",
) -> np.ndarray:
    """Decodes `count` symbols coded in blocks of `block_size` symbols.

    Args:
        data: the coded bytes.
        lengths: a valid code-length table (see `check_lengths`).
        count: the number of symbols.
        block_size: symbols per block (the last block may be shorter).
        block_offsets: the bit offsets of blocks 1, 2, ... (block 0 starts at 0).
        name: the tensor named in errors.
        offset: the byte offset of the data, for errors.
        method: "auto", "step" (one numpy pass per symbol index in a block, across all
            blocks) or "doubling" (pointer doubling over all bit positions). Both give
            the same symbols and the same errors. A one-symbol code is always decoded
            by checking that its bits are zero.

    Returns:
        A uint8 array of `count` symbols.

    Raises:
        FormatError: the length table is invalid, a block offset is outside the data,
            decoding would read past the data, or a bit pattern is no code.
    """
    buf = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data
    buf = buf.reshape(-1).view(np.uint8)
    check_lengths(lengths, count, name=name, offset=offset)
    if count == 0:
        return np.zeros(0, np.uint8)
    starts = np.concatenate([[0], np.asarray(block_offsets, np.int64)])
    if starts.size != -(-count // block_size):
        raise ValueError(
            f"Expected {-(-count // block_size) - 1} block offsets for {count} symbols "
            f"in blocks of {block_size}. Received: {starts.size - 1}"
        )
    if starts.min() < 0 or starts.max() > buf.size * 8:
        raise FormatError(
            f"a Huffman block offset is outside the {buf.size * 8}-bit data",
            tensor=name,
            offset=offset,
        )
    nblocks = starts.size
    last = count - (nblocks - 1) * block_size
    sym_table, len_table, maxlen = decode_table(lengths)
    total_bits = buf.size * 8
    used = np.flatnonzero(np.asarray(lengths))
    if used.size == 1 and method in ("auto", "step", "doubling"):
        method = "single"
    if method == "auto":
        # Measured costs: the step method pays ~10 numpy calls per symbol index
        # (plus a little per block); doubling pays log2(block) gathers over every
        # bit of the data. Small streams favour doubling, large ones stepping.
        steps = min(block_size, count)
        doubling_cost = total_bits * max(1, steps.bit_length()) * 20e-9
        step_cost = steps * (37e-6 + nblocks * 40e-9)
        # Doubling holds a few int64 arrays per data bit: cap its memory (~1 GiB).
        small = total_bits <= _DOUBLING_MAX_BITS
        method = "doubling" if small and doubling_cost < step_cost else "step"
    if method == "doubling":
        symbols, end = _decode_doubling(
            buf, sym_table, len_table, maxlen, starts, block_size, last
        )
    elif method == "single":
        symbols, end = _decode_single(buf, int(used[0]), starts, block_size, last)
    elif method == "step":
        symbols, end = _decode_steps(
            buf, sym_table, len_table, maxlen, starts, block_size, last
        )
    else:
        raise ValueError(
            'Expected `method` in ("auto", "step", "doubling"). Received: '
            f"method={method!r}"
        )
    bad = np.flatnonzero(end > total_bits)
    if bad.size:
        raise FormatError(
            f"Huffman block {int(bad[0])} of {nblocks} reads past the end of the "
            f"{buf.size}-byte data or holds a bit pattern that is no code",
            tensor=name,
            offset=offset,
        )
    return symbols


def _decode_single(buf, symbol, starts, block_size, last):
    """The one-symbol code: every code is the single bit 0, so block i's symbols are
    its bits [start, start + length), which must all be zero and inside the data."""
    nblocks = starts.size
    lengths = np.full(nblocks, block_size, np.int64)
    lengths[-1] = last
    end = starts + lengths
    total = buf.size * 8
    ones = np.zeros(total + 1, np.int64)
    np.cumsum(np.unpackbits(buf), out=ones[1:])
    inside = end <= total
    clipped = np.minimum(end, total)
    bad = inside & (ones[clipped] != ones[np.minimum(starts, total)])
    end = np.where(bad, total + 1, end)
    count = (nblocks - 1) * block_size + last
    return np.full(count, symbol, np.uint8), end


def _decode_steps(buf, sym_table, len_table, maxlen, starts, block_size, last):
    """One numpy pass per symbol index within a block, each across all blocks."""
    nblocks = starts.size
    steps = block_size if nblocks > 1 else last
    # 24-bit windows at every byte, padded far enough that a block that runs off
    # the end (by at most 15 bits a step) still reads zeros; the caller then rejects
    # it by its end position.
    windows = np.zeros(buf.size + (15 * steps) // 8 + 4, np.int64)
    windows[: buf.size + 1] = _windows(buf)
    entry = (len_table << 8) | sym_table  # length and symbol in one lookup
    mask = (1 << maxlen) - 1
    top = 24 - maxlen
    out = np.empty((steps, nblocks), np.uint8)
    pos = starts.copy()
    for t in range(steps):
        p = pos if t < last else pos[:-1]
        w = windows[p >> 3]
        w >>= top - (p & 7)
        w &= mask
        e = entry[w]
        out[t, : p.size] = e  # the low byte: the symbol
        e >>= 8
        p += e
    count = (nblocks - 1) * block_size + last
    return out.T.reshape(-1)[:count].copy(), pos


def _decode_doubling(buf, sym_table, len_table, maxlen, starts, block_size, last):
    nblocks = starts.size
    total = buf.size * 8
    end_node, bad_node = total, total + 1
    q = np.arange(total, dtype=np.int64)
    windows = _windows(buf)
    shift = (24 - maxlen - (q & 7)).astype(np.uint32)
    w = (windows[q >> 3] >> shift) & np.uint32((1 << maxlen) - 1)
    symbol_at = sym_table[w]
    nxt = np.empty(total + 2, np.int64)
    nxt[:total] = q + len_table[w]
    nxt[:total][nxt[:total] > total] = bad_node
    nxt[end_node] = bad_node
    nxt[bad_node] = bad_node
    del q, shift, w
    steps = block_size if nblocks > 1 else last
    chain = starts[:, None]
    jump = nxt
    while chain.shape[1] < steps:
        chain = np.concatenate([chain, jump[chain]], axis=1)
        if chain.shape[1] < steps:
            jump = jump[jump]
    chain = chain[:, :steps]
    # Each block's position after its last symbol (the last block may be shorter).
    lens = np.full(nblocks, steps, np.int64)
    lens[-1] = last
    final = nxt[chain[np.arange(nblocks), lens - 1]]
    symbols_full = np.zeros(total + 2, np.uint8)
    symbols_full[:total] = symbol_at
    flat = chain.reshape(-1)[: (nblocks - 1) * block_size + last]
    end = np.where(final == bad_node, np.int64(total + 1), final)
    return symbols_full[flat], end
