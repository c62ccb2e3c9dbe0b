"""The audit (issue 8): per-model numbers equal independent float64 / per-model computations, the verdict separates
exact copies, noised copies and genuinely new models, results round-trip through JSON/CSV/arrays, bad arguments
raise clear errors."""
from __future__ import annotations

import json
import math

import pytest
import torch

from weightmem_fast import evaluate, fields, zoo
from weightmem_fast.audit import AuditResult, ClassifierTask, FieldTask, audit
from weightmem_fast.audit import verdict as verdict_lib
from weightmem_fast.audit.result import CLASSIFIER, FIELD
from weightmem_fast.io import Zoo

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return zoo.digits()


@pytest.fixture(scope="module")
def planted(digits):
    """40 training MLPs; 20 exact copies of training rows, 20 noised copies, 20 MLPs trained from other seeds."""
    training = zoo.train_mlp_zoo(digits, 40, epochs=10, seed=0, progress=False)
    new = zoo.train_mlp_zoo(digits, 20, epochs=10, seed=1000, progress=False).weights
    weights = training.weights
    noise = torch.randn(20, weights.shape[1], generator=torch.Generator().manual_seed(0))
    groups = {"copies": weights[:20].clone(), "noised": weights[:20] + 0.05 * weights.std() * noise, "new": new}
    task = ClassifierTask(zoo.model_from_zoo(training, 0), digits.test_x.flatten(1), digits.test_y,
                          layout=training.layout)
    return training, groups, task, audit(groups, training, task, progress=False)


def test_verdict_separates_copies_noised_copies_and_new_models(planted):
    *_, result = planted
    copies, noised, new = (result.verdicts[name] for name in ("copies", "noised", "new"))
    # Exact copies: all near-copies, distance 0, never beyond the noise envelope.
    assert copies.near_copies.value == 1.0 and copies.min_l2_ratio.value == 0.0
    assert copies.beyond_frontier.value == 0.0
    # Noised copies: close in weights (ratio ~0.04) but not copies; they sit on the frontier, like noise does.
    assert noised.near_copies.value == 0.0 and noised.min_l2_ratio.value < 0.1
    assert noised.beyond_frontier.value <= 0.15
    # Models from other seeds are as far from training as training models are from each other, and many are
    # beyond what noise reaches (measured 0.40).
    assert new.near_copies.value == 0.0 and 0.8 < new.min_l2_ratio.value < 1.25
    assert new.beyond_frontier.value >= 0.25 > noised.beyond_frontier.value
    # The default noise baselines calibrate the verdict: noise is (almost) never beyond its own envelope.
    assert all(result.verdicts[name].beyond_frontier.value <= 0.15 for name in ("noise 0.05", "noise 0.1"))
    for v in (copies, noised, new):
        for estimate in (v.beyond_frontier, v.near_copies, v.min_l2_ratio):
            assert estimate.low <= estimate.value <= estimate.high and estimate.level == 0.95


def test_per_model_numbers_equal_independent_computations(planted, digits):
    training, groups, task, result = planted
    train64 = training.weights.double()
    for name, group in result.groups.items():
        distances = torch.cdist(group.weights.double(), train64)
        if name == "training":
            distances.fill_diagonal_(math.inf)
        expected, index = distances.sort(dim=1, stable=True)
        assert torch.equal(group.nearest_index, index[:, :3]), name
        torch.testing.assert_close(group.nearest_l2.double(), expected[:, :3], rtol=1e-6, atol=1e-6)
        assert torch.equal(group.min_l2, group.nearest_l2[:, 0])
        # Accuracy and max IoU from the per-model loop's predictions.
        own = evaluate(task.template, group.weights, task.inputs, task.labels, layout=task.layout)
        train_eval = evaluate(task.template, training.weights, task.inputs, task.labels, layout=task.layout)
        assert torch.equal(group.metrics["accuracy"], own.accuracy)
        wrong = (own.predictions != task.labels).double()
        train_wrong = (train_eval.predictions != task.labels).double()
        inter = wrong @ train_wrong.T
        union = wrong.sum(1, keepdim=True) + train_wrong.sum(1) - inter
        iou = torch.where(union > 0, inter / union.clamp(min=1), 0.0)
        if name == "training":
            iou.fill_diagonal_(-1.0)
        best, best_index = iou.max(dim=1)
        torch.testing.assert_close(group.metrics["max_iou"].double(), best, rtol=1e-6, atol=0)
        assert torch.equal(iou.gather(1, group.metrics["max_iou_index"][:, None])[:, 0], best), name


