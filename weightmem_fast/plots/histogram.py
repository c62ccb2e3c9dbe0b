"""The min-L2 histogram (study_spec §2.1): how far each group's models lie from the nearest training model."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..audit.result import AuditResult
from . import _common


def histogram_percent(*values: np.ndarray, bins: int = 15) -> tuple[np.ndarray, ...]:
    """Shared equal-width bins and per-array percentages (study_spec §9 item 23).

    Args:
        *values: 1-D arrays; non-finite entries are left out.
        bins: the number of equal-width bins spanning [min, max] of the union of the finite values.

    Returns:
        (edges [bins + 1], pct_1 [bins], pct_2 [bins], ...): each array's counts as a percentage of its finite
        values (all zero for an array without any).

    Raises:
        ValueError: no arrays, bins < 1, or no finite value in any array.
    """
    _common.positive("bins", bins)
    finite = [v[np.isfinite(v)] for v in (np.asarray(v, dtype=np.float64).ravel() for v in values)]
    union = np.concatenate(finite) if finite else np.empty(0)
    if not union.size:
        raise ValueError("values: histogram_percent needs at least one finite value in at least one array")
    edges = np.histogram_bin_edges(union, bins=bins, range=(union.min(), union.max()))
    percents = [np.histogram(v, bins=edges)[0] * (100.0 / max(v.size, 1)) for v in finite]
    return (edges, *percents)


def min_l2_histogram(result: AuditResult, groups: Sequence[str] | None = None, bins: int = 15) -> Figure:
    """Overlapping histograms of min L2 to training weights, as a percentage of each group's models (study §2.1).

    Training models are measured against the other training models (self excluded), so the training bars show
    how close independent training runs are; a generated group far to their left holds near-copies.

    Args:
        result: the audit.
        groups: group names to show, in that order; default the training, generated and reference groups.
        bins: equal-width bins over [min, max] of the shown groups' finite values (the study uses 15).

    Returns:
        A Figure with one Axes; one bar container per group (labelled "<name> (n=<models>)").

    Raises:
        TypeError: ``result`` is not an AuditResult.
        ValueError: an unknown group name, bins < 1, or no finite min L2 in the chosen groups.
    """
    _common.check_result(result)
    chosen = _common.groups(result, groups, _common.AUDITED_ROLES)
    colors = _common.group_colors(result)
    edges, *percents = histogram_percent(*(_common.numpy(g.min_l2) for g in chosen), bins=bins)
    fig = _common.new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    for g, pct in zip(chosen, percents):
        ax.bar(edges[:-1], pct, width=np.diff(edges), align="edge", alpha=0.5, color=colors[g.name],
               edgecolor=colors[g.name], label=f"{g.name} (n={len(g)})")
    ax.set_xlabel("min L2 to training weights")
    ax.set_ylabel("% of models")
    ax.set_title("Distance to the nearest training model: " + ", ".join(g.name for g in chosen))
    ax.legend()
    return fig
