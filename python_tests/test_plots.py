"""The audit figures (issue 8; study_spec §2.1, §2.2, §2.4, §2.7, §2.8, §5.3): each figure draws the result's
numbers, not just something.

Two small results stand in for ``audit(...)``: a classifier audit of a digits MLP zoo (real models, error sets and
frontier) and a synthetic field audit (random clouds, one model without a surface)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from scipy.stats import gaussian_kde
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

import weightmem_fast as wmf
from weightmem_fast import plots, zoo
from weightmem_fast.audit.result import CLASSIFIER, FIELD, AuditResult, Frontier, GroupAudit
from weightmem_fast.audit.tasks import ClassifierTask

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIGMAS = (0.01, 0.05, 0.2, 0.5)
K = 3


def _group(name: str, role: str, weights: torch.Tensor, training: torch.Tensor, metrics: dict,
           extras: dict | None = None) -> GroupAudit:
    values, index = wmf.nearest(weights, training, k=K, exclude_self=role == "training")
    return GroupAudit(name, role, weights, values[:, 0].float(), index, values.float(), metrics, extras or {})


def _result(behaviour, groups: list[GroupAudit], model_sigmas: torch.Tensor) -> AuditResult:
    """The audit of ``groups`` (the last is the frontier, its models noised with ``model_sigmas``): the frontier
    is each sigma's median similarity and quality, as the audit defines it."""
    metrics = groups[-1].metrics
    medians = [[float(metrics[key][model_sigmas == s].median()) for s in SIGMAS]
               for key in (behaviour.similarity, behaviour.quality)]
    frontier = Frontier(SIGMAS, tuple(medians[0]), tuple(medians[1]))
    return AuditResult(behaviour, {g.name: g for g in groups}, frontier, {}, {}, {}, {}, {})


@pytest.fixture(scope="module")
def classifier(one_torch_thread) -> tuple[AuditResult, ClassifierTask]:
    """A digits MLP zoo (12 models, D = 760) audited like ``audit`` would: training, a generated group of
    near-copies and interpolations, a noise baseline and a 4-sigma frontier."""
    data = zoo.digits()
    models = zoo.train_mlp_zoo(data, 12, epochs=1, progress=False)
    task = ClassifierTask(zoo.model_from_zoo(models, 0), data.test_x.flatten(1), data.test_y)  # MLPs take [T, 64]
    train = models.weights
    noise = torch.Generator().manual_seed(1)

    def noised(w: torch.Tensor, sigma: float) -> torch.Tensor:
        return w + sigma * torch.randn(w.shape, generator=noise)

    model_sigmas = torch.tensor(SIGMAS).repeat_interleave(4)
    named = [("training", "training", train),
             ("generated", "generated", torch.cat([noised(train[:4], 0.001), 0.5 * (train[4:8] + train[8:12])])),
             ("noise 0.05", "baseline", noised(train[:6], 0.05)),
             ("frontier", "frontier", train[:4].repeat(len(SIGMAS), 1) +
              model_sigmas[:, None] * torch.randn(16, 760, generator=noise))]
    measured = {name: task.measure(w) for name, _, w in named}
    groups = []
    for name, role, w in named:
        sim, index = task.similarity(measured[name], measured["training"], exclude_self=role == "training")
        groups.append(_group(name, role, w, train, {"max_iou": sim, "max_iou_index": index,
                                                     "accuracy": measured[name].quality}))
    return _result(CLASSIFIER, groups, model_sigmas), task


@pytest.fixture(scope="module")
def field() -> AuditResult:
    """A synthetic field audit: D = 20, clouds of 50 points, generated model 1 without a surface."""
    gen = torch.Generator().manual_seed(2)
    train = torch.randn(6, 20, generator=gen)
    model_sigmas = torch.tensor(SIGMAS).repeat_interleave(2)
    specs = [("training", "training", train, 6), ("generated", "generated", train[:4] + 0.01, 4),
             ("frontier", "frontier", train[:2].repeat(len(SIGMAS), 1) + model_sigmas[:, None], 8)]
    groups = []
    for name, role, w, n in specs:
        clouds, surface = torch.randn(n, 50, 3, generator=gen), torch.ones(n, dtype=torch.bool)
        chamfer = torch.rand(n, generator=gen)
        if name == "generated":
            clouds[1], surface[1], chamfer[1] = float("nan"), False, float("nan")
        groups.append(_group(name, role, w, train, {"min_chamfer": chamfer, "min_chamfer_index": torch.zeros(n),
                                                     "test_chamfer": chamfer + 0.1},
                             {"clouds": clouds, "surface": surface}))
    return _result(FIELD, groups, model_sigmas)


