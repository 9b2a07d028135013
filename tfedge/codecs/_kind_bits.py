"""The value kinds that store the element bits themselves: raw (value kind 0, one
stream of the element bytes) and byte planes (value kind 3, format version 3: each
byte position its own stream, the elements first rotated left by R bits)."""

from __future__ import annotations

import struct

import numpy as np

from tfedge.codecs import _streams
from tfedge.codecs._kindbase import (
    UINT_BY_SIZE,
    EncodeArgs,
    KindValues,
    as_uint,
    check_value_info,
    decode_value_stream,
    element_bytes,
)
from tfedge.errors import FormatError

# ------------------------------------------------------------------------- encoding


def prepare_raw(a: EncodeArgs) -> KindValues:
    return _prepare_elements(a, 0, b"")


def prepare_planes(a: EncodeArgs) -> KindValues:
    es = a.element_size
    rotation = 0 if a.plane_rotation is None else a.plane_rotation
    if isinstance(rotation, bool) or not isinstance(rotation, int | np.integer):
        raise ValueError(
            f"Expected an int `plane_rotation`. Received: {a.plane_rotation!r}"
        )
    if not 0 <= rotation < 8 * es:
        raise ValueError(
            f"Expected `plane_rotation` in [0, {8 * es - 1}]. Received: "
            f"plane_rotation={rotation}"
        )
    rotation = int(rotation)
    return _prepare_elements(a, rotation, struct.pack("<B", rotation))


def _prepare_elements(a: EncodeArgs, rotation: int, section: bytes) -> KindValues:
    """The element bytes as symbol rows (rotated left by `rotation` bits), and the
    sparse fill element and stored positions."""
    es, count, elements, fill = a.element_size, a.count, a.elements, a.fill
    if a.codebook is not None or a.indices is not None or a.index_bits is not None:
        raise ValueError(
            "`codebook`, `indices` and `index_bits` apply to the codebook value "
            "kinds only."
        )
    if elements is None:
        raise ValueError(
            f"Expected `elements` for value_kind={a.value_kind!r}. Received: None"
        )
    rows = element_bytes(elements, es, "elements")
    if rows.shape[0] != count:
        raise ValueError(
            f"Expected {count} elements (count={count}). Received: {rows.shape[0]}"
        )
    symbols = rows
    fill_bytes = fill_symbols = positions = None
    if a.layout == "sparse":
        keys = as_uint(rows)
        if fill is None:
            fill_key = _most_common(keys)
            fill_bytes = (
                np.array([fill_key], UINT_BY_SIZE[es]).astype(f"<u{es}").view(np.uint8)
            )
        else:
            fill_bytes = _fill_element(fill, elements, es)
            fill_key = as_uint(fill_bytes.reshape(1, es))[0]
        fill_bytes = fill_bytes.copy()
        positions = np.flatnonzero(keys != fill_key)
        fill_symbols = fill_bytes
    if rotation:
        # The planes are bytes of each element rotated left by R.
        symbols = _rotated_rows(as_uint(rows), rotation, es).reshape(-1, es)
        if fill_symbols is not None:
            fill_symbols = _rotated_rows(
                as_uint(fill_symbols.reshape(1, es)), rotation, es
            ).reshape(-1)
    return KindValues(section, symbols, 8, fill_bytes, fill_symbols, positions)


def _rotated_rows(words: np.ndarray, rotation: int, es: int) -> np.ndarray:
    word = UINT_BY_SIZE[es]
    return rotate_left(words.astype(word), rotation).astype(f"<u{es}").view(np.uint8)


def _fill_element(fill, elements, es: int) -> np.ndarray:
    """The `fill` argument's es bytes: given as bytes, or as one element."""
    if isinstance(fill, bytes | bytearray):
        fill_bytes = np.frombuffer(bytes(fill), np.uint8)
        if fill_bytes.size != es:
            raise ValueError(
                f"Expected a {es}-byte `fill`. Received: {fill_bytes.size} bytes"
            )
        return fill_bytes
    # A Python number takes the elements' dtype; arrays keep theirs.
    plain = isinstance(fill, int | float) and not isinstance(fill, bool)
    fill_arr = np.asarray(fill, np.asarray(elements).dtype if plain else None)
    if fill_arr.size != 1:
        raise ValueError(
            f"Expected one fill element. Received: {fill_arr.size} elements"
        )
    return element_bytes(fill_arr, es, "fill").reshape(-1)


def _most_common(keys: np.ndarray):
    if keys.size == 0:
        return keys.dtype.type(0)
    if keys.dtype == np.uint8:
        return np.uint8(np.argmax(np.bincount(keys, minlength=256)))
    values, counts = np.unique(keys, return_counts=True)
    return values[np.argmax(counts)]


