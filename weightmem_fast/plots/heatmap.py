"""The weight heatmap (study_spec §2.2): generated models beside their nearest training models, parameter by
parameter."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..audit.result import AuditResult
from . import _common


def weight_heatmap(result: AuditResult, group: str | None = None, n_models: int = 3, k: int = 3, n_params: int = 64,
                   seed: int = 0) -> Figure:
    """For each of the group's first ``n_models`` models, a block of 1 + k rows: the model (outlined in red), then
    its k nearest training models (``nearest_index``, nearest first), on the same random parameter indices.

    A block whose rows look alike is a model that copies a training model. Each block has its own viridis scale
    spanning its finite minimum and maximum (study §2.2).

    Args:
        result: the audit.
        group: the group's name; default the first generated group (else the first reference group).
        n_models: how many of the group's models, from the first (the study: 3).
        k: training neighbours per model, at most the audit's k (the study: 3).
        n_params: how many parameter indices, drawn without replacement and sorted (the study: 64); all D when the
            models have fewer. The same indices for every row: ``_common.random_subset(D, n_params, seed)``.
        seed: the indices' seed.

    Returns:
        A Figure with one image Axes per block (image [1 + k, n_params]: the model's row, then its neighbours')
        and a colour bar beside each.

    Raises:
        TypeError: ``result`` is not an AuditResult.
        ValueError: an unknown group, n_models outside [1, group size], k outside [1, the audit's k],
            n_params < 1.
    """
    _common.check_result(result)
    chosen = _common.group(result, group)
    _common.model_count(chosen, n_models)
    available = chosen.nearest_index.shape[1]
    if not isinstance(k, int) or not 1 <= k <= available:
        raise ValueError(f"k must be an int in [1, {available}] (the neighbours the audit kept); got {k!r}")
    _common.positive("n_params", n_params)
    weights, training = _common.numpy(chosen.weights), _common.numpy(result.training.weights)
    nearest = _common.numpy(chosen.nearest_index)
    columns = _common.random_subset(weights.shape[1], n_params, seed)
    fig = _common.new_figure(8.0, 1.2 + 1.1 * n_models * (1 + k) / 4)
    for i, ax in enumerate(fig.subplots(n_models, 1, squeeze=False)[:, 0]):
        neighbours = nearest[i, :k]
        block = np.concatenate([weights[i:i + 1, columns], training[np.ix_(neighbours, columns)]])
        finite = block[np.isfinite(block)]
        image = ax.imshow(block, cmap="viridis", aspect="auto", interpolation="nearest",
                          vmin=finite.min() if finite.size else None, vmax=finite.max() if finite.size else None)
        ax.add_patch(Rectangle((-0.5, -0.5), len(columns), 1, fill=False, edgecolor="red", linewidth=2))
        ax.set_yticks(range(1 + k), [f"{chosen.name} {i}"] + [f"training {int(j)}" for j in neighbours])
        ticks = np.unique(np.linspace(0, len(columns) - 1, min(5, len(columns))).round().astype(int))
        ax.set_xticks(ticks, [str(columns[t]) for t in ticks])
        fig.colorbar(image, ax=ax, pad=0.01)
    ax.set_xlabel(f"parameter index ({len(columns)} random of {weights.shape[1]})")
    fig.suptitle(f"{chosen.name} models and their {k} nearest training models (L2)")
    return fig
