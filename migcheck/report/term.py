"""Terminal output for the ``pair`` report without rich: styled lines and one boxed table.

``pair`` runs once per guest in CI gates and scripts; importing rich and laying the table out
with it cost ~30 ms of the ~130 ms an offline ``pair`` took (BENCHMARKS.md). This draws the
same table (rich's heavy-head box, one space of padding, words wrapped and over-long words
folded) and follows rich's rules for width and colour: ``COLUMNS``, else the terminal's
width, else 80; ANSI styles only on a terminal (or with ``FORCE_COLOR``), never for
``TERM=dumb``; ``NO_COLOR`` drops colours but keeps bold and dim. Other commands' tables
still use rich.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

# A line of output: (text, style) pieces; a style is space-separated words from _SGR or None.
Span = tuple[str, "str | None"]

_SGR = {
    "bold": "1",
    "dim": "2",
    "italic": "3",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "magenta": "35",
}
_COLOURS = {"red", "green", "yellow", "magenta"}
_WORD = re.compile(r"\S+\s*")


def terminal_width(stream: TextIO) -> int:
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return 80


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError, AttributeError):
        return False


class Terminal:
    """Where the report goes, how wide it is and whether it may be styled."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.width = terminal_width(self.stream)
        term = os.environ.get("TERM", "")
        forced = bool(os.environ.get("FORCE_COLOR"))
        self.styled = term not in ("dumb", "unknown") and (forced or _is_terminal(self.stream))
        self.colour = self.styled and not os.environ.get("NO_COLOR")

    def style(self, text: str, style: str | None) -> str:
        if not (style and self.styled and text):
            return text
        words = [w for w in style.split() if self.colour or w not in _COLOURS]
        codes = ";".join(_SGR[w] for w in words)
        return f"\x1b[{codes}m{text}\x1b[0m" if codes else text

    def print(self, *spans: Span) -> None:
        """One line, never wrapped here: the terminal wraps it for display only, so a copied
        line (a fix, a path) is the exact text."""
        self.stream.write("".join(self.style(text, style) for text, style in spans) + "\n")


def fit(parts: Sequence[str], width: int, sep: str = " ", indent: str = "  ") -> list[str]:
    """``parts`` joined by ``sep`` into lines of at most ``width`` columns, broken only
    between parts (a part is never split: a path, an option, "(kernel X, QEMU Y)"). A part
    wider than a line gets a line of its own, which the terminal wraps for display only."""
    lines: list[str] = []
    line = ""
    for part in parts:
        if not line:
            line = part if not lines else indent + part
        elif len(line) + len(sep) + len(part) <= width:
            line += sep + part
        else:
            lines.append(line.rstrip())
            line = indent + part
    if line:
        lines.append(line.rstrip())
    return lines


@dataclass(frozen=True)
class Column:
    """A table column: its header lines, whether its cells wrap, and a width cap."""

    header: tuple[str, ...]
    wrap: bool = True
    max_width: int | None = None


# A cell: its lines before wrapping, each with one style.
Cell = Sequence[Span]


def wrap(text: str, width: int) -> list[str]:
    """Words filled greedily into lines of ``width``; a longer word is folded."""
    lines: list[str] = []
    line = ""
    for match in _WORD.finditer(text):
        word = match.group()
        if len(line) + len(word.rstrip()) > width and line:
            lines.append(line.rstrip())
            line = ""
        while len(word.rstrip()) > width:
            lines.append(word[:width])
            word = word[width:]
        line += word
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return lines


def _widths(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], total: int) -> list[int]:
    cells: list[list[Cell]] = [[[(h, None) for h in c.header]] for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            cells[i].append(cell)
    widest = [max((len(t) for cell in col for t, _ in cell), default=0) for col in cells]
    widths = []
    for column, wide in zip(columns, widest, strict=True):
        cap = column.max_width if column.max_width is not None else wide
        widths.append(max(1, min(wide, cap) if column.wrap else wide))
    room = total - (3 * len(columns) + 1)  # borders and one space of padding each side
    while sum(widths) > room:
        flexible = [i for i, c in enumerate(columns) if c.wrap and widths[i] > 1]
        if not flexible:
            break  # only unwrappable columns left: the terminal wraps the table
        widths[max(flexible, key=lambda i: widths[i])] -= 1  # rich also narrows the widest
    return widths


def render_table(
    term: Terminal,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    lines_between_rows: bool,
) -> list[str]:
    """The table as output lines (styled for ``term``), at most ``term.width`` wide."""
    widths = _widths(columns, rows, term.width)

    def rule(left: str, fill: str, middle: str, right: str) -> str:
        return left + middle.join(fill * (w + 2) for w in widths) + right

    def body(cells: Sequence[Cell], bar: str, header: bool = False) -> list[str]:
        wrapped: list[list[Span]] = []
        for cell, width, column in zip(cells, widths, columns, strict=True):
            lines: list[Span] = []
            for text, style in cell:
                pieces = wrap(text, width) if column.wrap else [text]
                lines.extend((piece, "bold" if header else style) for piece in pieces)
            wrapped.append(lines)
        height = max(len(lines) for lines in wrapped)
        if header:  # headers sit on the rule below them, as rich draws them
            wrapped = [[("", None)] * (height - len(lines)) + lines for lines in wrapped]
        out = []
        for n in range(height):
            parts = []
            for lines, width in zip(wrapped, widths, strict=True):
                text, style = lines[n] if n < len(lines) else ("", None)
                parts.append(" " + term.style(text, style) + " " * (width - len(text) + 1))
            out.append(bar + bar.join(parts) + bar)
        return out

    header_cells = [[(h, None) for h in c.header] for c in columns]
    out = [rule("┏", "━", "┳", "┓"), *body(header_cells, "┃", header=True)]
    out.append(rule("┡", "━", "╇", "┩"))
    for n, row in enumerate(rows):
        if n and lines_between_rows:
            out.append(rule("├", "─", "┼", "┤"))
        out.extend(body(row, "│"))
    out.append(rule("└", "─", "┴", "┘"))
    return out
