"""HTML building blocks: escaping, number formatting, tables and images. Every string that reaches the page goes
through ``esc`` (group names, settings and notes can contain anything, ``<script>`` included)."""
from __future__ import annotations

import base64
import html
import math
from typing import Any, Iterable, Sequence


def esc(value: Any) -> str:
    """``str(value)`` escaped for HTML text and double- or single-quoted attribute values."""
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A cell's text: floats to 4 significant digits ("NaN" for NaN, "inf"/"-inf"), None to "", else ``str``."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.4g}"
    return str(value)


def is_number(value: Any) -> bool:
    """True for int and float values (bool excluded): the per-model table sorts such columns numerically."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Sequence[bool] | None = None,
          sortable: bool = False, css: str = "") -> str:
    """A ``<table>`` with a header row; cells are formatted by ``fmt`` and escaped.

    Args:
        headers: column titles (escaped).
        rows: one sequence of cell values per row, as long as ``headers``.
        numeric: per column, True to right-align it and (``sortable``) sort it as numbers.
        sortable: mark the table for the page's click-to-sort script.
        css: extra class names.
    """
    numeric = list(numeric) if numeric is not None else [False] * len(headers)
    classes = " ".join(c for c in (css, "sortable" if sortable else "") if c)
    head = "".join(f'<th scope="col"{_kind(n)}>{esc(h)}</th>' for h, n in zip(headers, numeric))
    cells = ["<td class=\"num\">{}</td>" if n else "<td>{}</td>" for n in numeric]
    body = "\n".join("<tr>" + "".join(c.format(esc(fmt(v))) for c, v in zip(cells, row)) + "</tr>" for row in rows)
    open_tag = f'<table class="{classes}">' if classes else "<table>"
    return f"{open_tag}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def png_img(png: bytes, alt: str) -> str:
    """An ``<img>`` embedding ``png`` as a base64 data URI (the page loads nothing from elsewhere)."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def _kind(numeric: bool) -> str:
    return ' data-kind="num" class="num"' if numeric else ' data-kind="text"'
