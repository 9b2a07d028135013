"""CRC-32 (IEEE 802.3), the checksum of every payload (docs/FORMAT.md, section 2)."""

from __future__ import annotations

import zlib

import numpy as np


def crc32(data: bytes | bytearray | memoryview | np.ndarray, value: int = 0) -> int:
    """Returns the CRC-32 of `data`, continuing from `value` (as `zlib.crc32`).

    Args:
        data: the bytes to checksum; a numpy array is read as its raw bytes.
        value: the CRC of the bytes that precede `data` (0 to start).

    Returns:
        The CRC as an unsigned 32-bit integer.
    """
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data).view(np.uint8)
    return zlib.crc32(data, value) & 0xFFFFFFFF
