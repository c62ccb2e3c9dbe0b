"""``write_report``: one self-contained HTML file for one or more audits, plus each audit's saved files."""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, TypeVar
from urllib.parse import quote

from .._files import write_atomic
from .._version import __version__
from ..audit.result import ARRAYS_FILE, CSV_FILE, JSON_FILE, AuditResult
from ._html import esc
from .page import page
from .reading import plain_reading
from .sections import section

HTML_FILE = "report.html"
SINGLE = "audit"  # a lone section with this name (``AuditResult.report``) keeps its files next to the report
_RESERVED = {HTML_FILE, JSON_FILE, CSV_FILE, ARRAYS_FILE}

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..audit.tasks import Task

    FigureMaker = Callable[[AuditResult, Task | None], Mapping[str, Figure | bytes]]

_V = TypeVar("_V")


def write_report(sections: Mapping[str, AuditResult], directory: str | os.PathLike, *,
                 tasks: Mapping[str, Task] | None = None, title: str = "weightmem_fast audit",
                 figures: FigureMaker | None = None, notes: Mapping[str, str] | None = None,
                 panels: Mapping[str, Sequence[str]] | None = None, grid: int = 300) -> Path:
    """Write ``report.html`` into ``directory`` (created if needed), one section per audit, and each audit's
    ``AuditResult.save`` files (``audit.json``, ``audit.csv``, ``arrays.safetensors``) into ``directory/<name>/``;
    a single section named "audit" keeps them in ``directory`` itself. Every file is written atomically.

    The page loads nothing from the network (inline CSS and script, figures as PNG data URIs, and a
    Content-Security-Policy that forbids other loads). Each section reads: verdict per generated, reference or
    baseline group (estimates, intervals and a one-sentence reading, see ``weightmem_fast.report.reading``), a group
    summary, the figures, a sortable per-model table (the first ``model_table.MAX_ROWS`` rows; the CSV has all),
    then ``notes``, settings and versions. Several sections get a table of contents with every verdict's reading.

    Args:
        sections: audits by section name, in page order (e.g. {"hr": ..., "gpt": ...}); names are directory names.
        directory: where the files go.
        tasks: the task of each section (keys a subset of ``sections``), passed to ``figures``.
        title: the page title.
        figures: ``figures(result, task_or_None) -> {caption: matplotlib Figure or PNG bytes}``, in display order;
            Figures are rendered by ``weightmem_fast.plots.figure_png``. Default: ``weightmem_fast.plots.figures``
            with ``grid`` (needs matplotlib); pass ``lambda result, task: {}`` for a report without figures.
        notes: free text per section (keys a subset of ``sections``), e.g. training times; shown as plain text.
        panels: HTML fragments per section (keys a subset of ``sections``) shown after its figures, e.g.
            ``symmetry.InvarianceTable.to_html()``. They are inserted as they are: pass only HTML built by this
            package (which escapes its text), never user-supplied markup.
        grid: the default ``figures``' grid resolution (decision-boundary plots).

    Returns:
        The path of ``report.html``.

    Raises:
        TypeError: ``sections`` is not a mapping of names to ``AuditResult``, or another argument has the wrong type.
        ValueError: ``sections`` is empty or a name cannot be a directory name; ``tasks``, ``notes`` or ``panels``
            name an unknown section; ``grid`` < 1.
        ImportError: ``figures`` is None and ``weightmem_fast.plots`` cannot be imported (no matplotlib).
    """
    _check_sections(sections)
    tasks = _check_subset("tasks", tasks, sections, object)
    notes = _check_subset("notes", notes, sections, str)
    panels = _check_subset("panels", panels, sections, (list, tuple))
    if not isinstance(title, str):
        raise TypeError(f"write_report: title must be a str; got {type(title).__name__}")
    if isinstance(grid, bool) or not isinstance(grid, int):
        raise TypeError(f"write_report: grid must be an int >= 1; got {type(grid).__name__}")
    if grid < 1:
        raise ValueError(f"write_report: grid must be an int >= 1; got {grid}")
    if figures is not None and not callable(figures):
        raise TypeError(f"write_report: figures must be callable(result, task) -> {{caption: Figure}}; got "
                        f"{type(figures).__name__}")
    make = figures if figures is not None else _default_figures(grid)

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    single = list(sections) == [SINGLE]
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    anchors = {name: f"section-{i + 1}" for i, name in enumerate(sections)}
    bodies = []
    for name, result in sections.items():
        result.save(root if single else root / name)
        pngs = {str(caption): _png(fig) for caption, fig in make(result, tasks.get(name)).items()}
        csv_href = CSV_FILE if single else f"{quote(name)}/{CSV_FILE}"
        bodies.append(section(anchors[name], name, result, figures=pngs, csv_href=csv_href, note=notes.get(name),
                              generated=generated, panels=panels.get(name, ())))
    header = (f"<header>\n<h1>{esc(title)}</h1>\n<p class=\"meta\">Generated {esc(generated)} by weightmem_fast "
              f"{esc(__version__)}. Self-contained: this file loads nothing from the network.</p>\n</header>")
    contents = _contents(sections, anchors) if len(sections) > 1 else ""
    text = page(title, "\n".join([header, contents, *bodies]))
    out = root / HTML_FILE
    write_atomic(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return out


def _contents(sections: Mapping[str, AuditResult], anchors: Mapping[str, str]) -> str:
    """The table of contents: every section, with each of its verdicts' readings (the whole page's verdict)."""
    items = []
    for name, result in sections.items():
        readings = "".join(f"<li><strong>{esc(v.group)}</strong>: {esc(plain_reading(v))}</li>"
                           for v in result.verdicts.values()) or "<li>no verdict (no audited groups)</li>"
        items.append(f'<li><a href="#{anchors[name]}">{esc(name)}</a><ul>{readings}</ul></li>')
    return '<nav>\n<h2>Contents</h2>\n<ol>\n' + "\n".join(items) + "\n</ol>\n</nav>"


def _default_figures(grid: int) -> FigureMaker:
    try:
        from .. import plots
    except ImportError as error:
        raise ImportError("write_report's default figures need weightmem_fast.plots and matplotlib "
                          "(pip install matplotlib); or pass figures=lambda result, task: {} for a report "
                          "without figures") from error
    return lambda result, task: plots.figures(result, task, grid=grid)


def _png(figure: Any) -> bytes:
    if isinstance(figure, (bytes, bytearray)):
        return bytes(figure)
    from ..plots import figure_png

    return figure_png(figure)


def _check_sections(sections: Any) -> None:
    if not isinstance(sections, Mapping):
        raise TypeError(f"write_report: sections must be a mapping {{name: AuditResult}}; got "
                        f"{type(sections).__name__} (for one audit, pass {{'audit': result}})")
    if not sections:
        raise ValueError("write_report: sections is empty; pass at least one {name: AuditResult}")
    for name, result in sections.items():
        if not isinstance(name, str):
            raise TypeError(f"write_report: section names must be str; got {name!r}")
        if not isinstance(result, AuditResult):
            raise TypeError(f"write_report: sections[{name!r}] must be an AuditResult; got {type(result).__name__}")
        if not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\\0") \
                or name in _RESERVED:
            raise ValueError(f"write_report: section name {name!r} cannot be a directory name; use a non-empty "
                             f"name without '/', '\\\\' or a leading '.', other than {sorted(_RESERVED)}")


def _check_subset(argument: str, values: Mapping[str, _V] | None, sections: Mapping[str, AuditResult],
                  kind: type | tuple[type, ...]) -> Mapping[str, _V]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise TypeError(f"write_report: {argument} must be a mapping {{section name: ...}}; got "
                        f"{type(values).__name__}")
    unknown = [key for key in values if key not in sections]
    if unknown:
        raise ValueError(f"write_report: {argument} names sections {unknown!r} that are not in sections "
                         f"{list(sections)!r}")
    wrong = [key for key, value in values.items() if not isinstance(value, kind)]
    if wrong:
        expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise TypeError(f"write_report: {argument}[{wrong[0]!r}] must be a {expected}; got "
                        f"{type(values[wrong[0]]).__name__}")
    return values