def _bars(ax) -> dict[str, np.ndarray]:
    return {c.get_label().split(" (n=")[0]: np.array([r.get_height() for r in c]) for c in ax.containers}


def test_histogram_percentages_per_group_in_15_shared_bins(classifier):
    result, _ = classifier
    fig = plots.min_l2_histogram(result)
    ax = fig.axes[0]
    heights = _bars(ax)
    assert list(heights) == ["training", "generated"]  # default: no baselines, no frontier
    union = np.concatenate([result.groups[g].min_l2.numpy() for g in heights])
    edges = np.linspace(union.min(), union.max(), 16)
    for name, pct in heights.items():
        values = result.groups[name].min_l2.numpy()
        np.testing.assert_allclose(pct, np.histogram(values, edges)[0] * 100 / len(values), rtol=1e-6)
        assert pct.sum() == pytest.approx(100.0)
    np.testing.assert_allclose([r.get_x() for r in ax.containers[0]], edges[:-1], rtol=1e-6)
    assert ax.get_xlabel() == "min L2 to training weights" and ax.get_ylabel() == "% of models"


def test_histogram_groups_argument_and_colours(classifier):
    result, _ = classifier
    ax = plots.min_l2_histogram(result, groups=["noise 0.05", "training"], bins=4).axes[0]
    assert list(_bars(ax)) == ["noise 0.05", "training"] and len(ax.containers[0]) == 4
    colours = plots.group_colors(result)
    assert colours["training"] == "tab:blue" and colours["generated"] == "tab:red"
    assert len(set(colours.values())) == len(colours)
    assert ax.containers[1][0].get_facecolor()[:3] == pytest.approx((0.12156, 0.46667, 0.70588), abs=1e-4)


def test_histogram_percent_known_values_ignore_nan():
    edges, pct_a, pct_b = plots.histogram_percent(np.array([0.0, 1, 2, 3]), np.array([3.0, 3, np.nan]), bins=3)
    np.testing.assert_allclose(edges, [0, 1, 2, 3])
    np.testing.assert_allclose(pct_a, [25, 25, 50])
    np.testing.assert_allclose(pct_b, [0, 0, 100])


def test_scatter_draws_sampled_models_and_the_frontier(classifier):
    result, _ = classifier
    ax = plots.similarity_scatter(result, per_group=5).axes[0]
    frontier = next(line for line in ax.lines if line.get_label() == "noise frontier")
    np.testing.assert_allclose(frontier.get_xdata(), result.frontier.similarity)
    np.testing.assert_allclose(frontier.get_ydata(), np.array(result.frontier.quality) * 100)
    assert len(frontier.get_xdata()) == len(SIGMAS)
    assert {t.get_text() for t in ax.texts} <= {f"σ={s:g}" for s in SIGMAS} and len(ax.texts) == len(SIGMAS)
    points = {c.get_label().split(" (n=")[0]: c.get_offsets() for c in ax.collections
              if isinstance(c, PathCollection)}
    assert list(points) == ["training", "generated", "noise 0.05"]  # the frontier's models are its curve
    for name, xy in points.items():
        g = result.groups[name]
        rows = np.column_stack([g.metrics["max_iou"].numpy(), g.metrics["accuracy"].numpy() * 100])
        assert len(xy) == 5 and len({tuple(p) for p in np.asarray(xy)}) == 5  # without replacement
        assert all(np.isclose(rows, p).all(axis=1).any() for p in np.asarray(xy))
    assert ax.get_ylabel() == "accuracy (%)" and ax.get_xlabel() == CLASSIFIER.similarity_label
    again = plots.similarity_scatter(result, per_group=5).axes[0].collections[0].get_offsets()
    np.testing.assert_array_equal(again, points["training"])  # seeded


def test_scatter_field_skips_models_without_a_surface(field):
    ax = plots.similarity_scatter(field).axes[0]
    generated = next(c for c in ax.collections if c.get_label().startswith("generated"))
    assert len(generated.get_offsets()) == 3 and np.isfinite(generated.get_offsets()).all()
    assert ax.get_xlabel() == FIELD.similarity_label and ax.get_ylabel() == FIELD.quality_label


