"""One report section per audit, in reading order: verdict, group summary, figures, per-model table, then notes,
settings and versions."""
from __future__ import annotations

import json
import math
from typing import Any, Iterator, Mapping, Sequence

from ..audit.result import AuditResult, Estimate, Verdict
from ._html import esc, fmt, png_img, table
from .model_table import model_table
from .reading import plain_reading


def section(anchor: str, name: str, result: AuditResult, *, figures: Mapping[str, bytes], csv_href: str,
            note: str | None, generated: str, panels: Sequence[str] = ()) -> str:
    """The ``<section id=anchor>`` for the audit ``result`` titled ``name``.

    Args:
        figures: PNG bytes by caption, in display order.
        csv_href: the section's CSV, relative to the report.
        note: free text shown before the settings (escaped; line breaks kept), or None.
        generated: when the report was written (shown with the versions).
        panels: trusted HTML fragments shown after the figures (e.g. ``InvarianceTable.to_html()``).
    """
    parts = [f'<section id="{esc(anchor)}">', f"<h2>{esc(name)}</h2>",
             f'<p class="meta">Task: {esc(result.behaviour.kind)}; {sum(map(len, result.groups.values()))} '
             f"models in {len(result.groups)} groups.</p>",
             "<h3>Verdict</h3>", verdicts(result),
             "<h3>Groups</h3>", group_table(result),
             "<h3>Figures</h3>", figure_block(figures), *panels,
             "<h3>Models</h3>", model_table(result, csv_href)]
    if note:
        parts += ["<h3>Notes</h3>", f'<p class="note">{esc(note)}</p>']
    parts += ["<h3>Settings</h3>", mapping_table(result.settings),
              "<h3>Versions</h3>", mapping_table({**result.versions, "report generated": generated}),
              "</section>"]
    return "\n".join(parts)


def verdicts(result: AuditResult) -> str:
    """Per group with a verdict (generated, reference, baseline), titled with its role: its plain reading, then the
    three estimates with their intervals and the near-copy thresholds."""
    if not result.verdicts:
        return '<p class="reading">No generated, reference or baseline groups in this audit, so no verdict.</p>'
    return "\n".join(_verdict(v, result.groups[v.group].role) for v in result.verdicts.values())


def _verdict(verdict: Verdict, role: str) -> str:
    rows = [("near-copies of training models", *_estimate(verdict.near_copies, percent=True)),
            ("beyond the noise frontier", *_estimate(verdict.beyond_frontier, percent=True)),
            ("min-L2 ratio (to training / training to training)", *_estimate(verdict.min_l2_ratio, percent=False))]
    thresholds = ", ".join(f"{esc(k)} {esc(fmt(v))}" for k, v in verdict.thresholds.items()) or "none"
    return (f'<div class="verdict">\n<h4>{esc(verdict.group)} <span class="small">{esc(role)}</span></h4>\n'
            f'<p class="reading">{esc(plain_reading(verdict))}'
            f"</p>\n{table(['measure', 'estimate', 'confidence interval'], rows, numeric=[False, True, True])}\n"
            f'<p class="small">Near-copy thresholds: {thresholds}.</p>\n</div>')


def _estimate(estimate: Estimate, *, percent: bool) -> tuple[str, str]:
    def show(x: float) -> str:
        return "NaN" if math.isnan(x) else (f"{x:.1%}" if percent else f"{x:.3g}")

    level = "" if math.isnan(estimate.level) else f"{estimate.level:.0%}: "
    return show(estimate.value), f"{level}[{show(estimate.low)}, {show(estimate.high)}]"


def group_table(result: AuditResult) -> str:
    """One row per group: role, ``GroupAudit.summary()`` (models, means) and the set-level ``group_metrics``
    (field tasks: MMD, COV, 1-NNA); empty where a group lacks a column."""
    rows = [{"group": name, "role": g.role, **g.summary(), **result.group_metrics.get(name, {})}
            for name, g in result.groups.items()]
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    numeric = [key not in ("group", "role") for key in columns]
    return table(list(columns), ([row.get(key) for key in columns] for row in rows), numeric=numeric)


def figure_block(figures: Mapping[str, bytes]) -> str:
    """The figures as embedded PNGs, each captioned with its name."""
    if not figures:
        return '<p class="small">No figures.</p>'
    return "\n".join(f'<figure>{png_img(png, caption)}<figcaption class="caption">{esc(caption)}</figcaption>'
                     "</figure>" for caption, png in figures.items())


def mapping_table(values: Mapping[str, Any]) -> str:
    """Two-column table of a JSON-able mapping: nested mappings become dotted keys; other non-strings are shown
    as JSON (numbers in full, unlike the result tables)."""
    rows = list(_flatten(values, ""))
    if not rows:
        return '<p class="small">None recorded.</p>'
    return table(["name", "value"], rows, css="settings")


def _flatten(values: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{name}.")
        elif isinstance(value, str):
            yield name, value
        else:
            yield name, json.dumps(value, default=str)
