"""Symbol streams: fixed width, Huffman or rANS, with their headers (docs/FORMAT.md
2.2).

```
u8   coding: 0 = fixed width, 1 = Huffman, 2 = rANS (format version 3)
u8   bits: symbol width, 1..8 (rANS: 1..16)
u32  count
u32  data size in bytes
Huffman only:
  u32  block size B
  ceil(2**bits / 2) bytes of 4-bit code lengths, first symbol in the high nibble
  (ceil(count / B) - 1) x u32 bit offsets of blocks 1, 2, ...
rANS only:
  u8   scale bits L, u8 lanes, u32 block size B, u32 table size T
  T bytes of frequency table
  (ceil(count / B) - 1) x u32 byte offsets of blocks 1, 2, ...
data
```
"""

from __future__ import annotations

import dataclasses
import math
import struct

import numpy as np

from tfedge.codecs import _bitpack, _huffman, _rans
from tfedge.codecs._limits import MAX_BLOCK_SIZE
from tfedge.errors import FormatError

FIXED = 0
HUFFMAN = 1
RANS = 2
CODINGS = ("auto", "fixed", "huffman", "rans")
# The codings "auto" chooses among by default: "auto" without rANS keeps a payload
# readable by format version 1 and 2 readers.
CODING_NAMES = ("fixed", "huffman", "rans")
# The first payload format version that has each stream coding.
CODING_VERSION = {"fixed": 1, "huffman": 1, "rans": 3}
# Bytes of a rANS stream's header after the common ten: L, lanes, B, T.
RANS_HEADER_SIZE = 10
_RANS_HEADER = struct.Struct("<BBII")

# Bytes before the data of a fixed-width stream, and the extra u32 block size of a
# Huffman one.
FIXED_HEADER_SIZE = 10
_HEADER = struct.Struct("<BBII")

# The smallest default Huffman block, and the share of the coded data that block
# offsets may take: 32 bits per block <= coded bits / 256 (under 0.4%).
MIN_BLOCK_SIZE = 4096
_BITS_PER_BLOCK_OFFSET_BUDGET = 32 * 256

_U32_MAX = 0xFFFFFFFF


def check_huffman_bits(total_bits: int) -> None:
    """Huffman block offsets are u32 bit offsets: the coded data must stay under
    2**32 bits (512 MiB), or the offsets would wrap."""
    if total_bits > _U32_MAX:
        raise ValueError(
            "Expected Huffman coded data under 2**32 bits (512 MiB), for its u32 "
            f"block offsets. Received: {total_bits} bits; use fixed-width coding or "
            "split the tensor."
        )


def _check_coding(coding: str, allow_auto: bool = True) -> str:
    allowed = CODINGS if allow_auto else CODINGS[1:]
    if coding not in allowed:
        raise ValueError(f"Expected `coding` in {allowed}. Received: coding={coding!r}")
    return coding


