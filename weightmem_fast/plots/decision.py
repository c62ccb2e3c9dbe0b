"""Decision boundaries on a PCA grid of the test inputs (study_spec §2.7): does a generated classifier carve input
space like its nearest training model?"""
from __future__ import annotations

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure

from ..audit.result import AuditResult
from ..audit.tasks import ClassifierTask
from . import _common


def pca_grid(inputs: torch.Tensor, resolution: int = 300, margin: float = 1.0) -> tuple[torch.Tensor, np.ndarray,
                                                                                        np.ndarray]:
    """A square grid on the inputs' first two principal components, mapped back to input space (study §9 item 22).

    The inputs are flattened, standardised per feature (``StandardScaler``) and projected with ``PCA(2)`` (exact
    SVD); the grid spans [min - margin, max + margin] of the projections on each axis; every grid point goes back
    through the inverse PCA and the inverse standardisation.

    Args:
        inputs: [T, ...] float tensor, T >= 2, at least 2 features per sample.
        resolution: R, grid points per axis (the study: 300).
        margin: how far the grid reaches beyond the projected inputs, in standardised PCA units (the study: 1).

    Returns:
        (grid_inputs [R * R, ...] with the inputs' sample shape, dtype and device, xx [R, R], yy [R, R]):
        ``grid_inputs[r * R + c]`` is the point (xx[r, c], yy[r, c]).

    Raises:
        TypeError: ``inputs`` is not a floating-point tensor.
        ValueError: fewer than 2 samples or features, resolution < 2, or a negative margin.
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point():
        raise TypeError(f"inputs must be a floating-point torch.Tensor [T, ...]; got {type(inputs).__name__} "
                        f"{getattr(inputs, 'dtype', '')}")
    flat = _common.numpy(inputs).reshape(inputs.shape[0], -1).astype(np.float64)
    if flat.shape[0] < 2 or flat.shape[1] < 2:
        raise ValueError(f"inputs needs at least 2 samples of at least 2 features for a 2-D PCA; got shape "
                         f"{tuple(inputs.shape)}")
    _common.positive("resolution", resolution, minimum=2)
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0; got {margin!r}")
    scaler = StandardScaler().fit(flat)
    # The exact SVD: sklearn's "auto" picks a randomized solver above 500 samples, unseeded, so the plane (and the
    # figure) would change from run to run.
    pca = PCA(n_components=2, svd_solver="full").fit(scaler.transform(flat))
    projected = pca.transform(scaler.transform(flat))
    low, high = projected.min(axis=0) - margin, projected.max(axis=0) + margin
    xx, yy = np.meshgrid(np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution))
    grid = scaler.inverse_transform(pca.inverse_transform(np.column_stack([xx.ravel(), yy.ravel()])))
    grid_inputs = torch.from_numpy(grid).to(dtype=inputs.dtype, device=inputs.device)
    return grid_inputs.reshape(resolution * resolution, *inputs.shape[1:]), xx, yy


def decision_predictions(result: AuditResult, task: ClassifierTask, group: str | None = None, n_models: int = 3,
                         grid: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The classes the group's first models and their L2-nearest training models predict on ``pca_grid``.

    Args:
        result: a classifier audit.
        task: the audit's ``ClassifierTask`` (its template, layout and test inputs).
        group: the group's name; default the first generated group (else the first reference group).
        n_models: how many of the group's models, from the first (the study: 3).
        grid: R, the grid's points per axis.

    Returns:
        (xx [R, R], yy [R, R], predictions [n_models, 2, R, R] int64 (model i, then its nearest training model),
        training_rows [n_models] int64: the training rows used, ``nearest_index[:n_models, 0]``).

    Raises:
        TypeError: ``result`` is not an AuditResult or ``task`` not a ClassifierTask.
        ValueError: a field audit, an unknown group, n_models outside [1, group size], grid < 2.
    """
    _common.check_result(result, "classifier", "decision_boundaries")
    if not isinstance(task, ClassifierTask):
        raise TypeError(f"task must be the audit's ClassifierTask; got {type(task).__name__}")
    chosen = _common.group(result, group)
    _common.model_count(chosen, n_models)
    grid_inputs, xx, yy = pca_grid(task.inputs, grid)
    training_rows = chosen.nearest_index[:n_models, 0].cpu()
    weights = torch.cat([chosen.weights[:n_models].cpu(), result.training.weights.cpu()[training_rows]])
    predicted = _common.numpy(task.predict(weights.to(grid_inputs.device), grid_inputs))
    predicted = predicted.reshape(2, n_models, grid, grid)
    return xx, yy, predicted.transpose(1, 0, 2, 3), _common.numpy(training_rows)


def decision_boundaries(result: AuditResult, task: ClassifierTask, group: str | None = None, n_models: int = 3,
                        grid: int = 300) -> Figure:
    """Filled decision regions (tab10, one colour per class) of the group's first models (left) and of their
    L2-nearest training models (right), on the PCA grid of the task's test inputs (study §2.7).

    Arguments, errors: as ``decision_predictions``, which computes what is drawn.

    Returns:
        A Figure with n_models x 2 Axes, each holding one filled contour set (levels at class - 0.5, so each class
        is one band) titled with the model ("generated 0", "training 12 (nearest)").
    """
    xx, yy, predicted, training_rows = decision_predictions(result, task, group, n_models, grid)
    chosen = _common.group(result, group)
    classes = int(max(predicted.max(), int(task.labels.max()))) + 1
    tab10 = colormaps["tab10"]
    colours = [tab10(c % 10) for c in range(classes)]
    fig = _common.new_figure(7.0, 3.2 * n_models)
    axes = fig.subplots(n_models, 2, squeeze=False)
    for i in range(n_models):
        titles = (f"{chosen.name} {i}", f"training {int(training_rows[i])} (nearest)")
        for ax, regions, title in zip(axes[i], predicted[i], titles):
            ax.contourf(xx, yy, regions, levels=np.arange(classes + 1) - 0.5, colors=colours)
            ax.set_title(title)
            ax.set_xlabel("PC 1")
            ax.set_ylabel("PC 2")
    fig.suptitle(f"Decision regions on the PCA plane of the test inputs ({grid}x{grid} grid)")
    return fig
