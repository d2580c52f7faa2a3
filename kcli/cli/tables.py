"""Tables and long lines that stay readable on an 80-column terminal.

On a terminal nothing is folded in the middle of a word: a table wider than the screen first
closes its gaps to one space, then shortens its id columns (an ellipsis in the middle keeps the
start, which names the client, and the end, which tells members apart), and if it still does not
fit, shows each row as a block of ``HEADER  value`` lines. A header is never split. ``wide=True``
never shortens an id. Long text lines break between tab-separated fields or words, with the
continuation indented.

When stdout is not a terminal (a pipe, a file) the output is exactly what scripts parse: plain
columns two spaces apart, every id whole, one line per row, whatever COLUMNS says.

Only the standard library loads here; rich loads when a terminal gets a table.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

ELLIPSIS = "…"
GAP = 2
INDENT = 4


@dataclass(frozen=True)
class Col:
    """A column: its header, and whether its cells are long ids that may be shortened."""

    header: str
    id: bool = False
    min_width: int = 24  # an id is never shortened below this (nor below its header): shorter says too little

    def floor(self) -> int:
        return max(len(self.header), self.min_width)


def _col(c: "Col | str") -> Col:
    return c if isinstance(c, Col) else Col(str(c))


def is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def terminal_width() -> int:
    return max(20, shutil.get_terminal_size((80, 24)).columns)


def ellipsis() -> str:
    """The ellipsis stdout can carry ("..." where its encoding has no "…")."""
    try:
        ELLIPSIS.encode(getattr(sys.stdout, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "..."
    return ELLIPSIS


def shorten(text: str, width: int, mark: str = ELLIPSIS) -> str:
    """``text`` in at most ``width`` characters: head, ``mark``, tail (the head a little longer)."""
    if len(text) <= width:
        return text
    if width <= len(mark):
        return text[:width]
    keep = width - len(mark)
    tail = max(1, keep * 2 // 5)
    head = keep - tail
    return text[:head] + mark + text[-tail:]


# -- layout -----------------------------------------------------------------------------------


@dataclass
class Layout:
    kind: str  # "table" or "records"
    widths: list[int]
    gap: int
    cells: list[list[str]]


def _total(widths: Sequence[int], gap: int) -> int:
    return sum(widths) + gap * max(0, len(widths) - 1)


def layout(columns: Sequence["Col | str"], rows: Iterable[Sequence[Any]], width: int, wide: bool = False,
           mark: str = ELLIPSIS) -> Layout:
    """How a table goes on a screen ``width`` columns wide (see the module's docstring)."""
    cols = [_col(c) for c in columns]
    cells = [[str(x) for x in r] for r in rows]
    natural = [max([len(c.header)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    for gap in (GAP, 1):
        if _total(natural, gap) <= width:
            return Layout("table", natural, gap, cells)
    if not wide:
        widths = list(natural)
        while _total(widths, 1) > width:
            shrinkable = [i for i, c in enumerate(cols) if c.id and widths[i] > c.floor()]
            if not shrinkable:
                break
            widest = max(shrinkable, key=lambda i: widths[i])
            widths[widest] -= 1
        if _total(widths, 1) <= width:
            short = [[shorten(v, widths[i], mark) if cols[i].id else v for i, v in enumerate(r)] for r in cells]
            return Layout("table", widths, 1, short)
    return Layout("records", natural, GAP, cells)


def _break_long(word: str, width: int) -> list[str]:
    """A word longer than the line, broken after a comma or else a hyphen where it can be, else cut."""
    pieces = []
    while len(word) > width:
        cut = word.rfind(",", 0, width) + 1 or word.rfind("-", 0, width) + 1
        if cut <= 0:
            cut = width
        pieces.append(word[:cut])
        word = word[cut:]
    return pieces + ([word] if word else [])


def _phrases(words: list[str], room: int) -> list[str]:
    """Words with a parenthesised phrase such as ``(client c-1):`` kept as one, where it fits."""
    out: list[str] = []
    i = 0
    while i < len(words):
        j = i
        if words[i].startswith("(") and ")" not in words[i]:
            while j + 1 < len(words) and ")" not in words[j]:
                j += 1
        phrase = " ".join(words[i:j + 1])
        if j > i and len(phrase) <= room:
            out.append(phrase)
        else:
            out += words[i:j + 1]
        i = j + 1
    return out


def wrap(text: str, width: int, indent: int = INDENT) -> list[str]:
    """``text`` in lines of at most ``width``, broken between tab-separated fields (kept whole
    where they fit), then between words; continuation lines are indented by ``indent``."""
    lead = len(text) - len(text.lstrip(" "))
    pad = " " * (lead + indent)
    room = max(1, width - len(pad))
    lines: list[str] = []
    line = " " * lead
    fresh = True  # nothing but indentation on the line yet

    def put(word: str, sep: str) -> None:
        nonlocal line, fresh
        candidate = (line + word) if fresh else (line + sep + word)
        if len(candidate.expandtabs()) <= width:
            line, fresh = candidate, False
            return
        if not fresh:
            lines.append(line.rstrip())
            line, fresh = pad, True
        for piece in _break_long(word, room)[:-1]:
            lines.append(pad + piece)
        line, fresh = pad + _break_long(word, room)[-1], False

    for n, field in enumerate(text.strip(" ").split("\t")):
        sep = "\t" if n else " "
        whole = (line + field) if fresh else (line + sep + field)
        if fresh or len(whole.expandtabs()) <= width or len(pad + field) > width:
            words = _phrases(field.split(" "), room)
            put(words[0], sep)
            for w in words[1:]:
                put(w, " ")
        else:  # the field fits on a line of its own: start one rather than split it
            lines.append(line.rstrip())
            line, fresh = pad + field, False
    lines.append(line.rstrip())
    return lines


def render(title: str | None, columns: Sequence["Col | str"], rows: Iterable[Sequence[Any]], width: int,
           wide: bool = False, mark: str = ELLIPSIS) -> list[tuple[str, str]]:
    """The lines a terminal shows, each as (bold part, plain rest)."""
    cols = [_col(c) for c in columns]
    lay = layout(cols, rows, width, wide, mark)
    out: list[tuple[str, str]] = []
    if title:
        out += [(line, "") for line in wrap(title, width)]
    if lay.kind == "table":
        sep = " " * lay.gap
        out.append((sep.join(c.header.ljust(w) for c, w in zip(cols, lay.widths)).rstrip(), ""))
        for r in lay.cells:
            out.append(("", sep.join(v.ljust(w) for v, w in zip(r, lay.widths)).rstrip()))
        return out
    label = max(len(c.header) for c in cols)
    room = max(1, width - label - GAP)
    for n, r in enumerate(lay.cells):
        if n:
            out.append(("", ""))
        for c, v in zip(cols, r):
            if c.id and not wide and len(v) > room:
                v = shorten(v, max(room, c.floor()), mark)
            pieces = _break_long(v, room) if len(v) > room else [v]
            out.append((c.header, " " * (label + GAP - len(c.header)) + (pieces[0] if pieces else "")))
            out += [("", " " * (label + GAP) + p) for p in pieces[1:]]
    return out


# -- output -----------------------------------------------------------------------------------


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def table(title: str | None, columns: Sequence["Col | str"], rows: Sequence[Sequence[Any]], *,
          wide: bool = False) -> None:
    """A table: laid out for the terminal (see the module's docstring); plain aligned columns
    with every cell whole when piped."""
    cols = [_col(c) for c in columns]
    if not is_terminal():
        cells = [[c.header for c in cols]] + [[str(x) for x in r] for r in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
        if title:
            sys.stdout.write(title + "\n")
        for r in cells:
            sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")
        return
    from rich.text import Text

    con = _console()
    for bold, rest in render(title, cols, rows, terminal_width(), wide, ellipsis()):
        con.print(Text.assemble((bold, "bold"), rest.rstrip()))


def echo(text: str, indent: int = INDENT) -> None:
    """A line of text: unchanged when piped; on a terminal broken between fields or words."""
    if not is_terminal():
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    for line in wrap(text, terminal_width(), indent):
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