def test_groups_settings_and_frontier(planted):
    training, _, _, result = planted
    assert list(result.groups) == ["training", "copies", "noised", "new", "noise 0.05", "noise 0.1", "frontier"]
    sweep = result.groups["frontier"]
    assert len(sweep) == 12 * 32 and sweep.metrics["sigma"].unique().numel() == 12
    std = float(training.weights.double().std())
    assert result.settings["training_std"] == pytest.approx(std)
    assert result.frontier.sigmas[0] == pytest.approx(1e-3 * float(training.weights.double().std(unbiased=False)))
    # The frontier runs from copies (similarity 1, training accuracy) towards chance as sigma grows.
    assert result.frontier.similarity[0] == 1.0 and result.frontier.similarity[-1] < 0.5
    assert result.frontier.quality[-1] < result.frontier.quality[0]
    assert result.versions["weightmem_fast"] and result.versions["torch"] == torch.__version__


def test_trajectory_training_sets_get_average_and_gaussian_baselines(planted):
    training, groups, task, _ = planted
    one_run = Zoo(training.weights, training.layout, [{"run": 0, "step": i} for i in range(40)])
    result = audit(groups["new"], one_run, task, progress=False, frontier_models=2, resamples=10)
    assert {"average 16", "gaussian"} <= set(result.groups) and "generated" in result.verdicts
    assert result.settings["trajectory"] is True
    assert "gaussian" not in audit(groups["new"], training, task, progress=False, frontier_models=2,
                                   resamples=10).groups


