"""The HTML report of one or more audits (issue 8): ``write_report`` writes one self-contained ``report.html``
(verdict first, group summary, figures, sortable per-model table, settings and versions) plus each audit's
``audit.json``, ``audit.csv`` and ``arrays.safetensors``. ``AuditResult.report(directory)`` is the one-audit form.

Modules: ``write`` (the entry point), ``sections`` (one audit's section), ``model_table`` (the per-model table),
``reading`` (the verdict's plain sentence and its thresholds), ``page`` (the document shell, CSS and script),
``_html`` (escaping and table helpers).
"""
from .reading import plain_reading
from .write import write_report

__all__ = ["plain_reading", "write_report"]
