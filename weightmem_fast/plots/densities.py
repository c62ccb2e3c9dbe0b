"""Per-parameter value densities (study_spec §2.8): does a generated model's parameter follow the training
distribution, collapse onto a few training values, or sit between them?"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..audit.result import AuditResult
from . import _common

#: Points of each density curve.
_CURVE_POINTS = 200
#: How many bandwidths a curve extends beyond the data (seaborn's default).
_CUT = 3.0


def parameter_densities(result: AuditResult, groups: Sequence[str] | None = None, n_params: int = 5,
                        seed: int = 0) -> Figure:
    """Kernel density estimates (``scipy.stats.gaussian_kde``, Scott's bandwidth) of a few random parameters'
    values in each group (study §2.8, which draws seaborn KDEs of 5 parameters).

    A group whose values of a parameter are all equal (or who has a single finite value) has no density: a
    dashed vertical line marks that value instead. Non-finite values are left out.

    Args:
        result: the audit.
        groups: group names to show; default the training, generated and reference groups.
        n_params: how many parameter indices (all D when the models have fewer): ``_common.random_subset(D,
            n_params, seed)``, sorted.
        seed: the indices' seed.

    Returns:
        A Figure with one Axes per parameter (titled "parameter <index>"), each with one line per group that has
        finite values (labelled with the group's name).

    Raises:
        TypeError: ``result`` is not an AuditResult.
        ValueError: an unknown group name or n_params < 1.
    """
    from scipy.stats import gaussian_kde

    _common.check_result(result)
    _common.positive("n_params", n_params)
    chosen = _common.groups(result, groups, _common.AUDITED_ROLES)
    colors = _common.group_colors(result)
    columns = _common.random_subset(chosen[0].weights.shape[1], n_params, seed)
    weights = {g.name: _common.numpy(g.weights)[:, columns].astype(np.float64) for g in chosen}
    fig = _common.new_figure(3.0 * len(columns), 3.0)
    for j, (ax, column) in enumerate(zip(fig.subplots(1, len(columns), squeeze=False)[0], columns)):
        values = {name: w[:, j][np.isfinite(w[:, j])] for name, w in weights.items()}
        kdes = {name: gaussian_kde(v) for name, v in values.items() if v.size > 1 and np.ptp(v) > 0}
        union = np.concatenate(list(values.values()))
        # Curves reach 3 bandwidths beyond the data, as seaborn's default cut=3.
        pad = max((_CUT * float(np.sqrt(kde.covariance[0, 0])) for kde in kdes.values()), default=1.0)
        x = np.linspace(union.min() - pad, union.max() + pad, _CURVE_POINTS) if union.size else union
        for name, v in values.items():
            if name in kdes:
                ax.plot(x, kdes[name](x), color=colors[name], label=name)
            elif v.size:
                ax.axvline(v[0], color=colors[name], linestyle="--", label=f"{name} (all {v[0]:.3g})")
        ax.set_title(f"parameter {column}")
        ax.set_xlabel("value")
        ax.set_ylabel("density" if j == 0 else "")
        ax.legend(fontsize=7)
    fig.suptitle("Parameter value densities: " + ", ".join(g.name for g in chosen))
    return fig
