"""Checkpoints along training: trajectories (G.pt, study_spec §4.1) and consecutive checkpoints (P-diff, §6.1)."""
from __future__ import annotations

import copy

import pytest
import torch

from weightmem_fast import evaluate
from weightmem_fast.zoo import (consecutive_checkpoints, digits, make_model, model_from_zoo, pdiff_subset,
                                trajectories, train_zoo)


@pytest.fixture(scope="module")
def mlp_runs():
    # 20 steps per epoch (1,258 samples / 64): checkpoints at steps 0, 10, 20, 30, 40
    return trajectories("mlp", digits(), 3, 2, 2, chunk=2, progress=False)


def test_trajectory_rows_and_metadata(mlp_runs):
    assert mlp_runs.weights.shape == (3 * 5, 760)
    assert [m["run"] for m in mlp_runs.metadata] == [0] * 5 + [1] * 5 + [2] * 5
    assert [m["step"] for m in mlp_runs.metadata[:5]] == [0, 10, 20, 30, 40]
    assert [m["epoch"] for m in mlp_runs.metadata[:5]] == [0, 0, 1, 1, 2]
    assert [m["seed"] for m in mlp_runs.metadata[::5]] == [0, 1, 2]
    first, last = mlp_runs.metadata[0], mlp_runs.metadata[4]
    assert last["train_loss"] < first["train_loss"] and last["test_accuracy"] > first["test_accuracy"] + 0.3


def test_trajectory_metrics_are_those_of_each_checkpoint(mlp_runs):
    data = digits().flat()
    template = make_model("mlp", (64,), 10, seed=0)
    for split, x, y in (("test", data.test_x, data.test_y), ("train", data.train_x, data.train_y)):
        scores = evaluate(template, mlp_runs.weights, x, y, layout=mlp_runs.layout)
        recorded = torch.tensor([m[f"{split}_accuracy"] for m in mlp_runs.metadata])
        torch.testing.assert_close(scores.accuracy, recorded, rtol=0, atol=1e-6)
        losses = torch.tensor([m[f"{split}_loss"] for m in mlp_runs.metadata])
        torch.testing.assert_close(scores.loss, losses, rtol=1e-5, atol=1e-6)  # float32 means in another order


def test_trajectories_start_at_the_seeded_init_and_end_at_train_zoo():
    runs = trajectories("cnn_bn", digits(), 2, 1, progress=False)
    assert [m["step"] for m in runs.metadata] == [0, 20, 0, 20]
    initial = make_model("cnn_bn", (1, 8, 8), 10, seed=1)
    assert torch.equal(runs.weights[2], runs.layout.flatten(initial.state_dict())[0])
    final = train_zoo("cnn_bn", digits(), 2, 1, progress=False)
    assert torch.equal(runs.weights[[1, 3]], final.weights)  # same batching: bit for bit
    # BatchNorm statistics travel with each checkpoint: the rebuilt model scores what was recorded
    data = digits()
    model = model_from_zoo(runs, 3)
    with torch.no_grad():
        accuracy = (model(data.test_x).argmax(1) == data.test_y).float().mean()
    assert float(accuracy) == pytest.approx(runs.metadata[3]["test_accuracy"], abs=1e-6)


def test_trajectories_reject_more_checkpoints_than_steps():
    with pytest.raises(ValueError, match="checkpoints_per_epoch must be at most the 20 steps"):
        trajectories("mlp", digits(), 1, 1, 21, progress=False)


# ---------------------------------------------------------------------------------------------------------------
# Consecutive checkpoints (P-diff)
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base_zoo():
    return train_zoo("cnn_bn", digits(), 1, 3, progress=False)


@pytest.mark.slow  # trains a base model and 25 extra steps (about 1 s)
def test_consecutive_checkpoints_train_only_the_subset(base_zoo):
    base = model_from_zoo(base_zoo)
    before = copy.deepcopy(base.state_dict())
    lr = 0.03
    zoo = consecutive_checkpoints(base, digits(), pdiff_subset(base), 25, lr=lr, progress=False)  # > 1 epoch
    assert all(torch.equal(t, before[k]) for k, t in base.state_dict().items())  # base untouched
    assert zoo.layout.names == ["layer2.1.bn1.weight", "layer2.1.bn1.bias", "layer2.1.bn2.weight",
                                "layer2.1.bn2.bias"]
    assert zoo.weights.shape == (25, 64) and [m["step"] for m in zoo.metadata] == list(range(1, 26))
    assert bool((zoo.weights[1:] != zoo.weights[:-1]).any(dim=1).all())  # every step moves the subset
    # AdamW's first step moves every parameter by lr (sign of its gradient), plus the decay lr * 5e-4 * |w|
    start = zoo.layout.flatten(before)[0]
    torch.testing.assert_close((zoo.weights[0] - start).abs(), torch.full((64,), lr), rtol=0, atol=1e-4)


@pytest.mark.slow  # trains a base model and 8 extra steps (about 1 s)
def test_consecutive_checkpoints_rebuild_into_the_scored_models(base_zoo):
    base = model_from_zoo(base_zoo)
    data = digits()
    zoo = consecutive_checkpoints(base, data, pdiff_subset(base), 8, progress=False)
    subset = set(zoo.layout.names)
    for row in (0, 7):
        model = model_from_zoo(zoo, row, template=base)
        for name, tensor in model.state_dict().items():
            expected = zoo.layout.unflatten(zoo.weights[row])[0][name] if name in subset else base.state_dict()[name]
            assert torch.equal(tensor, expected), name  # the subset from the row, the rest (statistics too) from base
        with torch.no_grad():
            accuracy = (model(data.test_x).argmax(1) == data.test_y).float().mean()
        assert float(accuracy) == pytest.approx(zoo.metadata[row]["test_accuracy"], abs=1e-6)
        assert zoo.metadata[row]["test_accuracy"] > 0.8
    again = consecutive_checkpoints(base_zoo, data, pdiff_subset(base), 8, progress=False)  # a zoo row as base
    assert torch.equal(again.weights, zoo.weights)


@pytest.mark.parametrize("kwargs,error,fragment", [
    ({"include": ["nope"]}, ValueError, "include entry 'nope' matches no parameter"),
    ({"steps": 0}, ValueError, "steps must be a positive int"),
    ({"lr": 0}, ValueError, "lr must be a finite number > 0"),
    ({"weight_decay": -1}, ValueError, "weight_decay must be a finite number >= 0"),
    ({"base": "model"}, TypeError, "base must be an nn.Module or a one-row Zoo"),
    ({"base": "two rows"}, ValueError, "base must be a model or a one-row zoo; got a zoo of 2 rows"),
])
def test_consecutive_checkpoints_reject_bad_arguments(kwargs, error, fragment):
    model = make_model("cnn_bn", (1, 8, 8), 10, seed=0)
    args = {"base": model, "data": digits(), "include": pdiff_subset(model), "steps": 2, "progress": False} | kwargs
    if args["base"] == "two rows":
        args["base"] = trajectories("mlp", digits(), 1, 1, progress=False)
    with pytest.raises(error, match=fragment):
        consecutive_checkpoints(**args)
