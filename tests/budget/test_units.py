from __future__ import annotations

import pytest

from tfedge.budget import parse_size

GOOD = [
    (200000, 200000),
    ("200KB", 200_000),
    ("200 KiB", 204_800),
    ("1.5MB", 1_500_000),
    ("1.5 mib", 1_572_864),
    ("10kb", 10_000),
    ("123", 123),
    ("512 B", 512),
    ("2GB", 2_000_000_000),
    (2048.0, 2048),
]


@pytest.mark.parametrize("value,expected", GOOD, ids=[str(v) for v, _ in GOOD])
def test_parse_size(value, expected):
    assert parse_size(value) == expected


BAD = [
    ("200 KX", "Unknown unit"),
    ("KB", "Expected `budget_bytes` like"),
    ("", "Expected `budget_bytes` like"),
    ("-5KB", "Expected `budget_bytes` like"),
    (0, "> 0 bytes"),
    (-1, "> 0 bytes"),
    ("0.0001 B", "> 0 bytes"),
    (True, "byte count"),
    (1.5, "whole number"),
    (None, "int or a string"),
    ([1], "int or a string"),
]


@pytest.mark.parametrize("value,message", BAD, ids=[repr(v) for v, _ in BAD])
def test_parse_size_errors(value, message):
    with pytest.raises(ValueError, match=message):
        parse_size(value)


def test_parse_size_names_the_flag():
    with pytest.raises(ValueError, match="--target"):
        parse_size("ten", name="--target")
