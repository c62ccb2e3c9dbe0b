"""The t-SNE map of weights (study_spec §2.8): do generated models fill the space between training models or sit
on top of them?"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..audit.result import AuditResult
from . import _common

#: sklearn's default perplexity (the study's setting); smaller sets use (points - 1) / 3, the largest value whose
#: 3 * perplexity neighbours a set of that size still has.
_PERPLEXITY = 30.0


def tsne(result: AuditResult, groups: Sequence[str] | None = None, per_group: int = 100, seed: int = 42) -> Figure:
    """A 2-D t-SNE embedding of up to ``per_group`` random models per group, coloured by group (study §2.8).

    Args:
        result: the audit.
        groups: group names to embed; default every group but the frontier's models.
        per_group: at most this many models per group (the study: 100), drawn without replacement among the
            models whose weights are all finite.
        seed: ``TSNE(random_state=seed)`` (the study: 42); group i's draw uses ``seed + i``.

    Returns:
        A Figure with one Axes: one scatter collection per group (labelled "<name> (n=<models>)").

    Raises:
        TypeError: ``result`` is not an AuditResult.
        ValueError: an unknown group name, per_group < 1, or fewer than 3 models to embed.
    """
    from sklearn.manifold import TSNE

    _common.check_result(result)
    _common.positive("per_group", per_group)
    chosen = _common.groups(result, groups, _common.MODEL_ROLES)
    samples = []
    for i, g in enumerate(chosen):
        weights = _common.numpy(g.weights)
        rows = np.flatnonzero(np.isfinite(weights).all(axis=1))
        samples.append(weights[rows[_common.random_subset(rows.size, per_group, seed + i)]].astype(np.float64))
    points = sum(len(s) for s in samples)
    if points < 3:
        raise ValueError(f"groups: t-SNE needs at least 3 models with finite weights; the chosen groups "
                         f"{[g.name for g in chosen]} have {points}")
    embedded = TSNE(n_components=2, perplexity=min(_PERPLEXITY, (points - 1) / 3),
                    random_state=seed).fit_transform(np.concatenate(samples))
    colors = _common.group_colors(result)
    fig = _common.new_figure(6.0, 5.0)
    ax = fig.add_subplot()
    start = 0
    for g, sample in zip(chosen, samples):
        part = embedded[start:start + len(sample)]
        start += len(sample)
        ax.scatter(part[:, 0], part[:, 1], s=12, alpha=0.7, color=colors[g.name], label=f"{g.name} (n={len(sample)})")
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_title("t-SNE of weights: " + ", ".join(g.name for g in chosen))
    ax.legend(fontsize=8)
    return fig