def test_heatmap_shows_model_then_nearest_training_rows(classifier):
    result, _ = classifier
    fig = plots.weight_heatmap(result, n_models=2, k=3, n_params=64, seed=3)
    blocks = [ax for ax in fig.axes if ax.images]
    assert len(blocks) == 2
    columns = plots.random_subset(760, 64, 3)
    generated, training = result.groups["generated"], result.training.weights
    for i, ax in enumerate(blocks):
        expected = torch.cat([generated.weights[i:i + 1], training[generated.nearest_index[i]]])[:, columns]
        image = ax.images[0]
        np.testing.assert_array_equal(image.get_array(), expected.numpy())
        assert image.get_clim() == pytest.approx((expected.min().item(), expected.max().item()))
        outline = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(outline) == 1 and outline[0].get_height() == 1 and outline[0].get_edgecolor()[:3] == (1, 0, 0)


def test_random_subset_is_seeded_sorted_and_capped():
    a = plots.random_subset(100, 10, 5)
    np.testing.assert_array_equal(a, plots.random_subset(100, 10, 5))
    assert len(set(a)) == 10 and (np.diff(a) > 0).all()
    np.testing.assert_array_equal(plots.random_subset(4, 10, 0), np.arange(4))


def test_pca_grid_maps_back_onto_the_grid(classifier):
    _, task = classifier
    grid, xx, yy = plots.pca_grid(task.inputs, resolution=7, margin=1.0)
    assert grid.shape == (49, 64) and grid.dtype == task.inputs.dtype and xx.shape == yy.shape == (7, 7)
    flat = task.inputs.reshape(len(task.inputs), -1).double().numpy()
    scaler = StandardScaler().fit(flat)
    pca = PCA(2, svd_solver="full").fit(scaler.transform(flat))
    projected = pca.transform(scaler.transform(flat))
    back = pca.transform(scaler.transform(grid.reshape(49, -1).double().numpy()))
    np.testing.assert_allclose(back, np.column_stack([xx.ravel(), yy.ravel()]), atol=1e-4)  # float32 grid
    # Two PCA fits of the same data agree to ~1e-6 (BLAS summation order), hence abs=1e-4.
    assert xx.min() == pytest.approx(projected[:, 0].min() - 1, abs=1e-4)
    assert yy.max() == pytest.approx(projected[:, 1].max() + 1, abs=1e-4)


def test_decision_boundaries_draw_the_models_predictions(classifier):
    result, task = classifier
    xx, yy, predicted, rows = plots.decision_predictions(result, task, n_models=2, grid=30)
    generated = result.groups["generated"]
    np.testing.assert_array_equal(rows, generated.nearest_index[:2, 0].numpy())
    grid = plots.pca_grid(task.inputs, 30)[0]
    np.testing.assert_array_equal(predicted[:, 1].reshape(2, -1),
                                  task.predict(result.training.weights[rows], grid).numpy())
    np.testing.assert_array_equal(predicted[:, 0].reshape(2, -1), task.predict(generated.weights[:2], grid).numpy())
    fig = plots.decision_boundaries(result, task, n_models=2, grid=30)
    axes = fig.axes
    assert len(axes) == 4 and axes[1].get_title() == f"training {rows[0]} (nearest)"
    for ax, regions in zip(axes, predicted.reshape(4, 30, 30)):
        paths = ax.collections[0].get_paths()
        # Grid points whose 3x3 neighbourhood has one class lie inside that class's filled band.
        inside = np.nonzero(_interior(regions))
        assert len(inside[0]) > 100
        for r, c in zip(*inside):
            assert paths[regions[r, c]].contains_point((xx[r, c], yy[r, c]))


