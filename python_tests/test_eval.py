"""evaluate against the per-model loop twin (issue 5): every activation, CNNs, subset layouts, broken models."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import weightmem_fast as wmf
from weightmem_fast.layout import ParamLayout
from weightmem_fast.ops import _small_cnn
from weightmem_fast.ops import eval as ops_eval
from weightmem_fast.zoo import ACTIVATIONS, cnn, cnn_bn, mlp, pdiff_subset, zoo_layout
from weightmem_fast.zoo.loop import activation_width

# Across devices, near-ties may flip between summation orders (STYLE §6): CUDA results are compared with the
# CPU twin where the twin's top-2 logit margin exceeds this. On one device predictions must be identical.
MARGIN = 1e-4


def assert_matches_twin(template: nn.Module, weights: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor,
                        layout: ParamLayout | None = None) -> wmf.Evaluation:
    ours = wmf.evaluate(template, weights, inputs, labels, layout)
    twin = wmf.reference.evaluate(template, weights, inputs, labels, layout)
    assert torch.equal(ours.predictions, twin.predictions)
    torch.testing.assert_close(ours.loss, twin.loss, rtol=1e-5, atol=1e-6, equal_nan=True)  # float32, other order
    assert torch.equal(ours.errors.words, wmf.error_masks(ours.predictions, labels).words)
    assert torch.equal(ours.accuracy, (ours.predictions == labels).float().mean(dim=1))
    return ours


def _margins(template, weights, inputs, layout):
    margins = []
    with torch.no_grad():
        for state in layout.unflatten(weights):
            template.load_state_dict(state, strict=False)
            top2 = template(inputs).topk(2, dim=1).values
            margins.append(top2[:, 0] - top2[:, 1])
    return torch.stack(margins)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_mlp_stack_matches_the_loop(activation):
    template = mlp(20, 7, 5, activation)
    weights = torch.randn(13, ParamLayout.from_module(template).size)
    inputs, labels = torch.randn(40, 20), torch.randint(0, 5, (40,))
    assert_matches_twin(template, weights, inputs, labels)


def test_models_are_chunked_without_changing_results():
    template = mlp(12, 6, 4)
    weights = torch.randn(9, ParamLayout.from_module(template).size)
    inputs, labels = torch.randn(30, 12), torch.randint(0, 4, (30,))
    whole = wmf.evaluate(template, weights, inputs, labels)
    chunked = wmf.evaluate(template, weights, inputs, labels, batch_size=2)
    assert torch.equal(whole.predictions, chunked.predictions)
    torch.testing.assert_close(whole.loss, chunked.loss, rtol=1e-6, atol=1e-7)  # GEMM blocking changes with B


def test_batchnorm_cnns_go_through_grouped_convolutions_with_each_models_statistics():
    torch.manual_seed(0)
    models = [cnn_bn(1, 10) for _ in range(4)]
    for model in models:  # each model its own running statistics, so a mix-up would show
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    layout = zoo_layout(models[0])  # parameters and running statistics
    weights = layout.flatten([m.state_dict() for m in models])
    assert ops_eval._stacked_module(models[0], layout, weights) is not None
    inputs, labels = torch.rand(25, 1, 8, 8), torch.randint(0, 10, (25,))
    assert_matches_twin(models[0], weights, inputs, labels, layout)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_the_fused_cnn_kernel_runs_the_hr_family_and_matches_the_loop(activation):
    torch.manual_seed(1)
    template = cnn(1, 28, 10, activation)  # the study's 2,464-parameter CNN
    layout = ParamLayout.from_module(template)
    assert _small_cnn.plan(template, layout, (1, 28, 28)) is not None
    weights = layout.flatten([cnn(1, 28, 10, activation).state_dict() for _ in range(5)])
    inputs, labels = torch.randn(37, 1, 28, 28), torch.randint(0, 10, (37,))  # 37: a partial lane tile
    assert_matches_twin(template, weights, inputs, labels)


@pytest.mark.parametrize("change", ["stride", "avgpool", "tanh", "fixed_tensor"])
def test_cnns_outside_the_fused_kernel_take_the_stacked_path_and_match(change):
    layers = [nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 5)]
    if change == "stride":
        layers[0], layers[4] = nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.Linear(16, 5)
    elif change == "avgpool":
        layers[2] = nn.AvgPool2d(2)
    elif change == "tanh":
        layers[1] = nn.Tanh()
    template = nn.Sequential(*layers)
    include = ["0", "4.weight"] if change == "fixed_tensor" else None  # 4.bias stays the template's
    layout = ParamLayout.from_module(template, include=include)
    assert _small_cnn.plan(template, layout, (1, 8, 8)) is None
    weights = 0.5 * torch.randn(4, layout.size)
    assert_matches_twin(template, weights, torch.rand(21, 1, 8, 8), torch.randint(0, 5, (21,)), layout)


@pytest.mark.parametrize("where", ["weights", "inputs"])
def test_nan_through_the_fused_cnn_is_passed_on_as_torch_does(where):
    template = cnn(1, 8, 10)
    weights = ParamLayout.from_module(template).flatten([cnn(1, 8, 10).state_dict() for _ in range(3)])
    inputs, labels = torch.rand(20, 1, 8, 8), torch.randint(0, 10, (20,))
    if where == "weights":
        weights[1, 5] = float("nan")
    else:
        inputs[4, 0, 3, 3] = float("nan")
    assert_matches_twin(template, weights, inputs, labels)


def test_inputs_are_sliced_when_one_model_exceeds_the_activation_budget(monkeypatch):
    template = cnn_bn(1, 10)  # outside the fused kernel: BatchNorm and residual blocks
    weights = ParamLayout.from_module(template).flatten([cnn_bn(1, 10).state_dict() for _ in range(3)])
    inputs, labels = torch.rand(40, 1, 8, 8), torch.randint(0, 10, (40,))
    whole = wmf.evaluate(template, weights, inputs, labels)
    width = activation_width(template, inputs[0])
    monkeypatch.setattr(ops_eval, "_CHUNK_ELEMENTS", 10 * width)  # one model at a time, 10 inputs per slice
    sliced = wmf.evaluate(template, weights, inputs, labels)
    assert torch.equal(whole.predictions, sliced.predictions)
    torch.testing.assert_close(whole.loss, sliced.loss, rtol=1e-6, atol=1e-7)


def test_batchnorm_models_keep_their_own_statistics_and_p_diff_subsets_work():
    torch.manual_seed(0)
    template = cnn_bn(1, 10)
    for module in template.modules():  # non-trivial running statistics, so a mix-up would show
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    subset = ParamLayout.from_module(template, include=pdiff_subset(template))
    base = subset.flatten([template.state_dict()])
    weights = base + 0.3 * torch.randn(5, subset.size)
    inputs, labels = torch.rand(30, 1, 8, 8), torch.randint(0, 10, (30,))
    assert_matches_twin(template, weights, inputs, labels, subset)


def test_templates_nothing_else_handles_go_through_vmap():
    template = nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5), nn.ReLU(), nn.Linear(5, 3))
    weights = torch.randn(4, ParamLayout.from_module(template).size)
    assert ops_eval._stacked_module(template, ParamLayout.from_module(template), weights) is None
    assert_matches_twin(template, weights, torch.randn(15, 6), torch.randint(0, 3, (15,)))


def test_subset_layout_keeps_the_template_elsewhere():
    # P-diff style: only the last layer is generated; the first comes from the base model.
    template = mlp(10, 8, 3)
    layout = ParamLayout.from_module(template, include=["2"])
    weights = torch.randn(5, layout.size)
    inputs, labels = torch.randn(20, 10), torch.randint(0, 3, (20,))
    assert_matches_twin(template, weights, inputs, labels, layout)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_near_ties_are_settled_as_the_loop_settles_them(activation):
    # Random 784-wide MLPs on random inputs (the acceptance case, scaled down) have thousands of top-2 margins
    # within float32 noise; exact ties (duplicated output units) must go to the first class, as torch.argmax.
    torch.manual_seed(0)
    template = nn.Sequential(nn.Flatten(), *mlp(784, 10, 10, activation))
    weights = 0.1 * torch.randn(12, ParamLayout.from_module(template).size)
    w2 = weights[:, 7850:7950].view(12, 10, 10)
    w2[:3, 4] = w2[:3, 7]  # class 4 duplicates class 7: a tie on every input
    weights[:3, 7950 + 4] = weights[:3, 7950 + 7]
    inputs, labels = torch.randn(3000, 1, 28, 28), torch.randint(0, 10, (3000,))
    ours = assert_matches_twin(template, weights, inputs, labels)
    assert not (ours.predictions[:3] == 7).any()  # the tie went to 4 wherever 4 and 7 lead


def test_a_lone_uncertain_sample_is_recomputed_in_a_batch_of_two():
    # Logits are relu(x[:3]): clear winners except sample 5, where classes 0 and 1 tie exactly. A one-row
    # forward would take a matrix-vector path with other sums, so the lone row is recomputed beside a neighbour.
    template = mlp(4, 3, 3)
    weights = torch.cat([torch.eye(3, 4).flatten(), torch.zeros(3), torch.eye(3).flatten(), torch.zeros(3)])[None]
    inputs = 10.0 * torch.eye(4)[torch.tensor([0, 1, 2, 0, 1, 0, 2])]
    inputs[5, 1] = 10.0
    batches = []  # batch sizes of every forward of the template or its copies (hooks are copied along)
    template[0].register_forward_pre_hook(lambda _module, args: batches.append(len(args[0])))
    ours = assert_matches_twin(template, weights, inputs, torch.zeros(7, dtype=torch.long))
    assert batches.count(2) == 1 and 1 not in batches[1:]  # after evaluate's one-input probe
    assert ours.predictions.tolist() == [[0, 1, 2, 0, 1, 0, 2]]


def test_broken_models_are_flagged_not_fatal():
    template = mlp(6, 4, 3)
    weights = torch.randn(4, ParamLayout.from_module(template).size)
    weights[2, 0] = float("nan")
    result = wmf.evaluate(template, weights, torch.randn(10, 6), torch.randint(0, 3, (10,)))
    assert result.nonfinite.tolist() == [False, False, True, False]
    assert result.accuracy.shape == (4,)
    twin = wmf.reference.evaluate(template, weights, torch.randn(10, 6), torch.randint(0, 3, (10,)))
    assert torch.isnan(result.loss[2]) and torch.isnan(twin.loss[2])


@pytest.mark.parametrize(
    "weights,inputs,labels,exc,fragment",
    [
        (torch.randn(2, 50), torch.randn(5, 6), torch.zeros(5, dtype=torch.long), ValueError, r"weights must be \[N, 43\]"),
        (torch.randn(2, 43), torch.randn(4, 6), torch.zeros(5, dtype=torch.long), ValueError, "S = len\\(labels\\) = 5"),
        (torch.randn(2, 43), torch.randn(5, 6), torch.full((5,), 3), ValueError, r"class indices in \[0, 3\)"),
        (torch.randn(2, 43), torch.randn(5, 6), torch.zeros(5), TypeError, "labels must be an integer tensor"),
        (torch.randn(2, 43).int(), torch.randn(5, 6), torch.zeros(5, dtype=torch.long), TypeError, "weights must be a floating"),
    ],
)
def test_evaluate_rejects_bad_input(weights, inputs, labels, exc, fragment):
    with pytest.raises(exc, match=fragment):
        wmf.evaluate(mlp(6, 4, 3), weights, inputs, labels)


def test_evaluate_leaves_the_callers_module_in_its_mode():
    template = mlp(6, 4, 3).train()
    wmf.evaluate(template, torch.randn(2, 43), torch.randn(5, 6), torch.zeros(5, dtype=torch.long))
    assert template.training


def test_non_default_activation_settings_take_the_generic_path_and_still_match():
    template = nn.Sequential(nn.Linear(8, 5), nn.LeakyReLU(0.2), nn.Linear(5, 3))
    weights = torch.randn(4, ParamLayout.from_module(template).size)
    assert_matches_twin(template, weights, torch.randn(15, 8), torch.randint(0, 3, (15,)).int())


@pytest.mark.parametrize("activation", ["relu", "gelu", "sigmoid"])
def test_evaluate_on_every_device_matches_the_loop(device, activation):
    template = mlp(16, 9, 4, activation)
    weights = torch.randn(11, ParamLayout.from_module(template).size)
    inputs, labels = torch.randn(33, 16), torch.randint(0, 4, (33,))
    ours = wmf.evaluate(template.to(device), weights.to(device), inputs.to(device), labels.to(device))
    twin = wmf.reference.evaluate(template.cpu(), weights, inputs, labels)
    decided = _margins(template.cpu(), weights, inputs, ParamLayout.from_module(template)) > MARGIN
    assert torch.equal(ours.predictions.cpu()[decided], twin.predictions[decided])
    torch.testing.assert_close(ours.loss.cpu(), twin.loss, rtol=1e-5, atol=1e-6)
