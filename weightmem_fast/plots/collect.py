"""Every figure that applies to an audit, and figures as PNG bytes (for the HTML report)."""
from __future__ import annotations

import io

from matplotlib.figure import Figure

from ..audit.result import AuditResult
from ..audit.tasks import ClassifierTask
from . import _common
from .decision import decision_boundaries
from .densities import parameter_densities
from .embedding import tsne
from .heatmap import weight_heatmap
from .histogram import min_l2_histogram
from .scatter import similarity_scatter
from .shapes import shape_renders

#: Models per group shown by the per-model figures (heatmap, decision boundaries, renders), as in the study.
_MODELS = 3


def figures(result: AuditResult, task: ClassifierTask | None = None, *, grid: int = 300) -> dict[str, Figure]:
    """Every figure that applies, with the study's settings, keyed by the name of the function that drew it.

    Always: "min_l2_histogram", "similarity_scatter", "tsne", "parameter_densities". With a generated (or
    reference) group: "weight_heatmap" of its first 3 models (fewer if it has fewer; k = min(3, the audit's k)),
    and for classifier audits given their ``task`` "decision_boundaries", for field audits "shape_renders".

    Args:
        result: the audit.
        task: the audit's ClassifierTask, needed for the decision boundaries only (ignored for field audits).
        grid: the decision grid's points per axis (the study: 300; the grid's predictions and contours cost
            about R^2, so small demos use ~100).

    Returns:
        {name: Figure}, in the order listed above (heatmap, boundaries and renders after the scatter).

    Raises:
        TypeError, ValueError: as the figure functions (e.g. a task that is not a ClassifierTask).
    """
    _common.check_result(result)
    out = {"min_l2_histogram": min_l2_histogram(result), "similarity_scatter": similarity_scatter(result)}
    audited = _common.first_audited(result)
    if audited is not None and len(audited):
        n_models = min(_MODELS, len(audited))
        out["weight_heatmap"] = weight_heatmap(result, audited.name, n_models,
                                               k=min(_MODELS, audited.nearest_index.shape[1]))
        if result.behaviour.kind == "classifier" and task is not None:
            out["decision_boundaries"] = decision_boundaries(result, task, audited.name, n_models, grid)
        if result.behaviour.kind == "field":
            out["shape_renders"] = shape_renders(result, audited.name, n_models)
    out["tsne"] = tsne(result)
    out["parameter_densities"] = parameter_densities(result)
    return out


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes at ``dpi`` (Agg; no display needed).

    Raises:
        TypeError: ``fig`` is not a matplotlib Figure.
        ValueError: dpi < 1.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib.figure.Figure; got {type(fig).__name__}")
    _common.positive("dpi", dpi)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
