"""``write_ablation_report``: the ablation as one self-contained HTML page (the table, its figure, the data-scaling
plot, notes and settings) beside ``ablation.json`` / ``ablation.csv``, with the audits behind it in ``audits/``."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

from .._files import write_atomic
from .._version import __version__
from ..audit import AuditResult
from ..report import write_report
from ..report._html import esc, png_img, table
from ..report.page import page
from .figures import cell_text, headers, scaling_figure, table_figure
from .result import AblationResult

HTML_FILE = "report.html"
AUDITS_DIR = "audits"


def ablation_section(result: AblationResult) -> str:
    """The ablation's HTML section: a sortable table (mean +- std over seeds), the table and data-scaling figures,
    the notes and the settings. Every text is escaped."""
    from ..plots import figure_png

    columns = headers(result)
    rows = result.rows()
    body = [[row["level"], row["factor"], row["parameters"], row["training_models"],
             *(cell_text(row, column) for column, _, _ in columns)] for row in rows]
    parts = [f"<section id=\"ablation\">\n<h2>{esc(result.method)}: modeling factors</h2>",
             "<p>Each row retrains the generator with one change (the \"default\" row is the unchanged config) and "
             "audits its samples against the same training set, baselines and noise frontier; the \"training\" row "
             "is the training models among themselves. Values are mean \u00b1 std over seeds; arrows mark the "
             "better direction (higher mean min L2 = more novel).</p>",
             table(["setting", "factor", "#params", "training models", *(header for _, header, _ in columns)], body,
                   # "mean +- std" cells sort by their mean (the page's sort reads the leading number)
                   numeric=[False, False, True, True] + [True] * len(columns), sortable=True),
             png_img(figure_png(table_figure(result)), f"{result.method} ablation table")]
    scaling = scaling_figure(result)
    if scaling is not None:
        parts += ["<h3>Data scaling</h3>", png_img(figure_png(scaling), f"{result.method} data scaling")]
    if result.notes:
        parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{esc(note)}</li>" for note in result.notes) + "</ul>")
    parts += ["<h3>Settings</h3>", f"<pre>{esc(json.dumps(result.settings, indent=1))}</pre>", "</section>"]
    return "\n".join(parts)


def write_ablation_report(result: AblationResult, directory: str | os.PathLike,
                          audits: Mapping[str, AuditResult] | None = None) -> Path:
    """Writes ``report.html`` (``ablation_section``), ``ablation.json`` and ``ablation.csv`` into ``directory``
    (created), and, when ``audits`` are given ({training set name: audit}), their full report into
    ``directory/audits/`` (linked from the page). Every file is written atomically.

    Returns:
        The path of ``report.html``.
    """
    root = result.save(directory)
    links = ""
    if audits:
        write_report(dict(audits), root / AUDITS_DIR, title=f"weightmem_fast ablation of {result.method}: the audits",
                     figures=lambda audit_result, task: {})
        links = (f'<p>The audits behind the table (every group, verdict and per-model number): '
                 f'<a href="{AUDITS_DIR}/{HTML_FILE}">{AUDITS_DIR}/{HTML_FILE}</a>.</p>')
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    title = f"weightmem_fast ablation: {result.method}"
    header = (f"<header>\n<h1>{esc(title)}</h1>\n<p class=\"meta\">Generated {esc(generated)} by weightmem_fast "
              f"{esc(__version__)}. Self-contained: this file loads nothing from the network.</p>\n</header>")
    text = page(title, "\n".join([header, ablation_section(result), links]))
    out = root / HTML_FILE
    write_atomic(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return out
