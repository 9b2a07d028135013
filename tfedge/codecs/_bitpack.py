"""Fixed-width bit packing of 1..8-bit symbols, most significant bit first.

Bit k of the packed data is bit `7 - (k mod 8)` of byte `k div 8`; symbol i occupies
bits `[i*bits, (i+1)*bits)`, its most significant bit first; padding bits are zero
(docs/FORMAT.md, section 2.2). Both directions are vectorised with numpy and work in
chunks so that the temporaries stay small for tens of millions of symbols.
"""

from __future__ import annotations

import numpy as np

# Symbols per chunk; a multiple of 8 so that every chunk starts on a byte boundary.
_CHUNK = 1 << 20


def check_bits(bits: int, name: str = "bits") -> int:
    """Validates a symbol width in [1, 8] and returns it as an int."""
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer):
        raise ValueError(
            f"Expected `{name}` to be an int in [1, 8]. Received: {name}={bits!r}"
        )
    if not 1 <= bits <= 8:
        raise ValueError(f"Expected `{name}` in [1, 8]. Received: {name}={bits}")
    return int(bits)


def as_symbols(symbols: np.ndarray, bits: int) -> np.ndarray:
    """Returns `symbols` as a flat uint8 array after checking each is < 2**bits."""
    sym = np.asarray(symbols)
    if sym.size == 0:
        return np.zeros(0, np.uint8)
    if sym.dtype == np.bool_:
        sym = sym.astype(np.uint8)
    if not np.issubdtype(sym.dtype, np.integer):
        raise ValueError(
            f"Expected integer `symbols`. Received: symbols with dtype {sym.dtype}"
        )
    sym = sym.reshape(-1)
    if sym.dtype != np.uint8 or bits < 8:
        low, high = int(sym.min()), int(sym.max())
        if low < 0 or high >= 1 << bits:
            raise ValueError(
                f"Expected `symbols` in [0, {(1 << bits) - 1}] for bits={bits}. "
                f"Received: symbols in [{low}, {high}]"
            )
    return sym.astype(np.uint8, copy=False)


def packed_size(count: int, bits: int) -> int:
    """Returns the byte size of `count` fixed-width symbols of `bits` bits."""
    return (count * bits + 7) // 8


def pack_bits(symbols: np.ndarray, bits: int) -> bytes:
    """Packs symbols of `bits` bits each, most significant bit first.

    Args:
        symbols: integers in [0, 2**bits - 1] (any integer dtype, any shape; read flat).
        bits: the symbol width, 1..8.

    Returns:
        `ceil(len(symbols) * bits / 8)` bytes, the padding bits zero.

    Raises:
        ValueError: `bits` is not in [1, 8] or a symbol does not fit in `bits` bits.
    """
    bits = check_bits(bits)
    sym = as_symbols(symbols, bits)
    n = sym.size
    if bits == 8:
        return sym.tobytes()
    out = np.empty(packed_size(n, bits), np.uint8)
    for start in range(0, n, _CHUNK):
        chunk = sym[start : start + _CHUNK]
        if bits == 1:
            packed = np.packbits(chunk)
        elif bits in (2, 4):
            per = 8 // bits
            pad = (-chunk.size) % per
            if pad:
                chunk = np.concatenate([chunk, np.zeros(pad, np.uint8)])
            groups = chunk.reshape(-1, per)
            packed = groups[:, 0] << (8 - bits)
            for j in range(1, per):
                packed |= groups[:, j] << (8 - bits * (j + 1))
        else:
            matrix = np.unpackbits(chunk[:, None], axis=1)[:, 8 - bits :]
            packed = np.packbits(matrix.reshape(-1))
        first = start * bits // 8
        out[first : first + packed.size] = packed
    return out.tobytes()


def _as_byte_array(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return np.frombuffer(data, np.uint8)


def unpack_bits(
    data: bytes | bytearray | memoryview | np.ndarray, bits: int, count: int
) -> np.ndarray:
    """Unpacks `count` symbols of `bits` bits each, most significant bit first.

    Args:
        data: the packed bytes; bytes after the first `ceil(count * bits / 8)` are
            ignored.
        bits: the symbol width, 1..8.
        count: the number of symbols.

    Returns:
        A new uint8 array of `count` symbols.

    Raises:
        ValueError: `bits` is not in [1, 8], `count` is negative or `data` is too short.
    """
    bits = check_bits(bits)
    if count < 0:
        raise ValueError(f"Expected `count` >= 0. Received: count={count}")
    buf = _as_byte_array(data)
    need = packed_size(count, bits)
    if buf.size < need:
        raise ValueError(
            f"Expected at least {need} bytes for {count} symbols of {bits} bits. "
            f"Received: {buf.size} bytes"
        )
    buf = buf[:need]
    if bits == 8:
        return buf.copy()
    if bits == 1:
        return np.unpackbits(buf, count=count)
    if bits in (2, 4):
        per = 8 // bits
        mask = (1 << bits) - 1
        out = np.empty((need, per), np.uint8)
        for j in range(per):
            np.bitwise_and(buf >> (8 - bits * (j + 1)), mask, out=out[:, j])
        return out.reshape(-1)[:count].copy()
    out = np.empty(count, np.uint8)
    for start in range(0, count, _CHUNK):
        m = min(_CHUNK, count - start)
        first = start * bits // 8
        chunk = buf[first : first + packed_size(m, bits)]
        matrix = np.unpackbits(chunk, count=m * bits).reshape(m, bits)
        out[start : start + m] = np.packbits(matrix, axis=1)[:, 0] >> (8 - bits)
    return out
