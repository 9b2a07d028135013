"""Symbol streams: fixed width or Huffman, with their headers (docs/FORMAT.md 2.2).

```
u8   coding: 0 = fixed width, 1 = Huffman
u8   bits: symbol width, 1..8
u32  count
u32  data size in bytes
Huffman only:
  u32  block size B
  ceil(2**bits / 2) bytes of 4-bit code lengths, first symbol in the high nibble
  (ceil(count / B) - 1) x u32 bit offsets of blocks 1, 2, ...
data
```
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np

from tfedge.codecs import _bitpack, _huffman
from tfedge.codecs._limits import MAX_BLOCK_SIZE
from tfedge.errors import FormatError

FIXED = 0
HUFFMAN = 1
CODINGS = ("auto", "fixed", "huffman")

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


def stream_size_from_frequencies(
    freqs: np.ndarray, bits: int, coding: str = "auto", block_size: int | None = None
) -> int:
    """Returns the exact byte size of a stream with these symbol frequencies.

    Args:
        freqs: the count of each symbol value 0 .. 2**bits - 1.
        bits: the symbol width, 1..8.
        coding: "fixed", "huffman" or "auto" (the smaller of the two).
        block_size: the Huffman block size; None for `default_block_size`.
    """
    bits = _bitpack.check_bits(bits)
    _check_coding(coding)
    _check_block_size(block_size)
    f = np.asarray(freqs).astype(np.int64)
    if f.size > 1 << bits and f[1 << bits :].any():
        raise ValueError(f"Expected symbols in [0, {(1 << bits) - 1}] for bits={bits}.")
    f = f[: 1 << bits]
    count = int(f.sum())
    fixed = FIXED_HEADER_SIZE + _bitpack.packed_size(count, bits)
    if coding == "fixed":
        return fixed
    _, total, _, nblocks = _huffman_plan(f, count, block_size)
    huffman = (
        FIXED_HEADER_SIZE
        + 4
        + _table_size(bits)
        + 4 * max(0, nblocks - 1)
        + (total + 7) // 8
    )
    if coding == "huffman":
        return huffman
    return min(fixed, huffman) if total <= _U32_MAX else fixed


def stream_size(
    symbols: np.ndarray, bits: int, coding: str = "auto", block_size: int | None = None
) -> int:
    """Returns the exact byte size of `encode_stream(symbols, bits, coding)`.

    Cheap: one histogram and a code-length computation, no bytes built.
    """
    bits = _bitpack.check_bits(bits)
    sym = _bitpack.as_symbols(symbols, bits)
    return stream_size_from_frequencies(
        _frequencies(sym, bits), bits, coding, block_size
    )


def encode_stream(
    symbols: np.ndarray,
    bits: int,
    coding: str = "auto",
    block_size: int | None = None,
) -> bytes:
    """Encodes symbols of `bits` bits as a stream (header and data).

    Args:
        symbols: integers in [0, 2**bits - 1], read flat.
        bits: the symbol width, 1..8.
        coding: "fixed" (bit packing), "huffman" (canonical, length-limited to 15,
            in blocks) or "auto": whichever is smaller in bytes (fixed on a tie).
        block_size: Huffman symbols per block; None for `default_block_size`.

    Returns:
        The stream's bytes.

    Raises:
        ValueError: bad `bits`, `coding` or `block_size`, a symbol out of range, or more
            than 2**32 - 1 symbols.
    """
    bits = _bitpack.check_bits(bits)
    _check_coding(coding)
    _check_block_size(block_size)
    sym = _bitpack.as_symbols(symbols, bits)
    count = sym.size
    if count > _U32_MAX:
        raise ValueError(f"Expected at most 2**32 - 1 symbols. Received: {count}")
    fixed_data = _bitpack.packed_size(count, bits)
    if coding != "fixed":
        freqs = _frequencies(sym, bits)
        lengths, total, block, nblocks = _huffman_plan(freqs, count, block_size)
        huffman_size = (
            4 + _table_size(bits) + 4 * max(0, nblocks - 1) + (total + 7) // 8
        )
        # "auto" keeps fixed width when Huffman's block offsets could not address the
        # data (the forced "huffman" raises).
        if coding == "huffman" or (huffman_size < fixed_data and total <= _U32_MAX):
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
    if fixed_data > _U32_MAX:
        raise ValueError("Expected the packed data to be under 4 GiB.")
    return _HEADER.pack(FIXED, bits, count, fixed_data) + _bitpack.pack_bits(sym, bits)


@dataclasses.dataclass(frozen=True)
class StreamInfo:
    """Where a stream lies in a buffer and how it is coded (read, not decoded)."""

    offset: int  # where the stream's header starts
    coding: str  # "fixed" or "huffman"
    bits: int
    count: int
    data_offset: int  # where its data starts
    data_size: int
    block_size: int | None  # Huffman only
    code_lengths: np.ndarray | None  # Huffman only: one length per symbol value

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


def _parse(data: np.ndarray, offset: int, name, max_count):
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
    if coding not in (FIXED, HUFFMAN):
        raise fail(f"unknown stream coding {coding} (expected 0 or 1)", offset)
    if not 1 <= bits <= 8:
        raise fail(f"stream symbol width {bits} is not in [1, 8]", offset + 1)
    if max_count is not None and count > max_count:
        raise fail(
            f"stream holds {count} symbols, more than the {max_count} allowed",
            offset + 2,
        )
    pos = offset + FIXED_HEADER_SIZE
    block_size = lengths = None
    offsets = np.zeros(0, np.int64)
    if coding == FIXED:
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
        coding="huffman" if coding == HUFFMAN else "fixed",
        bits=bits,
        count=count,
        data_offset=pos,
        data_size=data_size,
        block_size=block_size,
        code_lengths=lengths,
    )
    return info, offsets


def stream_info(
    buf: bytes | bytearray | memoryview | np.ndarray,
    offset: int = 0,
    *,
    name: str | None = None,
) -> StreamInfo:
    """Reads and validates the stream at `buf[offset]` without decoding its data.

    Raises:
        FormatError: the stream is truncated or its header, code-length table or
            block offsets are malformed.
    """
    return _parse(_as_bytes(buf), offset, name, None)[0]


def decode_stream(
    buf: bytes | bytearray | memoryview | np.ndarray,
    offset: int = 0,
    *,
    name: str | None = None,
    max_count: int | None = None,
) -> tuple[np.ndarray, int]:
    """Decodes the stream that starts at `buf[offset]`.

    Args:
        buf: bytes holding the stream (and possibly more before and after it).
        offset: where the stream starts in `buf`.
        name: the tensor named in errors.
        max_count: the most symbols the caller accepts; checked before allocating.

    Returns:
        `(symbols, next_offset)`: a uint8 array and the offset just past the stream.

    Raises:
        FormatError: the stream is truncated or malformed (offsets in errors are offsets
            into `buf`).
    """
    data = _as_bytes(buf)
    info, offsets = _parse(data, offset, name, max_count)
    chunk = data[info.data_offset : info.end]
    if info.coding == "fixed":
        symbols = _bitpack.unpack_bits(chunk, info.bits, info.count)
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
