"""The fixed 28-byte header of a payload (docs/FORMAT.md, section 2), its checks and
its CRC.

```
0   4  magic "TFEP"          12  8  decoded size (u64)
4   1  format version        20  4  body size (u32)
5   1  layout                24  4  CRC-32 of bytes 0..23 and the body
6   1  value kind            28  .. body
7   1  element type (TFLite TensorType)
8   1  element size (1, 2, 4, 8)
9   3  reserved, zero
```
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np

from tfedge.codecs._crc import crc32
from tfedge.codecs._kindbase import byte_view
from tfedge.codecs._kinds import KINDS
from tfedge.errors import FormatError

MAGIC = b"TFEP"
FORMAT_VERSION = 3
HEADER_SIZE = 28
LAYOUTS = ("dense", "sparse")
ELEMENT_SIZES = (1, 2, 4, 8)
DEFAULT_MAX_DECODED = 2**31 - 1

# Element sizes of the TFLite tensor types whose size is fixed; a payload may carry any
# other type value, whose size the caller vouches for.
TFLITE_ELEMENT_SIZES = {
    0: 4,  # FLOAT32
    1: 2,  # FLOAT16
    2: 4,  # INT32
    3: 1,  # UINT8
    4: 8,  # INT64
    6: 1,  # BOOL
    7: 2,  # INT16
    8: 8,  # COMPLEX64
    9: 1,  # INT8
    10: 8,  # FLOAT64
    12: 8,  # UINT64
    15: 4,  # UINT32
    16: 2,  # UINT16
    18: 2,  # BFLOAT16
    21: 1,  # FLOAT8_E4M3FN
    22: 1,  # FLOAT8_E5M2
}

_HEADER = struct.Struct("<4sBBBBB3sQII")
_CRC_AT = 24


@dataclasses.dataclass(frozen=True)
class PayloadHeader:
    """The fixed 28-byte header of a payload."""

    version: int
    layout: str
    value_kind: str
    element_type: int
    element_size: int
    decoded_size: int
    body_size: int
    crc: int

    @property
    def count(self) -> int:
        """The number of elements, N."""
        return self.decoded_size // self.element_size


def read_header(
    data: bytes | bytearray | memoryview | np.ndarray,
    *,
    name: str | None = None,
    max_decoded: int = DEFAULT_MAX_DECODED,
    expected_size: int | None = None,
    check_crc: bool = True,
) -> PayloadHeader:
    """Reads and validates a payload's header, in the order docs/FORMAT.md lists.

    Args:
        data: the whole payload.
        name: the tensor named in errors.
        max_decoded: the largest decoded size accepted (the reader's bound).
        expected_size: when the tensor is known, its byte size: the decoded size must
            equal it (it is then also the bound).
        check_crc: whether to verify the CRC too (the last check).

    Returns:
        The header.

    Raises:
        FormatError: a check fails.
    """
    buf = byte_view(data)

    def fail(message: str, at: int) -> FormatError:
        return FormatError(message, tensor=name, offset=at)

    if buf.size < HEADER_SIZE:
        raise fail(
            f"truncated payload: {buf.size} bytes, the header alone takes "
            f"{HEADER_SIZE}",
            0,
        )
    (magic, version, layout, kind, etype, esize, reserved, decoded, body, crc) = (
        _HEADER.unpack_from(buf, 0)
    )
    if magic != MAGIC:
        raise fail(f"bad magic {magic!r}, expected {MAGIC!r}", 0)
    if version > FORMAT_VERSION:
        raise fail(
            f"payload format version {version} is newer than this reader's "
            f"{FORMAT_VERSION}; upgrade tfedge",
            4,
        )
    if version < 1:
        raise fail(f"unknown payload format version {version}", 4)
    if layout >= len(LAYOUTS):
        raise fail(f"unknown layout {layout} (0 dense, 1 sparse)", 5)
    if kind >= len(KINDS):
        known = ", ".join(f"{k.code} {k.description}" for k in KINDS)
        raise fail(f"unknown value kind {kind} ({known})", 6)
    if version < KINDS[kind].version:
        raise fail(
            f"value kind {kind} ({KINDS[kind].name}) needs payload format version "
            f"{KINDS[kind].version}, this payload says {version}",
            6,
        )
    if esize not in ELEMENT_SIZES:
        raise fail(f"element size {esize} is not 1, 2, 4 or 8", 8)
    if reserved != b"\0\0\0":
        raise fail("reserved bytes are not zero", 9)
    if decoded % esize:
        raise fail(
            f"decoded size {decoded} is not a multiple of the element size {esize}", 12
        )
    bound = max_decoded if expected_size is None else min(max_decoded, expected_size)
    if decoded > bound:
        raise fail(f"decoded size {decoded} exceeds the bound of {bound} bytes", 12)
    if expected_size is not None and decoded != expected_size:
        raise fail(
            f"decoded size {decoded} disagrees with the tensor's {expected_size} bytes",
            12,
        )
    if body != buf.size - HEADER_SIZE:
        raise fail(
            f"body size {body} disagrees with the {buf.size - HEADER_SIZE} bytes "
            "present",
            20,
        )
    if check_crc:
        actual = crc32(buf[HEADER_SIZE:], crc32(buf[:_CRC_AT]))
        if actual != crc:
            raise fail(
                f"CRC mismatch: header says {crc:#010x}, data gives {actual:#010x}",
                _CRC_AT,
            )
    return PayloadHeader(
        version=version,
        layout=LAYOUTS[layout],
        value_kind=KINDS[kind].name,
        element_type=etype,
        element_size=esize,
        decoded_size=decoded,
        body_size=body,
        crc=crc,
    )


def seal(
    body: bytes,
    *,
    version: int,
    layout: str,
    value_kind: str,
    element_type: int,
    element_size: int,
    count: int,
) -> bytes:
    """The payload of `body`: the header, its CRC over bytes 0..23 and the body, and
    the body."""
    head = _HEADER.pack(
        MAGIC,
        version,
        LAYOUTS.index(layout),
        next(kind.code for kind in KINDS if kind.name == value_kind),
        element_type,
        element_size,
        b"\0\0\0",
        count * element_size,
        len(body),
        0,
    )[:_CRC_AT]
    crc = crc32(body, crc32(head))
    return head + struct.pack("<I", crc) + body
