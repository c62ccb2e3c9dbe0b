"""The similarity-quality scatter with the noise frontier (study_spec §2.4; fields: §2.5, §5.3)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..audit.result import AuditResult
from . import _common

#: How many frontier points get their sigma written beside them (evenly spread over the sweep).
_SIGMA_LABELS = 4


def similarity_scatter(result: AuditResult, groups: Sequence[str] | None = None, per_group: int = 100,
                       seed: int = 0) -> Figure:
    """Each model's similarity to training (x) against its quality (y), with the noise frontier as a curve.

    Classifiers (study §2.4): x = max error-set IoU with a training model (lower = more novel), y = accuracy in
    percent (stored as a fraction, drawn x100). Fields (study §5.3): x = min Chamfer distance to the training
    shapes (higher = more novel), y = min Chamfer distance to the held-out shapes (lower = better). The frontier
    (``result.frontier``) is drawn as a line through its per-sigma points, some labelled "σ=<sigma>", and the noise
    envelope (the staircase the verdict's "beyond the frontier" is measured against) as a dashed step line.

    Args:
        result: the audit.
        groups: group names to show; default every group but the frontier's models.
        per_group: at most this many models per group, drawn at random without replacement (the study: 100)
            among the models with finite values (fields: models without a surface have none).
        seed: the draw's seed; group i of ``groups`` uses ``seed + i``.

    Returns:
        A Figure with one Axes: one scatter collection per group (labelled "<name> (n=<models>)") and, when the
        frontier has points, the line labelled "noise frontier" holding one point per sigma and the step line
        labelled "noise envelope" through the envelope's corners.

    Raises:
        TypeError: ``result`` is not an AuditResult.
        ValueError: an unknown group name or per_group < 1.
    """
    _common.check_result(result)
    _common.positive("per_group", per_group)
    chosen = _common.groups(result, groups, _common.MODEL_ROLES)
    behaviour = result.behaviour
    scale = 100.0 if behaviour.kind == "classifier" else 1.0  # accuracy is stored as a fraction
    colors = _common.group_colors(result)
    fig = _common.new_figure(6.0, 4.5)
    ax = fig.add_subplot()
    for i, g in enumerate(chosen):
        x = _common.numpy(g.metrics[behaviour.similarity]).astype(np.float64)
        y = _common.numpy(g.metrics[behaviour.quality]).astype(np.float64) * scale
        rows = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
        rows = rows[_common.random_subset(rows.size, per_group, seed + i)]
        ax.scatter(x[rows], y[rows], s=12, alpha=0.6, color=colors[g.name], label=f"{g.name} (n={rows.size})")
    frontier = result.frontier
    if frontier.sigmas:
        fx, fy = np.asarray(frontier.similarity), np.asarray(frontier.quality) * scale
        ax.plot(fx, fy, "o-", color=_common.FRONTIER_COLOR, markersize=4, label="noise frontier")
        for j in np.unique(np.linspace(0, len(fx) - 1, min(_SIGMA_LABELS, len(fx))).round().astype(int)):
            if np.isfinite(fx[j]) and np.isfinite(fy[j]):
                ax.annotate(f"σ={frontier.sigmas[j]:g}", (fx[j], fy[j]), textcoords="offset points",
                            xytext=(4, 4), fontsize=8)
    if frontier.envelope_similarity:
        # The envelope holds its value from each corner towards closer similarity: "post" steps in the direction
        # of increasing closeness (increasing x for IoU, decreasing x for distances).
        ex, ey = np.asarray(frontier.envelope_similarity), np.asarray(frontier.envelope_quality) * scale
        ax.step(ex, ey, where="post", linestyle="--", linewidth=1, color=_common.FRONTIER_COLOR,
                label="noise envelope (beyond = above)" if behaviour.better_is_higher else
                "noise envelope (beyond = below)")
    ax.set_xlabel(behaviour.similarity_label)
    ax.set_ylabel("accuracy (%)" if behaviour.kind == "classifier" else behaviour.quality_label)
    ax.set_title(f"{behaviour.quality_label} against similarity to training".capitalize())
    ax.legend(fontsize=8)
    return fig
