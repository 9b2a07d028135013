"""Byte sizes from user input: 200000, "200KB", "200 KiB", "1.5MB"."""

from __future__ import annotations

import math
import numbers
import re

# Decimal units are powers of 1000 (as app stores and download limits count), binary
# units powers of 1024. Case-insensitive; "k", "kb" and "kB" are all kilobytes.
UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | str, *, name: str = "budget_bytes") -> int:
    """Returns a byte count from an int or a string with a unit.

    Accepted: a positive int (bytes), or a number followed by B, KB, MB, GB (powers of
    1000) or KiB, MiB, GiB (powers of 1024), case-insensitive, with or without a space:
    "200KB" is 200000, "200 KiB" is 204800, "1.5MB" is 1500000. Fractions of a byte are
    rounded down.

    Raises:
        ValueError: the value is not a positive size or the unit is unknown.
    """
    if isinstance(value, bool):
        raise ValueError(
            f"Expected `{name}` to be a byte count. Received: {name}={value!r}"
        )
    if isinstance(value, numbers.Integral):
        size = int(value)
    elif isinstance(value, numbers.Real):
        if not math.isfinite(value) or value != int(value):
            raise ValueError(
                f"Expected `{name}` to be a whole number of bytes or a string such as "
                f"'200KB'. Received: {name}={value!r}"
            )
        size = int(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None:
            raise ValueError(
                f"Expected `{name}` like '200KB', '200 KiB', '1.5MB' or 200000. "
                f"Received: {name}={value!r}"
            )
        number, unit = match.groups()
        if unit.lower() not in UNITS:
            raise ValueError(
                f"Unknown unit {unit!r} in {name}={value!r}. Use B, KB, MB, GB (powers "
                "of 1000) or KiB, MiB, GiB (powers of 1024)."
            )
        size = math.floor(float(number) * UNITS[unit.lower()])
    else:
        raise ValueError(
            f"Expected `{name}` to be an int or a string such as '200KB'. Received: "
            f"{type(value).__name__} {value!r}"
        )
    if size <= 0:
        raise ValueError(f"Expected `{name}` > 0 bytes. Received: {name}={value!r}")
    return size


def format_size(n: int) -> str:
    """'12,345 bytes (12.3 KB)'."""
    return f"{n:,} bytes ({n / 1000:.1f} KB)"
