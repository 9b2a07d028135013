"""What the value kinds' modules share (`_kinds.py` lists the kinds): the arguments a
kind's encoder gets and what it returns, the one-value-stream reader, and element
helpers (elements as unsigned words and as rows of little-endian bytes)."""

from __future__ import annotations

import dataclasses

import numpy as np

from tfedge.codecs import _streams

# The largest u32 field (counts, channel runs, the body size).
U32_MAX = 0xFFFFFFFF
# The unsigned integer of each element size: elements are moved and compared as words.
UINT_BY_SIZE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def byte_view(data) -> np.ndarray:
    """A payload given as bytes or an array, as a flat uint8 array (no copy)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return np.frombuffer(data, np.uint8)


def check_choice(value, allowed, name):
    if value not in allowed:
        raise ValueError(f"Expected `{name}` in {allowed}. Received: {name}={value!r}")


def element_bytes(array, es: int, name: str) -> np.ndarray:
    """Returns `array` as an (n, es) uint8 matrix of little-endian element bytes."""
    arr = np.asarray(array)
    if arr.dtype.itemsize != es:
        raise ValueError(
            f"Expected `{name}` with {es}-byte elements (element_size={es}). "
            f"Received: dtype {arr.dtype} ({arr.dtype.itemsize} bytes)"
        )
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return np.ascontiguousarray(arr).reshape(-1).view(np.uint8).reshape(-1, es)


def as_uint(matrix: np.ndarray) -> np.ndarray:
    """Each row of an (n, es) byte matrix as one unsigned integer (for comparisons)."""
    es = matrix.shape[1]
    return np.ascontiguousarray(matrix).view(UINT_BY_SIZE[es]).reshape(-1)


@dataclasses.dataclass(frozen=True)
class EncodeArgs:
    """`encode_payload`'s arguments a value kind reads, the common ones checked."""

    element_size: int
    count: int
    layout: str
    value_kind: str
    elements: np.ndarray | None
    codebook: np.ndarray | None
    indices: np.ndarray | None
    fill: int | np.ndarray | bytes | None
    index_bits: int | None
    value_coding: str
    channel_run: int | None
    plane_rotation: int | None


@dataclasses.dataclass(frozen=True)
class KindValues:
    """What a value kind makes of the arguments: its body section and the symbols of
    its value streams."""

    section: bytes  # the kind's part of the body, before the sparse fill and streams
    symbols: np.ndarray  # per element: its index, or its element-size bytes as rows
    value_bits: int  # the value symbols' width
    fill_bytes: np.ndarray | None  # sparse layout: the fill element's bytes
    fill_symbols: np.ndarray | None  # sparse layout: the value symbols of one filler
    positions: np.ndarray | None  # sparse layout: the stored (non-fill) positions


def decode_value_stream(buf, pos, header, expected, max_bits, name, fail):
    """Decodes the one value stream of `expected` symbols at `pos`, which must end the
    payload."""
    values_at = pos
    values, pos = _streams.decode_stream(
        buf,
        pos,
        name=name,
        max_count=expected,
        max_version=header.version,
        max_bits=max_bits,
    )
    if values.size != expected:
        raise fail(
            f"value stream holds {values.size} symbols, expected {expected}", values_at
        )
    if pos != buf.size:
        raise fail(f"{buf.size - pos} trailing bytes after the value stream", pos)
    return values


def check_value_info(values: _streams.StreamInfo, pos: int, expected: int, size, fail):
    """Checks the one value stream's header read at `pos`: `expected` symbols, and the
    end of the payload."""
    if values.count != expected:
        raise fail(
            f"value stream holds {values.count} symbols, expected {expected}", pos
        )
    if values.end != size:
        raise fail(
            f"{size - values.end} trailing bytes after the value stream", values.end
        )
