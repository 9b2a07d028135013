"""Decoding a payload (docs/FORMAT.md, section 2): the header, the value kind's
section, the sparse layout's fill and gap stream, then the value kind's streams.
Everything is checked before it is allocated or used: the header in the order the
format lists, then every stream, every index and the absence of trailing bytes."""

from __future__ import annotations

import numpy as np

from tfedge.codecs import _streams
from tfedge.codecs._header import DEFAULT_MAX_DECODED, HEADER_SIZE, read_header
from tfedge.codecs._kindbase import UINT_BY_SIZE, byte_view
from tfedge.codecs._kinds import BY_NAME
from tfedge.codecs._sparse import positions_from_gaps
from tfedge.errors import FormatError


def decode_payload(
    data: bytes | bytearray | memoryview | np.ndarray,
    *,
    name: str | None = None,
    max_decoded: int = DEFAULT_MAX_DECODED,
    expected_size: int | None = None,
) -> np.ndarray:
    """Decodes a payload into the tensor's bytes.

    Args:
        data: the whole payload.
        name: the tensor named in errors.
        max_decoded: the largest decoded size accepted, checked before allocating.
        expected_size: the tensor's byte size when known; the decoded size must
            equal it.

    Returns:
        A new uint8 array of `decoded_size` bytes (the elements, little-endian).

    Raises:
        FormatError: the payload is truncated, corrupted, of a newer version, larger
            than the bound, or otherwise malformed.
    """
    buf = byte_view(data)
    header = read_header(
        buf, name=name, max_decoded=max_decoded, expected_size=expected_size
    )
    es = header.element_size
    n = header.count
    size = buf.size

    def fail(message: str, at: int) -> FormatError:
        return FormatError(message, tensor=name, offset=at)

    kind = BY_NAME[header.value_kind]
    section, pos = kind.read_section(buf, HEADER_SIZE, header, fail)

    positions = None
    fill = None
    if header.layout == "sparse":
        if size - pos < es:
            raise fail(
                f"truncated fill value: {es} bytes needed, {size - pos} present", pos
            )
        fill = buf[pos : pos + es]
        pos += es
        gaps_at = pos
        gaps, pos = _streams.decode_stream(
            buf, pos, name=name, max_count=n, max_version=header.version, max_bits=8
        )
        positions = positions_from_gaps(gaps, n, name=name, offset=gaps_at)
        stored = positions.size
    else:
        stored = n

    elements = kind.decode(buf, pos, header, section, stored, positions, name, fail)
    if positions is None:
        return elements.view(np.uint8)
    word = UINT_BY_SIZE[es]
    out = np.empty(n, word)
    out[:] = np.ascontiguousarray(fill).view(word)[0]
    out[positions] = elements
    return out.view(np.uint8)
