"""Rendered shapes of a field audit (study_spec §2.7, §5.3): each generated surface beside the training shape of
its L2-nearest training network."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..audit.result import AuditResult, GroupAudit
from . import _common

#: The text of a panel whose network has no surface.
NO_SURFACE = "no surface"


def shape_renders(result: AuditResult, group: str | None = None, n_models: int = 3) -> Figure:
    """3-D point renders of the group's first clouds (left) and of the training cloud of each one's L2-nearest
    training network (right; ``nearest_index[:, 0]`` into the training group's clouds).

    A network without a surface (``extras["surface"]`` False, or a cloud with no finite point) gets an empty panel
    reading "no surface". Both panels of a row share their axis limits, so sizes compare.

    Args:
        result: a field audit whose group and training group carry ``extras["clouds"]`` [n, P, 3].
        group: the group's name; default the first generated group (else the first reference group).
        n_models: how many of the group's models, from the first (the study: 3).

    Returns:
        A Figure with n_models x 2 3-D Axes: a scatter of the cloud's P points, or the "no surface" text.

    Raises:
        TypeError: ``result`` is not an AuditResult.
        ValueError: a classifier audit, an unknown group, n_models outside [1, group size], or missing clouds.
    """
    _common.check_result(result, "field", "shape_renders")
    chosen = _common.group(result, group)
    _common.model_count(chosen, n_models)
    training = result.training
    for g in (chosen, training):
        if "clouds" not in g.extras:
            raise ValueError(f"result: group {g.name!r} has no extras['clouds'] (the field audit keeps each "
                             "group's clouds; was it loaded from an incomplete arrays file?)")
    colors = _common.group_colors(result)
    rows = _common.numpy(chosen.nearest_index[:n_models, 0])
    fig = _common.new_figure(7.0, 3.0 * n_models)
    for i in range(n_models):
        panels = [(_points(chosen, i), f"{chosen.name} {i}", colors[chosen.name]),
                  (_points(training, int(rows[i])), f"training {int(rows[i])} (nearest)", colors[training.name])]
        drawn = [p for p, _, _ in panels if p.size]
        low = np.min([p.min(axis=0) for p in drawn], axis=0) if drawn else None
        high = np.max([p.max(axis=0) for p in drawn], axis=0) if drawn else None
        for j, (points, title, color) in enumerate(panels):
            ax = fig.add_subplot(n_models, 2, 2 * i + j + 1, projection="3d")
            ax.set_title(title)
            if not points.size:
                ax.set_axis_off()
                ax.text2D(0.5, 0.5, NO_SURFACE, transform=ax.transAxes, ha="center", va="center")
                continue
            ax.scatter(points[:, 0], points[:, 1], points[:, 2], s=1, color=color)
            ax.set(xlim=(low[0], high[0]), ylim=(low[1], high[1]), zlim=(low[2], high[2]))
            ax.set_box_aspect(tuple(np.maximum(high - low, 1e-9)))
    fig.suptitle(f"{chosen.name} shapes and their nearest training shapes (L2)")
    return fig


def _points(g: GroupAudit, row: int) -> np.ndarray:
    """The finite points [p, 3] of one model's cloud; none when it has no surface."""
    surface = g.extras.get("surface")
    cloud = _common.numpy(g.extras["clouds"][row])
    if surface is not None and not bool(surface[row]):
        return cloud[:0]
    return cloud[np.isfinite(cloud).all(axis=1)]
