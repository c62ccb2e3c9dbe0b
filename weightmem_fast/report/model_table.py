"""The per-model table: every row of ``AuditResult.rows()`` up to a cap, sortable in the page."""
from __future__ import annotations

from typing import Any

from ..audit.result import CSV_FILE, AuditResult
from ._html import esc, is_number, table

MAX_ROWS = 2000  # beyond this the page gets slow to load and sort; the CSV has every row


def model_table(result: AuditResult, csv_href: str, *, max_rows: int = MAX_ROWS) -> str:
    """The first ``max_rows`` models of ``result`` as a sortable table (columns: the union of ``rows()``'s keys, in
    first-seen order; numeric columns sort as numbers), with a note pointing to the CSV at ``csv_href`` (a path
    relative to the report) when rows were left out."""
    rows = result.rows()
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    shown = rows[:max_rows]
    numeric = [_numeric_column(shown, key) for key in columns]
    note = f'<p class="small">All {len(rows)} models; the same numbers are in <a href="{esc(csv_href)}">' \
           f"{esc(CSV_FILE)}</a>. Click a column header to sort.</p>"
    if len(rows) > max_rows:
        note = f'<p class="small"><strong>Showing the first {max_rows} of {len(rows)} models</strong>; every model ' \
               f'is in <a href="{esc(csv_href)}">{esc(CSV_FILE)}</a>. Click a column header to sort the rows shown.</p>'
    body = table(list(columns), ([row.get(key) for key in columns] for row in shown), numeric=numeric,
                 sortable=True)
    return f'{note}\n<div class="scroll">\n{body}\n</div>'


def _numeric_column(rows: list[dict[str, Any]], key: str) -> bool:
    values = [row[key] for row in rows if row.get(key) is not None]
    return bool(values) and all(is_number(v) for v in values)
