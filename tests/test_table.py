"""tfedge._table: the one table style of the reports."""

from __future__ import annotations

import pytest

from tfedge._table import MAX_WIDTH, Column, render, shorten

SHORTEN = [
    ("abc", 5, "abc"),
    ("abcdefghij", 5, "ab…ij"),
    ("abcdefghij", 4, "a…ij"),
    ("abcdefghij", 1, "a"),
]


@pytest.mark.parametrize("text,width,want", SHORTEN, ids=[str(w) for *_, w in SHORTEN])
def test_shorten_cuts_the_middle(text, width, want):
    assert shorten(text, width) == want
    assert len(shorten(text, width)) <= width


def test_render_layout():
    text = render(
        [Column("name"), Column("bytes", ">")],
        [["fc1.kernel", 1024], ["fc1.bias", 8]],
        footer=["total: 1032 bytes"],
    )
    assert text.splitlines() == [
        "name       bytes",
        "----------------",
        "fc1.kernel  1024",
        "fc1.bias       8",
        "----------------",
        "total: 1032 bytes",
    ]


def test_render_fits_max_width():
    long = "sequential_1/some_block_3/conv2d_17/Conv2D;" * 4
    footer = ["note: " + "word " * 60]
    text = render(
        [Column("tensor"), Column("shape"), Column("bytes", ">")],
        [[long, "3x3x64x64", 147456]],
        footer=footer,
    )
    assert max(len(line) for line in text.splitlines()) <= MAX_WIDTH
    assert "…" in text.splitlines()[2]
    assert "147456" in text