def raw_streams(symbols: np.ndarray, es: int) -> list[np.ndarray]:
    """The raw kind's one value stream: the element bytes in order."""
    return [symbols.reshape(-1)]


def plane_streams(symbols: np.ndarray, es: int) -> list[np.ndarray]:
    """The planes kind's value streams: byte b of every element, b = 0 .. es - 1."""
    rows = symbols.reshape(-1, es)
    return [rows[:, b] for b in range(es)]


def rotate_left(u: np.ndarray, r: int) -> np.ndarray:
    """Rotates each unsigned integer of `u` left by r bits within its width."""
    if r == 0:
        return u
    width = 8 * u.dtype.itemsize
    return (u << u.dtype.type(r)) | (u >> u.dtype.type(width - r))


# ------------------------------------------------------------------------- decoding


def read_no_section(buf, pos: int, header, fail) -> tuple[None, int]:
    """The raw kind has no section."""
    return None, pos


def read_rotation(buf, pos: int, header, fail) -> tuple[int, int]:
    """The planes kind's rotation byte R, and the next offset."""
    if buf.size - pos < 1:
        raise fail("truncated plane rotation", pos)
    rotation = int(buf[pos])
    if rotation >= 8 * header.element_size:
        raise fail(
            f"plane rotation {rotation} is not in [0, {8 * header.element_size - 1}]",
            pos,
        )
    return rotation, pos + 1


def _check_raw_bits(bits: int, at: int, fail) -> None:
    if bits != 8:
        raise fail(
            f"a raw value stream must have 8-bit symbols, this one has {bits}", at
        )


def decode_raw(buf, pos, header, section, stored, positions, name, fail) -> np.ndarray:
    """The raw kind's `stored` elements, as words."""
    if buf.size - pos >= 2:
        _check_raw_bits(int(buf[pos + 1]), pos + 1, fail)
    es = header.element_size
    values = decode_value_stream(buf, pos, header, stored * es, 8, name, fail)
    return values.view(UINT_BY_SIZE[es])


def inspect_raw(buf, pos, header, section, stored, name, fail) -> dict:
    """The raw kind's `PayloadInfo` fields."""
    values = _streams.stream_info(
        buf, pos, name=name, max_version=header.version, max_bits=8
    )
    _check_raw_bits(values.bits, pos + 1, fail)
    check_value_info(values, pos, stored * header.element_size, buf.size, fail)
    return {"values": values}


def _plane_streams(buf, pos: int, header, stored: int, name, decode):
    """Reads (decode=True: decodes) the planes kind's element-size streams of `stored`
    8-bit symbols each; returns (the planes or stream infos, the offset past them)."""
    out = []
    for b in range(header.element_size):
        at = pos
        if buf.size - pos >= 2 and buf[pos + 1] != 8:
            raise FormatError(
                f"plane stream {b} must have 8-bit symbols, this one has "
                f"{int(buf[pos + 1])}",
                tensor=name,
                offset=pos + 1,
            )
        if decode:
            plane, pos = _streams.decode_stream(
                buf,
                pos,
                name=name,
                max_count=stored,
                max_version=header.version,
                max_bits=8,
            )
            count = plane.size
        else:
            plane = _streams.stream_info(
                buf, pos, name=name, max_version=header.version, max_bits=8
            )
            pos, count = plane.end, plane.count
        if count != stored:
            raise FormatError(
                f"plane stream {b} holds {count} symbols, expected {stored}",
                tensor=name,
                offset=at,
            )
        out.append(plane)
    if pos != buf.size:
        raise FormatError(
            f"{buf.size - pos} trailing bytes after the plane streams",
            tensor=name,
            offset=pos,
        )
    return out, pos


def decode_planes(
    buf, pos, header, rotation, stored, positions, name, fail
) -> np.ndarray:
    """The planes kind's `stored` elements, as words."""
    es = header.element_size
    planes, _ = _plane_streams(buf, pos, header, stored, name, decode=True)
    word = UINT_BY_SIZE[es]
    rotated = np.zeros(stored, word)
    for b, plane in enumerate(planes):
        rotated |= plane.astype(word) << word(8 * b)
    return rotate_left(rotated, (8 * es - rotation) % (8 * es))


def inspect_planes(buf, pos, header, rotation, stored, name, fail) -> dict:
    """The planes kind's `PayloadInfo` fields."""
    planes, _ = _plane_streams(buf, pos, header, stored, name, decode=False)
    return {"values": planes[0], "rotation": rotation, "planes": tuple(planes)}