def default_block_size(count: int, total_bits: int) -> int:
    """Returns the Huffman block size used when none is given.

    At least `MIN_BLOCK_SIZE` symbols, and large enough that the block offsets take
    under 0.4% of the coded data; a stream of 25M symbols gets a few thousand blocks,
    which the numpy decoder handles all at once.
    """
    max_blocks = max(1, total_bits // _BITS_PER_BLOCK_OFFSET_BUDGET)
    return max(MIN_BLOCK_SIZE, -(-count // max_blocks))


def _table_size(bits: int) -> int:
    return ((1 << bits) + 1) // 2


def _frequencies(sym: np.ndarray, bits: int) -> np.ndarray:
    return np.bincount(sym, minlength=1 << bits)[: 1 << bits]


def _huffman_plan(freqs: np.ndarray, count: int, block_size: int | None):
    lengths = _huffman.code_lengths(freqs, _huffman.MAX_CODE_LENGTH)
    total = _huffman.encoded_bits(freqs, lengths)
    if block_size is None:
        block_size = default_block_size(count, total)
    nblocks = -(-count // block_size)
    return lengths, total, block_size, nblocks


def _check_block_size(block_size: int | None) -> None:
    if block_size is None:
        return
    if isinstance(block_size, bool) or not isinstance(block_size, int | np.integer):
        raise ValueError(
            f"Expected `block_size` to be an int. Received: {block_size!r}"
        )
    if not 1 <= block_size <= MAX_BLOCK_SIZE:
        raise ValueError(
            f"Expected `block_size` in [1, {MAX_BLOCK_SIZE}]. Received: "
            f"block_size={block_size}"
        )


def _check_width(bits, coding: str) -> int:
    """Symbol widths: 1..8, and up to 16 for rANS ("auto" then means rANS)."""
    if coding in ("rans", "auto") and not isinstance(bits, bool):
        if isinstance(bits, int | np.integer) and 8 < bits <= _rans.MAX_BITS:
            return int(bits)
    return _bitpack.check_bits(bits)


def _wide_symbols(symbols, bits: int) -> np.ndarray:
    """`symbols` as a flat uint16 array after checking each is < 2**bits (9..16)."""
    sym = np.asarray(symbols).reshape(-1)
    if sym.size == 0:
        return np.zeros(0, np.uint16)
    if not np.issubdtype(sym.dtype, np.integer):
        raise ValueError(
            f"Expected integer `symbols`. Received: symbols with dtype {sym.dtype}"
        )
    low, high = int(sym.min()), int(sym.max())
    if low < 0 or high >= 1 << bits:
        raise ValueError(
            f"Expected `symbols` in [0, {(1 << bits) - 1}] for bits={bits}. "
            f"Received: symbols in [{low}, {high}]"
        )
    return sym.astype(np.uint16)


def _as_stream_symbols(symbols, bits: int) -> np.ndarray:
    if bits > 8:
        return _wide_symbols(symbols, bits)
    return _bitpack.as_symbols(symbols, bits)


def _rans_size(p: _rans.RansPlan, count: int, data_size: int) -> int:
    nblocks = -(-count // p.block_size) if count else 0
    return (
        FIXED_HEADER_SIZE
        + RANS_HEADER_SIZE
        + len(p.table)
        + 4 * max(0, nblocks - 1)
        + data_size
    )


def _rans_estimate(p: _rans.RansPlan, count: int) -> int:
    """A rANS stream's size from its model: the data's cost in whole 16-bit words
    plus each block's states (the exact size depends on the symbols' order)."""
    nblocks = -(-count // p.block_size) if count else 0
    words = max(0, math.ceil((p.estimated_bits - 16 * p.lanes * nblocks) / 16))
    return _rans_size(p, count, nblocks * _rans.STATE_BYTES * p.lanes + 2 * words)


def _fixed_huffman_sizes(f: np.ndarray, bits: int, count: int, block_size):
    """(fixed, Huffman) sizes; None where the coding cannot carry the symbols (a
    Huffman size is also flagged, by a negative value, when its block offsets could
    not address the data: "auto" then skips it, the forced "huffman" raises)."""
    fixed = huffman = None
    if bits <= 8:
        fixed = FIXED_HEADER_SIZE + _bitpack.packed_size(count, bits)
        _, total, _, nblocks = _huffman_plan(f, count, block_size)
        huffman = (
            FIXED_HEADER_SIZE
            + 4
            + _table_size(bits)
            + 4 * max(0, nblocks - 1)
            + (total + 7) // 8
        )
        if total > _U32_MAX:
            huffman = -huffman
    return fixed, huffman


def stream_size_from_frequencies(
    freqs: np.ndarray, bits: int, coding: str = "auto", block_size: int | None = None
) -> int:
    """Returns the byte size of a stream with these symbol frequencies.

    Exact for fixed width and Huffman. A rANS stream's exact size depends on the
    order of its symbols; from frequencies alone it is estimated (its order-0
    entropy, its table from the counts rounded to 2**12; typically within 1%), and
    "auto" compares that estimate. `stream_size` gives the exact size of given
    symbols.

    Args:
        freqs: the count of each symbol value 0 .. 2**bits - 1.
        bits: the symbol width, 1..8 (1..16 for rANS).
        coding: "fixed", "huffman", "rans" or "auto" (the smallest).
        block_size: the Huffman or rANS block size; None for the default.
    """
    _check_coding(coding)
    bits = _check_width(bits, coding)
    _check_block_size(block_size)
    f = np.asarray(freqs).astype(np.int64)
    if f.size > 1 << bits and f[1 << bits :].any():
        raise ValueError(f"Expected symbols in [0, {(1 << bits) - 1}] for bits={bits}.")
    f = f[: 1 << bits]
    count = int(f.sum())
    sizes = _candidate_sizes(f, bits, count, coding, block_size)
    return min(size for size, _ in sizes)


def _candidate_sizes(f, bits, count, coding, block_size):
    """[(size, coding)] of the codings `coding` allows (rANS sizes estimated)."""
    fixed, huffman = _fixed_huffman_sizes(f, bits, count, block_size)
    out = []
    if coding in ("fixed", "auto") and fixed is not None:
        out.append((fixed, "fixed"))
    if coding == "huffman" or (
        coding == "auto" and huffman is not None and huffman > 0
    ):
        out.append((abs(huffman), "huffman"))
    if coding in ("rans", "auto"):
        p = _rans.quick_plan(f, bits, block_size=block_size)
        out.append((_rans_estimate(p, count), "rans"))
    return out


def stream_size(
    symbols: np.ndarray,
    bits: int,
    coding: str = "auto",
    block_size: int | None = None,
    *,
    lanes: int | None = None,
) -> int:
    """Returns the exact byte size of `encode_stream(symbols, bits, coding, ...)`.

    Cheap for fixed width and Huffman (a histogram and code lengths); a rANS stream
    is encoded to know its exact size.
    """
    _check_coding(coding)
    bits = _check_width(bits, coding)
    if coding in ("rans", "auto"):
        return len(encode_stream(symbols, bits, coding, block_size, lanes=lanes))
    sym = _bitpack.as_symbols(symbols, bits)
    return stream_size_from_frequencies(
        _frequencies(sym, bits), bits, coding, block_size
    )


# A rANS stream whose estimate is within this many bytes of the best other coding is
# encoded to compare exact sizes (the estimate is off by a few bytes at most).
_RANS_ESTIMATE_SLACK = 8


def encode_stream(
    symbols: np.ndarray,
    bits: int,
    coding: str = "auto",
    block_size: int | None = None,
    *,
    lanes: int | None = None,
) -> bytes:
    """Encodes symbols of `bits` bits as a stream (header and data).

    Args:
        symbols: integers in [0, 2**bits - 1], read flat.
        bits: the symbol width, 1..8; 1..16 for "rans".
        coding: "fixed" (bit packing), "huffman" (canonical, length-limited to 15,
            in blocks), "rans" (interleaved rANS in blocks, format version 3) or
            "auto": whichever is smallest in bytes (on a tie the one of the lowest
            format version: fixed, then Huffman, then rANS).
        block_size: Huffman or rANS symbols per block; None for the default.
        lanes: rANS interleaved states, 1..32; None for the default (a power of two,
            up to 16, with >= 1024 symbols a lane).

    Returns:
        The stream's bytes.

    Raises:
        ValueError: bad `bits`, `coding` or `block_size`, a symbol out of range, or more
            than 2**32 - 1 symbols.
    """
    _check_coding(coding)
    bits = _check_width(bits, coding)
    _check_block_size(block_size)
    if lanes is not None and (
        isinstance(lanes, bool)
        or not isinstance(lanes, int | np.integer)
        or not 1 <= lanes <= _rans.MAX_LANES
    ):
        raise ValueError(
            f"Expected `lanes` in [1, {_rans.MAX_LANES}]. Received: lanes={lanes!r}"
        )
    sym = _as_stream_symbols(symbols, bits)
    count = sym.size
    if count > _U32_MAX:
        raise ValueError(f"Expected at most 2**32 - 1 symbols. Received: {count}")
    freqs = np.bincount(sym, minlength=1 << bits)[: 1 << bits].astype(np.int64)
    sizes = _candidate_sizes(freqs, bits, count, coding, block_size)
    best_other = min((s for s, c in sizes if c != "rans"), default=None)
    rans = None
    if any(c == "rans" for _, c in sizes):
        estimate = next(s for s, c in sizes if c == "rans")
        if best_other is None or estimate <= best_other + _RANS_ESTIMATE_SLACK:
            rans = _encode_rans(sym, bits, freqs, block_size, lanes)
            if best_other is None or len(rans) < best_other:
                return rans
    chosen = min(((s, c) for s, c in sizes if c != "rans"), key=lambda sc: sc[0])[1]
    if chosen == "huffman":
        lengths, total, block, _ = _huffman_plan(freqs, count, block_size)
        check_huffman_bits(total)
        data, _, offsets = _huffman.huffman_encode(sym, lengths, block)
        nibbles = np.zeros(2 * _table_size(bits), np.uint8)
        nibbles[: lengths.size] = lengths
        table = (nibbles[0::2] << 4) | nibbles[1::2]
        return b"".join(
            [
                _HEADER.pack(HUFFMAN, bits, count, len(data)),
                struct.pack("<I", block),
                table.tobytes(),
                offsets.astype("<u4").tobytes(),
                data,
            ]
        )
    fixed_data = _bitpack.packed_size(count, bits)
    if fixed_data > _U32_MAX:
        raise ValueError("Expected the packed data to be under 4 GiB.")
    return _HEADER.pack(FIXED, bits, count, fixed_data) + _bitpack.pack_bits(sym, bits)


def _encode_rans(sym: np.ndarray, bits: int, freqs, block_size, lanes) -> bytes:
    p = _rans.plan(freqs, bits, block_size=block_size, lanes=lanes)
    offsets, data = _rans.rans_encode(sym, p)
    if len(data) > _U32_MAX or (offsets.size and offsets[-1] > _U32_MAX):
        raise ValueError("Expected the coded data to be under 4 GiB.")
    return b"".join(
        [
            _HEADER.pack(RANS, bits, sym.size, len(data)),
            _RANS_HEADER.pack(p.scale_bits, p.lanes, p.block_size, len(p.table)),
            p.table,
            offsets.astype("<u4").tobytes(),
            data,
        ]
    )


@dataclasses.dataclass(frozen=True)
class StreamInfo:
    """Where a stream lies in a buffer and how it is coded (read, not decoded)."""

    offset: int  # where the stream's header starts
    coding: str  # "fixed", "huffman" or "rans"
    bits: int
    count: int
    data_offset: int  # where its data starts
    data_size: int
    block_size: int | None  # Huffman and rANS only
    code_lengths: np.ndarray | None  # Huffman only: one length per symbol value
    frequencies: np.ndarray | None = None  # rANS only: one per symbol value
    scale_bits: int | None = None  # rANS only: L, the frequencies sum to 2**L
    lanes: int | None = None  # rANS only: interleaved states

    @property
    def fixed_bytes(self) -> int:
        """Bytes that do not grow with the symbols: header, table and block offsets,
        and for rANS each block's stored states."""
        fixed = self.data_offset - self.offset
        if self.coding == "rans" and self.count:
            fixed += _rans.STATE_BYTES * self.lanes * -(-self.count // self.block_size)
        return fixed

    @property
    def size(self) -> int:
        """The stream's whole size in bytes (header, table, offsets and data)."""
        return self.data_offset + self.data_size - self.offset

    @property
    def end(self) -> int:
        """The offset just past the stream."""
        return self.data_offset + self.data_size


def _as_bytes(buf) -> np.ndarray:
    if isinstance(buf, np.ndarray):
        return np.ascontiguousarray(buf).reshape(-1).view(np.uint8)
    return np.frombuffer(buf, np.uint8)


def _parse(
    data: np.ndarray, offset: int, name, max_count, max_version=None, max_bits=16
):
    """Validates a stream's header, table and offsets; returns (info, block offsets)."""
    size = data.size

    def fail(message: str, at: int) -> FormatError:
        return FormatError(message, tensor=name, offset=at)

    if offset < 0 or size - offset < FIXED_HEADER_SIZE:
        raise fail(
            f"truncated stream header: {FIXED_HEADER_SIZE} bytes needed, "
            f"{max(0, size - offset)} present",
            offset,
        )
    coding, bits, count, data_size = _HEADER.unpack_from(data, offset)
    if coding not in (FIXED, HUFFMAN, RANS):
        raise fail(f"unknown stream coding {coding} (expected 0, 1 or 2)", offset)
    if coding == RANS and max_version is not None and max_version < 3:
        raise fail(
            f"a rANS stream needs payload format version 3, this payload says "
            f"{max_version}",
            offset,
        )
    widest = min(_rans.MAX_BITS if coding == RANS else 8, max_bits)
    if not 1 <= bits <= widest:
        raise fail(f"stream symbol width {bits} is not in [1, {widest}]", offset + 1)
    if max_count is not None and count > max_count:
        raise fail(
            f"stream holds {count} symbols, more than the {max_count} allowed",
            offset + 2,
        )
    pos = offset + FIXED_HEADER_SIZE
    block_size = lengths = None
    offsets = np.zeros(0, np.int64)
    rans = {}
    if coding == RANS:
        block_size, offsets, rans, pos = _parse_rans(
            data, pos, bits, count, data_size, fail, name
        )
    elif coding == FIXED:
        expected = _bitpack.packed_size(count, bits)
        if data_size != expected:
            raise fail(
                f"fixed-width stream of {count} x {bits}-bit symbols has data size "
                f"{data_size}, expected {expected}",
                offset + 6,
            )
    else:
        table_size = _table_size(bits)
        if size - pos < 4 + table_size:
            raise fail("truncated Huffman stream header", pos)
        (block_size,) = struct.unpack_from("<I", data, pos)
        if block_size < 1:
            raise fail("Huffman block size is 0", pos)
        if block_size > MAX_BLOCK_SIZE:
            raise fail(
                f"Huffman block size {block_size} is over the {MAX_BLOCK_SIZE} "
                "symbols a reader accepts",
                pos,
            )
        pos += 4
        table = data[pos : pos + table_size]
        lengths = np.empty(2 * table_size, np.uint8)
        lengths[0::2] = table >> 4
        lengths[1::2] = table & 0x0F
        lengths = lengths[: 1 << bits]
        _huffman.check_lengths(lengths, count, name=name, offset=pos)
        pos += table_size
        if count > 8 * data_size:
            raise fail(
                f"Huffman stream claims {count} symbols in {data_size} bytes of data "
                "(every code takes at least one bit)",
                offset + 2,
            )
        noffsets = max(0, -(-count // block_size) - 1)
        if size - pos < 4 * noffsets:
            raise fail(
                f"truncated block offsets: {4 * noffsets} bytes needed, {size - pos} "
                "present",
                pos,
            )
        offsets = data[pos : pos + 4 * noffsets].view("<u4").astype(np.int64)
        if noffsets:
            if np.any(np.diff(offsets) < 0):
                raise fail("Huffman block offsets decrease", pos)
            if offsets[-1] > 8 * data_size:
                raise fail(
                    f"Huffman block offset {int(offsets[-1])} is past the data "
                    f"({8 * data_size} bits)",
                    pos + 4 * (noffsets - 1),
                )
        pos += 4 * noffsets
    if size - pos < data_size:
        raise fail(
            f"truncated stream data: {data_size} bytes needed, {size - pos} present",
            pos,
        )
    info = StreamInfo(
        offset=offset,
        coding=CODING_NAMES[coding],
        bits=bits,
        count=count,
        data_offset=pos,
        data_size=data_size,
        block_size=block_size,
        code_lengths=lengths,
        **rans,
    )
    return info, offsets


def _parse_rans(data, pos, bits, count, data_size, fail, name):
    """The rANS part of a stream header: L, lanes, B, T, the table, block offsets."""
    size = data.size
    if size - pos < RANS_HEADER_SIZE:
        raise fail("truncated rANS stream header", pos)
    scale, lanes, block_size, table_size = _RANS_HEADER.unpack_from(data, pos)
    if not 1 <= scale <= _rans.MAX_SCALE_BITS:
        raise fail(
            f"rANS scale bits {scale} is not in [1, {_rans.MAX_SCALE_BITS}]", pos
        )
    if not 1 <= lanes <= _rans.MAX_LANES:
        raise fail(f"rANS lane count {lanes} is not in [1, {_rans.MAX_LANES}]", pos + 1)
    if block_size < 1:
        raise fail("rANS block size is 0", pos + 2)
    pos += RANS_HEADER_SIZE
    if size - pos < table_size:
        raise fail(
            f"truncated rANS table: {table_size} bytes needed, {size - pos} present",
            pos,
        )
    freqs = _rans.read_table(data, pos, pos + table_size, bits, scale, name, pos)
    if (count == 0) != (not freqs.any()):
        raise fail(
            "a rANS stream has an empty frequency table exactly when it has 0 symbols",
            pos,
        )
    pos += table_size
    nblocks = -(-count // block_size) if count else 0
    noffsets = max(0, nblocks - 1)
    if size - pos < 4 * noffsets:
        raise fail(
            f"truncated block offsets: {4 * noffsets} bytes needed, {size - pos} "
            "present",
            pos,
        )
    offsets = data[pos : pos + 4 * noffsets].view("<u4").astype(np.int64)
    if noffsets:
        if np.any(np.diff(np.concatenate([[0], offsets])) < 0):
            raise fail("rANS block offsets decrease", pos)
        if offsets[-1] > data_size:
            raise fail(
                f"rANS block offset {int(offsets[-1])} is past the data "
                f"({data_size} bytes)",
                pos + 4 * (noffsets - 1),
            )
    pos += 4 * noffsets
    info = dict(frequencies=freqs, scale_bits=scale, lanes=lanes)
    return block_size, offsets, info, pos


def stream_info(
    buf: bytes | bytearray | memoryview | np.ndarray,
    offset: int = 0,
    *,
    name: str | None = None,
    max_version: int | None = None,
    max_bits: int = 16,
) -> StreamInfo:
    """Reads and validates the stream at `buf[offset]` without decoding its data.

    Raises:
        FormatError: the stream is truncated or its header, code-length table or
            block offsets are malformed.
    """
    return _parse(_as_bytes(buf), offset, name, None, max_version, max_bits)[0]


def decode_stream(
    buf: bytes | bytearray | memoryview | np.ndarray,
    offset: int = 0,
    *,
    name: str | None = None,
    max_count: int | None = None,
    max_version: int | None = None,
    max_bits: int = 16,
) -> tuple[np.ndarray, int]:
    """Decodes the stream that starts at `buf[offset]`.

    Args:
        buf: bytes holding the stream (and possibly more before and after it).
        offset: where the stream starts in `buf`.
        name: the tensor named in errors.
        max_count: the most symbols the caller accepts; checked before allocating.
        max_version: the payload's format version, when known: a rANS stream in a
            payload older than version 3 is malformed.
        max_bits: the widest symbols the caller accepts (a payload's streams: 8).

    Returns:
        `(symbols, next_offset)`: a uint8 array (uint16 for symbols wider than 8
        bits) and the offset just past the stream.

    Raises:
        FormatError: the stream is truncated or malformed (offsets in errors are offsets
            into `buf`).
    """
    data = _as_bytes(buf)
    info, offsets = _parse(data, offset, name, max_count, max_version, max_bits)
    chunk = data[info.data_offset : info.end]
    if info.coding == "fixed":
        symbols = _bitpack.unpack_bits(chunk, info.bits, info.count)
    elif info.coding == "rans":
        symbols = _rans.rans_decode(
            chunk,
            info.frequencies,
            info.scale_bits,
            info.count,
            info.lanes,
            info.block_size,
            offsets,
            name=name,
            offset=info.data_offset,
        )
    else:
        symbols = _huffman.huffman_decode(
            chunk,
            info.code_lengths,
            info.count,
            info.block_size,
            offsets,
            name=name,
            offset=info.data_offset,
        )
    return symbols, info.end


def entropy_bits(symbols: np.ndarray, alphabet: int | None = None) -> float:
    """Returns the Shannon entropy of `symbols` in bits per symbol (0 when empty).

    Args:
        symbols: non-negative integers.
        alphabet: the alphabet size, when larger than max(symbols) + 1 (it does not
            change the entropy; it only validates the symbols against it).
    """
    sym = np.asarray(symbols).reshape(-1)
    if sym.size == 0:
        return 0.0
    if not np.issubdtype(sym.dtype, np.integer) or sym.min() < 0:
        raise ValueError("Expected non-negative integer `symbols`.")
    if alphabet is not None and sym.max() >= alphabet:
        raise ValueError(
            f"Expected `symbols` < alphabet={alphabet}. Received: max {int(sym.max())}"
        )
    counts = np.bincount(sym, minlength=alphabet or 0)
    p = counts[counts > 0] / sym.size
    return float(max(0.0, -np.sum(p * np.log2(p))))
