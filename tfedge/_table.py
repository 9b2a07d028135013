"""The one text-table style of tfedge's reports (`.table()` everywhere).

A header, a rule of dashes, one row per item, a closing rule, then free lines (totals,
notes, a legend). Numbers right-aligned, text left-aligned, at most `MAX_WIDTH` columns:
the first column gives way (long names are shortened in the middle, where TFLite names
repeat themselves least).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

MAX_WIDTH = 100


@dataclass(frozen=True)
class Column:
    title: str
    align: str = "<"  # "<" text, ">" numbers
    max_width: int | None = None  # longer cells are shortened in the middle


def shorten(text: str, width: int) -> str:
    """`text` in at most `width` characters, cut in the middle with an ellipsis."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    head = (width - 1) // 2
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def render(
    columns: Sequence[Column],
    rows: Sequence[Sequence[object]],
    *,
    footer: Sequence[str] = (),
    max_width: int = MAX_WIDTH,
) -> str:
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    widths = []
    for i, col in enumerate(columns):
        w = max([len(col.title)] + [len(r[i]) for r in cells])
        if col.max_width is not None:
            w = min(w, max(col.max_width, len(col.title)))
        widths.append(w)
    over = sum(widths) + len(widths) - 1 - max_width
    if over > 0:
        widths[0] = max(len(columns[0].title), widths[0] - over)

    def line(values: Sequence[str]) -> str:
        parts = []
        for v, col, w in zip(values, columns, widths, strict=True):
            v = shorten(v, w)
            parts.append(f"{v:>{w}}" if col.align == ">" else f"{v:<{w}}")
        return " ".join(parts).rstrip()

    rule = "-" * (sum(widths) + len(widths) - 1)
    out = [line([c.title for c in columns]), rule]
    out += [line(r) for r in cells]
    out.append(rule)
    for text in footer:
        for part in text.split("\n"):
            out += textwrap.wrap(
                part, max_width, subsequent_indent="  ", break_on_hyphens=False
            ) or [""]
    return "\n".join(out)