def _interior(regions: np.ndarray) -> np.ndarray:
    centre = regions[1:-1, 1:-1]
    same = np.ones_like(centre, dtype=bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            same &= regions[1 + dr:regions.shape[0] - 1 + dr, 1 + dc:regions.shape[1] - 1 + dc] == centre
    return np.pad(same, 1)


def test_tsne_embeds_each_group(classifier):
    result, _ = classifier
    ax = plots.tsne(result, per_group=5).axes[0]
    counts = {c.get_label(): len(c.get_offsets()) for c in ax.collections}
    assert counts == {"training (n=5)": 5, "generated (n=5)": 5, "noise 0.05 (n=5)": 5}
    small = plots.tsne(result, groups=["generated"]).axes[0]  # 8 points: perplexity shrinks below 8
    assert len(small.collections[0].get_offsets()) == 8


def test_densities_are_kdes_with_a_line_for_constant_values(classifier):
    result, _ = classifier
    columns = plots.random_subset(760, 2, 0)
    generated = result.groups["generated"]
    constant = generated.weights.clone()
    constant[:, columns[1]] = 0.25
    changed = dataclasses.replace(result, groups={**result.groups,
                                                  "generated": dataclasses.replace(generated, weights=constant)})
    fig = plots.parameter_densities(changed, n_params=2)
    assert [ax.get_title() for ax in fig.axes] == [f"parameter {c}" for c in columns]
    first = {line.get_label(): line for line in fig.axes[0].lines}
    for name in ("training", "generated"):
        values = changed.groups[name].weights[:, columns[0]].double().numpy()
        x = first[name].get_xdata()
        np.testing.assert_allclose(first[name].get_ydata(), gaussian_kde(values)(x))
    vertical = next(line for line in fig.axes[1].lines if line.get_label().startswith("generated"))
    np.testing.assert_allclose(vertical.get_xdata(), [0.25, 0.25])


def test_shape_renders_show_nearest_training_cloud_and_no_surface(field):
    fig = plots.shape_renders(field, n_models=2)
    axes = fig.axes
    assert len(axes) == 4
    generated = field.groups["generated"]
    row = int(generated.nearest_index[0, 0])
    np.testing.assert_allclose(np.column_stack(axes[0].collections[0]._offsets3d),  # the data mplot3d keeps
                               generated.extras["clouds"][0].numpy())
    np.testing.assert_allclose(np.column_stack(axes[1].collections[0]._offsets3d),
                               field.training.extras["clouds"][row].numpy())
    assert axes[1].get_title() == f"training {row} (nearest)"
    assert not axes[2].collections and [t.get_text() for t in axes[2].texts] == ["no surface"]
    assert axes[3].collections  # its nearest training shape is still drawn


def test_figures_of_a_classifier_audit_and_png_bytes(classifier):
    result, task = classifier
    figures = plots.figures(result, task, grid=10)
    assert list(figures) == ["min_l2_histogram", "similarity_scatter", "weight_heatmap", "decision_boundaries",
                             "tsne", "parameter_densities"]
    assert all(isinstance(f, Figure) for f in figures.values())
    assert len(figures["decision_boundaries"].axes) == 6  # 3 models x (generated | training)
    png = plots.figure_png(figures["min_l2_histogram"], dpi=30)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_figures_without_task_and_of_a_field_audit(classifier, field):
    assert "decision_boundaries" not in plots.figures(classifier[0])
    assert list(plots.figures(field)) == ["min_l2_histogram", "similarity_scatter", "weight_heatmap",
                                          "shape_renders", "tsne", "parameter_densities"]


@pytest.mark.parametrize("call, fragment", [
    (lambda r, t, f: plots.min_l2_histogram(r, groups=["nope"]), r"groups must be one of .*'training'.*'nope'"),
    (lambda r, t, f: plots.min_l2_histogram(r, groups="training"), "non-empty list of group names"),
    (lambda r, t, f: plots.min_l2_histogram(r, bins=0), "bins must be an int >= 1"),
    (lambda r, t, f: plots.similarity_scatter(r, per_group=0), "per_group must be"),
    (lambda r, t, f: plots.weight_heatmap(r, group="nope"), r"group must be one of .*'generated'"),
    (lambda r, t, f: plots.weight_heatmap(r, n_models=9), r"n_models must be an int in \[1, 8\]"),
    (lambda r, t, f: plots.weight_heatmap(r, k=4), r"k must be an int in \[1, 3\]"),
    (lambda r, t, f: plots.decision_boundaries(f, t), "needs a classifier audit; got a field audit"),
    (lambda r, t, f: plots.decision_boundaries(r, t, n_models=0), "n_models must be"),
    (lambda r, t, f: plots.decision_boundaries(r, t, grid=1), "resolution must be an int >= 2"),
    (lambda r, t, f: plots.shape_renders(r), "needs a field audit; got a classifier audit"),
    (lambda r, t, f: plots.shape_renders(f, n_models=5), r"n_models must be an int in \[1, 4\]"),
    (lambda r, t, f: plots.tsne(r, groups=["frontier", "nope"]), "'nope'"),
])
def test_bad_arguments_raise_value_error(classifier, field, call, fragment):
    result, task = classifier
    with pytest.raises(ValueError, match=fragment):
        call(result, task, field)


def test_wrong_types_raise_type_error(classifier):
    result, task = classifier
    with pytest.raises(TypeError, match="result must be"):
        plots.min_l2_histogram(result.to_dict())
    with pytest.raises(TypeError, match="task must be the audit's ClassifierTask"):
        plots.decision_boundaries(result, "task")
    with pytest.raises(TypeError, match="fig must be a matplotlib.figure.Figure"):
        plots.figure_png(result)
