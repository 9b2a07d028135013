"""Interleaved rANS streams (docs/FORMAT.md 2.2, coding 2, format version 3).

Range asymmetric numeral systems (Duda 2013) with static frequencies quantised to a
power-of-two total 2**L, 32-bit states renormalised 16 bits at a time (Giesen's
"rans_word" arrangement: at most one renormalisation per symbol), `lanes` states
interleaved over one word stream, and the symbols cut into independent blocks whose
byte offsets are stored so that a decoder may work on many blocks at once.

* `quantize_frequencies`: symbol counts to frequencies summing to exactly 2**L, every
  present symbol >= 1, close to the cost-optimal rounding.
* `write_table` / `read_table`: the compact frequency table (LEB128 varints, runs of
  absent symbols as one zero and a run length).
* `rans_encode` / `rans_decode`: numpy, vectorised across blocks and lanes: one pass
  of numpy operations per interleaving step, never a per-symbol Python loop.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tfedge.errors import FormatError

# The state interval is [STATE_LOW, 2**32); renormalisation moves 16 bits.
STATE_LOW = 1 << 16
MAX_SCALE_BITS = 16
MAX_LANES = 32
MAX_BITS = 16
# Bytes of one lane's state stored at the start of each block.
STATE_BYTES = 4
# The default block (symbols) of a multi-block stream is between these, as large as
# needed for the per-block costs (its offset and states) to take under 0.1% of the
# coded data; the cap bounds the numpy reader's steps (block size / lanes).
MIN_BLOCK_SIZE = 1 << 16
MAX_DEFAULT_BLOCK_SIZE = 1 << 17
_BLOCK_OVERHEAD_SHARE = 0.001
# Symbols per lane below which fewer lanes are used (each lane costs 4 bytes a block).
_SYMBOLS_PER_LANE = 1024
_DEFAULT_MAX_LANES = 16
# The encoder's largest scale when the alphabet allows: a 2**12-slot table stays in a
# decoder's L1 cache (decode speed), and the rounding to 1/4096 costs well under 1%.
DEFAULT_MAX_SCALE_BITS = 12


@dataclasses.dataclass(frozen=True)
class RansPlan:
    """How a stream of these symbol counts is coded (everything but the data)."""

    scale_bits: int  # L: frequencies sum to 2**L
    freqs: np.ndarray  # int64, one per symbol value present in the table
    table: bytes  # the stored frequency table
    lanes: int
    block_size: int
    estimated_bits: float  # the data's cost under the quantised model


def _varint(values: np.ndarray) -> bytes:
    out = bytearray()
    for v in values.tolist():
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
    return bytes(out)


def write_table(freqs: np.ndarray) -> bytes:
    """The stored table of `freqs`: varint A (symbols 0..A-1 described), then per
    symbol its varint frequency, a zero frequency being followed by a varint count of
    further absent symbols (a run)."""
    f = np.asarray(freqs, np.int64)
    nz = np.flatnonzero(f)
    a = int(nz[-1]) + 1 if nz.size else 0
    items = [a]
    s = 0
    while s < a:
        if f[s]:
            items.append(int(f[s]))
            s += 1
            continue
        end = int(nz[np.searchsorted(nz, s)])  # the next present symbol
        items += [0, end - s - 1]
        s = end
    return _varint(np.array(items, np.int64))


def _varint_sizes(values: np.ndarray) -> np.ndarray:
    return 1 + (values >= 1 << 7) + (values >= 1 << 14)


def table_size(freqs: np.ndarray) -> int:
    """`len(write_table(freqs))`, computed without building it."""
    f = np.asarray(freqs, np.int64)
    nz = np.flatnonzero(f)
    if not nz.size:
        return 1
    a = int(nz[-1]) + 1
    # Runs of absent symbols before each present one: one zero byte and a varint.
    runs = np.diff(np.concatenate([[-1], nz])) - 1
    runs = runs[runs > 0]
    return int(
        _varint_sizes(np.array([a]))[0]
        + _varint_sizes(f[nz]).sum()
        + runs.size
        + _varint_sizes(runs - 1).sum()
    )


def read_table(
    data: np.ndarray, pos: int, end: int, bits: int, scale_bits: int, name, at
) -> np.ndarray:
    """Reads the table in data[pos:end] (exactly) into 2**bits frequencies and checks
    that they sum to 2**scale_bits (or are empty, which only count 0 allows)."""

    def fail(message: str, where: int) -> FormatError:
        return FormatError(message, tensor=name, offset=at + where)

    raw = data[pos:end].tolist()  # at is pos's offset in the caller's buffer
    i = 0

    def take() -> int:
        nonlocal i
        value = 0
        for shift in (0, 7, 14):
            if i >= len(raw):
                raise fail("truncated rANS frequency table", i)
            byte = raw[i]
            i += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
        raise fail("rANS frequency table varint longer than 3 bytes", i - 1)

    a = take()
    if a > 1 << bits:
        raise fail(
            f"rANS table describes {a} symbols, the {bits}-bit alphabet has "
            f"{1 << bits}",
            0,
        )
    freqs = np.zeros(1 << bits, np.int64)
    s = 0
    total = 1 << scale_bits
    while s < a:
        start = i
        f = take()
        if f > total:
            raise fail(f"rANS frequency {f} exceeds the total 2**{scale_bits}", start)
        if f:
            freqs[s] = f
            s += 1
            continue
        run = take()
        if s + 1 + run > a:
            raise fail(
                f"rANS table run of {run + 1} absent symbols passes A={a}", start
            )
        s += 1 + run
    if i != len(raw):
        raise fail(f"{len(raw) - i} bytes after the rANS frequency table", i)
    if a and int(freqs.sum()) != total:
        raise fail(
            f"rANS frequencies sum to {int(freqs.sum())}, expected 2**{scale_bits}", 0
        )
    if a and not freqs[a - 1]:
        raise fail("rANS table's last described symbol is absent", 0)
    return freqs


def quantize_frequencies(counts: np.ndarray, scale_bits: int) -> np.ndarray:
    """Frequencies summing to 2**scale_bits, >= 1 where counts > 0, 0 elsewhere.

    Rounds count x 2**L / total, then moves the difference one unit at a time where
    it costs least (sum(count x log2 freq) is the data's cost)."""
    c = np.asarray(counts, np.int64)
    total = int(c.sum())
    target = 1 << scale_bits
    present = c > 0
    if not present.any():
        return np.zeros_like(c)
    if int(present.sum()) > target:
        raise ValueError(
            f"Expected at most 2**scale_bits={target} present symbols. Received: "
            f"{int(present.sum())}"
        )
    f = np.where(present, np.maximum(1, np.round(c * (target / total))), 0).astype(
        np.int64
    )
    diff = target - int(f.sum())
    cf = c.astype(np.float64)
    while diff != 0:
        idx = np.flatnonzero(present if diff > 0 else present & (f > 1))
        if diff > 0:
            # The gain of one more unit: count x log2((f + 1) / f).
            gain = cf[idx] * np.log2((f[idx] + 1) / f[idx])
            order = idx[np.argsort(-gain, kind="stable")]
            step = order[: min(diff, order.size)]
            f[step] += 1
            diff -= step.size
        else:
            loss = cf[idx] * np.log2(f[idx] / (f[idx] - 1))
            order = idx[np.argsort(loss, kind="stable")]
            step = order[: min(-diff, order.size)]
            f[step] -= 1
            diff += step.size
    return f


def _cost_bits(counts: np.ndarray, freqs: np.ndarray, scale_bits: int) -> float:
    present = counts > 0
    return float(
        np.sum(counts[present] * (scale_bits - np.log2(freqs[present].astype(float))))
    )


def default_lanes(count: int) -> int:
    """Interleaved states for a stream of `count` symbols: a power of two, more for
    longer streams (up to 16), so that each lane has >= 1024 symbols."""
    lanes = 1
    while lanes < _DEFAULT_MAX_LANES and count >= 2 * lanes * _SYMBOLS_PER_LANE:
        lanes *= 2
    return lanes


def plan(
    counts: np.ndarray,
    bits: int,
    *,
    lanes: int | None = None,
    block_size: int | None = None,
) -> RansPlan:
    """Picks the scale L (the smallest table plus data) and the block layout."""
    c = np.asarray(counts, np.int64)[: 1 << bits]
    count = int(c.sum())
    present = int(np.count_nonzero(c))
    lanes = default_lanes(count) if lanes is None else lanes
    best = None
    low = max(1, math.ceil(math.log2(max(present, 1))))
    for scale in range(low, max(low, DEFAULT_MAX_SCALE_BITS) + 1):
        freqs = quantize_frequencies(c, scale) if count else np.zeros_like(c)
        bits_cost = _cost_bits(c, freqs, scale) if count else 0.0
        cost = 8 * table_size(freqs) + bits_cost
        if best is not None and cost >= best[0]:
            break  # the table grows faster than the data shrinks from here on
        best = (cost, scale, freqs, bits_cost)
        # Past the point where the counts are represented exactly, more bits only
        # grow the table.
        if count and (1 << scale) >= 4 * count:
            break
    _, scale, freqs, bits_cost = best
    table = write_table(freqs)
    if block_size is None:
        per_block = 8 * (4 + STATE_BYTES * lanes)
        max_blocks = max(1, int(bits_cost * _BLOCK_OVERHEAD_SHARE / per_block))
        block_size = min(
            MAX_DEFAULT_BLOCK_SIZE, max(MIN_BLOCK_SIZE, -(-count // max_blocks))
        )
    return RansPlan(scale, freqs, table, lanes, block_size, bits_cost)


def quick_plan(counts: np.ndarray, bits: int, *, block_size: int | None = None):
    """A cheap stand-in for `plan` when only the size matters roughly (ranking
    candidates): the order-0 entropy for the data and the table of the counts rounded
    to 2**12 (or the alphabet's minimum), without quantising exactly."""
    c = np.asarray(counts, np.int64)[: 1 << bits]
    count = int(c.sum())
    lanes = default_lanes(count)
    present = c > 0
    npresent = int(present.sum())
    scale = max(DEFAULT_MAX_SCALE_BITS, math.ceil(math.log2(max(npresent, 1))))
    if count:
        p = c[present] / count
        data_bits = float(-np.sum(c[present] * np.log2(p)))
        rounded = np.where(
            present, np.maximum(1, np.round(c * ((1 << scale) / count))), 0
        )
    else:
        data_bits, rounded = 0.0, c
    size = table_size(rounded.astype(np.int64))
    if block_size is None:
        per_block = 8 * (4 + STATE_BYTES * lanes)
        max_blocks = max(1, int(data_bits * _BLOCK_OVERHEAD_SHARE / per_block))
        block_size = min(
            MAX_DEFAULT_BLOCK_SIZE, max(MIN_BLOCK_SIZE, -(-count // max_blocks))
        )
    return RansPlan(scale, rounded, b"\0" * size, lanes, block_size, data_bits)


def _layout(count: int, lanes: int, block_size: int):
    nblocks = -(-count // block_size) if count else 0
    steps = -(-min(block_size, count) // lanes) if count else 0
    return nblocks, steps


# Blocks encoded together by the numpy encoder: its temporaries take about 12 bytes a
# symbol, so groups of blocks are bounded to about this many symbols.
_ENCODE_GROUP_SYMBOLS = 1 << 22


# A faster encoder with `rans_encode`'s contract and bytes, `fn(symbols, plan)`, or None
# for numpy's; tfedge.runtime installs the native library's (`set_rans_encoder`).
_accelerated = None


def set_rans_encoder(fn):
    """Makes `fn(symbols, plan) -> (block offsets, data)` encode every rANS stream
    instead of the numpy encoder (None: numpy again); returns the previous one. `fn`
    must give the numpy encoder's bytes: tfedge.runtime tests its native one so."""
    global _accelerated
    previous, _accelerated = _accelerated, fn
    return previous


def rans_encode(symbols: np.ndarray, p: RansPlan) -> tuple[np.ndarray, bytes]:
    """Encodes `symbols` (1-D ints, each with a non-zero frequency) under plan `p`.

    Returns `(block byte offsets of blocks 1.., data)`. With an encoder installed by
    `set_rans_encoder`, that one; otherwise numpy's (`rans_encode_numpy`).
    """
    if _accelerated is not None:
        return _accelerated(symbols, p)
    return rans_encode_numpy(symbols, p)


def rans_encode_numpy(symbols: np.ndarray, p: RansPlan) -> tuple[np.ndarray, bytes]:
    """`rans_encode` in numpy, the reference. Vectorised across blocks and lanes: one
    pass of a few numpy operations per interleaving step, in 32 bits."""
    sym = np.asarray(symbols).reshape(-1).astype(np.int64)
    count = sym.size
    lanes, block = p.lanes, p.block_size
    nblocks, steps = _layout(count, lanes, block)
    if count == 0:
        return np.zeros(0, np.int64), b""
    cum_of = (np.cumsum(p.freqs) - p.freqs).astype(np.uint32)
    freq_of = p.freqs.astype(np.uint32)
    group = max(1, _ENCODE_GROUP_SYMBOLS // max(1, steps * lanes))
    parts = []
    offsets = []
    at = 0
    for first in range(0, nblocks, group):
        last = min(nblocks, first + group)
        chunk = sym[first * block : min(count, last * block)]
        states, words, emitted = _encode_blocks(chunk, freq_of, cum_of, p, steps)
        pos = 0
        for i in range(last - first):
            if first + i:
                offsets.append(at)
            parts.append(states[i].tobytes())
            parts.append(words[pos : pos + emitted[i]].tobytes())
            pos += int(emitted[i])
            at += STATE_BYTES * lanes + 2 * int(emitted[i])
    return np.array(offsets, np.int64), b"".join(parts)


def _encode_blocks(sym, freq_of, cum_of, p: RansPlan, steps: int):
    """Encodes consecutive whole blocks (the last may be short): returns each block's
    final states (nblocks, lanes) u32, every block's words in the decoder's reading
    order, concatenated, and each block's word count."""
    count = sym.size
    lanes, block, scale = p.lanes, p.block_size, p.scale_bits
    nblocks = -(-count // block)
    per_block = steps * lanes
    # Each symbol's frequency and cumulative frequency laid out (block, step, lane);
    # padding past a block's end has frequency 2**L and cumulative 0, which encodes
    # as the identity and never renormalises, so no step needs a mask.
    freq = np.full(nblocks * per_block, 1 << scale, np.uint32)
    cum = np.zeros(nblocks * per_block, np.uint32)
    block_of = np.arange(count) // block
    at = block_of * per_block + (np.arange(count) - block_of * block)
    freq[at] = freq_of[sym]
    cum[at] = cum_of[sym]
    freq = freq.reshape(nblocks, steps, lanes)
    cum = cum.reshape(nblocks, steps, lanes)
    # Every step's renormalisations and the low 16 bits of the states they shift out;
    # the decoder reads the word of (step t, lane l) when it decodes that symbol, so
    # the words, in (step, lane) order per block, are the stream it reads.
    need_all = np.zeros((nblocks, steps, lanes), bool)
    word_all = np.zeros((nblocks, steps, lanes), "<u2")
    x = np.full((nblocks, lanes), STATE_LOW, np.uint32)
    shift = np.uint32(32 - scale)
    scale32 = np.uint32(scale)
    sixteen = np.uint32(16)
    for t in range(steps - 1, -1, -1):
        f = freq[:, t, :]
        # x >= f << (32 - L), without the shift overflowing 32 bits at f = 2**L.
        need = (x >> shift) >= f
        need_all[:, t, :] = need
        word_all[:, t, :] = x
        x = np.where(need, x >> sixteen, x)
        q = x // f
        x = (q << scale32) + (x - q * f) + cum[:, t, :]
    return x.astype("<u4"), word_all[need_all], need_all.sum(axis=(1, 2))


def slot_table(freqs: np.ndarray, scale_bits: int) -> np.ndarray:
    """The symbol of each of the 2**L slots."""
    return np.repeat(np.arange(freqs.size), freqs).astype(np.int64)


def rans_decode(
    data: np.ndarray,
    freqs: np.ndarray,
    scale_bits: int,
    count: int,
    lanes: int,
    block_size: int,
    offsets: np.ndarray,
    *,
    name=None,
    offset: int = 0,
) -> np.ndarray:
    """Decodes `count` symbols from the stream data `data` (uint8 array).

    `offsets` are the byte offsets of blocks 1.. (checked non-decreasing and within
    the data by the caller). Every block must end with every lane's state at 2**16,
    its words exactly consumed.
    """

    def fail(message: str, at: int) -> FormatError:
        return FormatError(message, tensor=name, offset=offset + at)

    dtype = np.uint8 if freqs.size <= 256 else np.uint16
    if count == 0:
        return np.zeros(0, dtype)
    nblocks, steps = _layout(count, lanes, block_size)
    starts = np.concatenate([[0], offsets]).astype(np.int64)
    ends = np.append(starts[1:], data.size)
    sizes = ends - starts
    head = STATE_BYTES * lanes
    short = np.flatnonzero((sizes < head) | ((sizes - head) % 2 != 0))
    if short.size:
        i = int(short[0])
        raise fail(
            f"rANS block {i} is {int(sizes[i])} bytes: {lanes} states of 4 bytes and "
            "whole 16-bit words needed",
            int(starts[i]),
        )
    idx = starts[:, None] + 4 * np.arange(lanes)[None, :]
    d32 = data.astype(np.uint64)
    x = (
        d32[idx]
        | (d32[idx + 1] << np.uint64(8))
        | (d32[idx + 2] << np.uint64(16))
        | (d32[idx + 3] << np.uint64(24))
    )
    if np.any(x < STATE_LOW):
        b, lane = (int(v[0]) for v in np.nonzero(x < STATE_LOW))
        raise fail(
            f"rANS block {b} lane {lane} starts in state {int(x[b, lane])}, "
            "below 2**16",
            int(starts[b]) + 4 * lane,
        )
    # Per slot: its symbol, its symbol's frequency, and slot - cumulative frequency,
    # so that a step is x = freq x (x >> L) + bias (all in 32 bits: no overflow).
    slots = slot_table(freqs, scale_bits)
    cum = np.cumsum(freqs) - freqs
    slot_sym = slots.astype(dtype)
    slot_freq = freqs[slots].astype(np.uint32)
    slot_bias = (np.arange(slots.size) - cum[slots]).astype(np.uint32)
    mask = np.uint32((1 << scale_bits) - 1)
    scale = np.uint32(scale_bits)
    x = x.astype(np.uint32)
    nwords = (sizes - head) // 2
    # Every block's words, one array; word k of block b is words[wbase[b] + k].
    word_bytes = np.concatenate(
        [data[int(a) + head : int(e)] for a, e in zip(starts, ends, strict=True)]
    )
    words = word_bytes.view("<u2").astype(np.uint32)
    wbase = np.cumsum(nwords) - nwords
    ptr = wbase.copy()
    in_last = count - (nblocks - 1) * block_size
    out = np.zeros((nblocks, steps, lanes), dtype)
    lane_ix = np.arange(lanes)
    low = np.uint32(STATE_LOW)
    sixteen = np.uint32(16)
    for t in range(steps):
        slot = x & mask
        out[:, t, :] = slot_sym[slot]
        dec = slot_freq[slot] * (x >> scale) + slot_bias[slot]
        if t * lanes + lanes > min(in_last, block_size):
            j = t * lanes + lane_ix
            act = np.broadcast_to(j < block_size, (nblocks, lanes)).copy()
            act[-1] &= j < in_last
            x = np.where(act, dec, x)
            need = (x < low) & act
        else:
            x = dec
            need = x < low
        if need.any():
            # Lanes read in ascending order; a block that reads past its words is
            # caught below (its pointer passes its end), the gather clipped.
            at = ptr[:, None] + np.cumsum(need, axis=1) - 1
            w = np.take(words, at, mode="clip") if words.size else 0
            x = np.where(need, (x << sixteen) | w, x)
            ptr += need.sum(axis=1)
    ptr -= wbase
    if np.any(ptr > nwords):
        b = int(np.flatnonzero(ptr > nwords)[0])
        raise fail(f"rANS block {b} reads past its data", int(ends[b]))
    if np.any(ptr != nwords):
        b = int(np.flatnonzero(ptr != nwords)[0])
        raise fail(
            f"rANS block {b} leaves {int(nwords[b] - ptr[b])} of its words unread",
            int(starts[b]),
        )
    if np.any(x != STATE_LOW):
        b = int(np.nonzero(x != STATE_LOW)[0][0])
        raise fail(
            f"rANS block {b} does not end in the initial state (corrupt data)",
            int(starts[b]),
        )
    flat = out.reshape(nblocks, steps * lanes)[:, :block_size].reshape(-1)
    return flat[:count]