def test_round_trip_json_csv_arrays(planted, tmp_path):
    *_, result = planted
    doc = json.loads(result.to_json())
    assert doc["task"] == "classifier" and set(doc["verdicts"]) >= {"copies", "noised", "new"}
    assert len(doc["models"]) == sum(len(g) for g in result.groups.values())
    result.save(tmp_path)
    csv_lines = (tmp_path / "audit.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(doc["models"])
    loaded = AuditResult.load(tmp_path)
    assert loaded.verdicts == result.verdicts and loaded.frontier == result.frontier
    assert loaded.settings == json.loads(json.dumps(result.settings)) and loaded.behaviour == result.behaviour
    for name, group in result.groups.items():
        other = loaded.groups[name]
        assert other.role == group.role
        for a, b in [(group.weights, other.weights), (group.min_l2, other.min_l2),
                     (group.nearest_index, other.nearest_index)] + \
                [(group.metrics[k], other.metrics[k]) for k in group.metrics]:
            assert torch.equal(a, b), name
    for name, flags in result.per_model.items():
        assert all(torch.equal(flags[k], loaded.per_model[name][k]) for k in flags)
    assert loaded.to_json() == result.to_json()
    frame = result.to_frame()
    assert len(frame) == len(doc["models"]) and {"min_l2", "accuracy", "max_iou", "near_copy"} <= set(frame.columns)


def test_broken_generated_models_are_reported_not_fatal(planted):
    training, groups, task, _ = planted
    broken = groups["new"][:4].clone()
    broken[1, 5] = float("nan")
    result = audit(broken, training, task, progress=False, frontier_models=2, resamples=10)
    group = result.groups["generated"]
    assert math.isnan(group.min_l2[1]) and (group.nearest_index[1] == -1).all()
    assert not math.isnan(group.min_l2[0]) and not result.per_model["generated"]["near_copy"][1]
    assert math.isfinite(result.verdicts["generated"].min_l2_ratio.value)


@pytest.mark.parametrize("kwargs, match", [
    ({"training": "short"}, "at least 2 models"),
    ({"generated": torch.zeros(3, 5)}, "width D = 760"),
    ({"k": 40}, r"k must be an int in \[1, 39\]"),
    ({"baselines": "lots"}, "baselines must be 'default', 'none' or a mapping"),
    ({"generated": {"training": torch.zeros(2, 760)}}, "group names must be unique"),
    ({"level": 1.5}, r"level must be in \(0, 1\)"),
    ({"frontier_models": 0}, "frontier_models must be an int >= 1"),
])
def test_bad_arguments(planted, kwargs, match):
    training, groups, task, _ = planted
    args = {"generated": groups["new"], "training": training, "task": task, "progress": False}
    if kwargs.get("training") == "short":
        kwargs = {"training": training.weights[:1]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        audit(**args)


def test_task_validation(digits):
    with pytest.raises(TypeError, match="torch.nn.Module"):
        ClassifierTask("mlp", digits.test_x, digits.test_y)
    with pytest.raises(ValueError, match="same T"):
        ClassifierTask(zoo.make_model("mlp", (1, 8, 8), 10, seed=0), digits.test_x, digits.test_y[:-1])


# ---------------------------------------------------------------------------------------------------------------
# The verdict's definitions on hand-made points
# ---------------------------------------------------------------------------------------------------------------

def test_envelope_and_beyond_on_known_points():
    # Noise cloud (similarity, accuracy): the envelope is the best accuracy at similarity <= s.
    sim = torch.tensor([0.2, 0.4, 0.4, 0.6, 0.8, 1.0])
    acc = torch.tensor([0.3, 0.7, 0.5, 0.6, 0.9, 0.95])
    front = verdict_lib.frontier(CLASSIFIER, torch.tensor([0.1]), sim, acc, torch.full((6,), 0.1))
    assert front.envelope_similarity == pytest.approx((0.2, 0.4, 0.8, 1.0))
    assert front.envelope_quality == pytest.approx((0.3, 0.7, 0.9, 0.95))
    queries_sim = torch.tensor([0.1, 0.5, 0.5, 0.8, 0.9, float("nan")])
    queries_acc = torch.tensor([0.2, 0.71, 0.7, 0.9, 0.91, 0.99])
    beyond = verdict_lib.beyond_frontier(CLASSIFIER, front, queries_sim, queries_acc)
    # More novel than all noise: beyond; 0.71 > 0.7 at 0.5; equal to the envelope is not beyond; NaN never is.
    assert beyond.tolist() == [True, True, False, False, True, False]


def test_envelope_for_distances_where_lower_means_closer_and_better():
    # Field task: similarity = Chamfer to training (lower = closer), quality = Chamfer to test (lower = better).
    sim = torch.tensor([0.01, 0.05, 0.10])
    quality = torch.tensor([0.02, 0.04, 0.08])
    front = verdict_lib.frontier(FIELD, torch.tensor([1.0]), sim, quality, torch.ones(3))
    # A shape farther from training than all noise but as good as the closest noise: beyond.
    beyond = verdict_lib.beyond_frontier(FIELD, front, torch.tensor([0.2, 0.05, 0.05]),
                                         torch.tensor([0.05, 0.03, 0.05]))
    assert beyond.tolist() == [True, True, False]


def test_near_copies_and_bootstrap():
    # The sweep: sigma 0.001 gives similarities 1.0, 0.98, 0.99; the least of them is the bar.
    sweep_sim = torch.tensor([1.0, 0.98, 0.99, 0.5, 0.4])
    sweep_sigma = torch.tensor([0.001, 0.001, 0.001, 0.1, 0.1], dtype=torch.float64)
    thresholds = verdict_lib.near_copy_thresholds(CLASSIFIER, torch.arange(1.0, 101.0), sweep_sim, sweep_sigma)
    assert thresholds == {"min_l2": pytest.approx(5.95), "similarity": pytest.approx(0.98)}
    # Distances (fields): the largest Chamfer distance among the smallest-sigma models.
    field = verdict_lib.near_copy_thresholds(FIELD, torch.ones(3), torch.tensor([0.01, 0.03, float("nan"), 0.2]),
                                             torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64))
    assert field["similarity"] == pytest.approx(0.03)
    flags = verdict_lib.near_copies(CLASSIFIER, thresholds, torch.tensor([1.0, 1.0, 10.0]),
                                    torch.tensor([0.99, 0.9, 1.0]))
    assert flags.tolist() == [True, False, False]
    generator = torch.Generator().manual_seed(0)
    estimate = verdict_lib.bootstrap_fraction(torch.tensor([True] * 30 + [False] * 70), 2000, 0.95, generator)
    assert estimate.value == pytest.approx(0.3) and 0.19 < estimate.low < 0.25 and 0.35 < estimate.high < 0.41
    ratio = verdict_lib.bootstrap_ratio(torch.full((10,), 2.0), torch.full((10,), 4.0), 100, 0.9, generator)
    assert (ratio.value, ratio.low, ratio.high) == (0.5, 0.5, 0.5)


# ---------------------------------------------------------------------------------------------------------------
# Field task
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.slow  # fits 8 small fields (a few seconds)
def test_field_audit_finds_copied_shapes():
    shapes = fields.make_shapes("airplane", 8)
    fitted = fields.fit_fields(shapes, steps=300, hidden=16, progress=False)
    clouds = fields.shape_points(shapes, resolution=48, n_points=512).points
    weights = fitted.weights
    task = FieldTask(fitted.layout, clouds[:6], clouds[6:], resolution=32, n_points=512)
    result = audit(weights[:2].clone(), weights[:6], task, progress=False, frontier_models=2, resamples=50)
    generated = result.groups["generated"]
    assert torch.equal(generated.nearest_index[:, 0], torch.tensor([0, 1])) and (generated.min_l2 == 0).all()
    assert generated.extras["clouds"].shape == (2, 512, 3) and generated.extras["surface"].all()
    # Meshed fields vs the ground-truth clouds: each copy's nearest training shape is its own.
    assert torch.equal(generated.metrics["min_chamfer_index"], torch.tensor([0, 1]))
    assert (generated.metrics["test_chamfer"] > 0).all()
    training_group = result.groups["training"]
    assert (training_group.metrics["min_chamfer_index"] != torch.arange(6)).all()  # self excluded
    assert {"mmd", "cov", "1-nna", "surface_rate"} <= set(result.group_metrics["generated"])
    assert result.verdicts["generated"].near_copies.value == 1.0


def test_every_figure_draws_from_a_real_audit(planted):
    from weightmem_fast import plots

    *_, task, result = planted
    figures = plots.figures(result, task, grid=20)
    assert {"min_l2_histogram", "similarity_scatter", "weight_heatmap", "decision_boundaries", "tsne",
            "parameter_densities"} <= set(figures)
    lines = {line.get_label(): line for line in figures["similarity_scatter"].axes[0].get_lines()}
    envelope = lines["noise envelope (beyond = above)"]
    assert list(envelope.get_xdata()) == list(result.frontier.envelope_similarity)
    assert all(plots.figure_png(figure).startswith(b"\x89PNG") for figure in figures.values())


def test_aligned_audit_sees_permuted_copies(planted):
    from weightmem_fast.symmetry import permute, random_permutations

    training, _, task, _ = planted
    perms = random_permutations(training.layout, 10, generator=torch.Generator().manual_seed(3))
    permuted = permute(training.weights[:10], training.layout, perms)
    plain = audit(permuted, training, task, progress=False, frontier_models=4, resamples=50)
    aligned = audit(permuted, training, task, progress=False, frontier_models=4, resamples=50, align=True)
    # Plain L2 calls a permuted copy novel; after alignment it is the training model itself.
    assert plain.verdicts["generated"].near_copies.value == 0.0 and plain.groups["generated"].min_l2.min() > 1
    generated = aligned.groups["generated"]
    assert torch.equal(generated.nearest_index[:, 0], torch.arange(10)) and (generated.min_l2 == 0).all()
    assert aligned.verdicts["generated"].near_copies.value == 1.0 and aligned.settings["align"] is True
