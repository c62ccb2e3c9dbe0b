"""ParamLayout: the study's flat layouts, subsets, round trips, JSON, and clear errors (issue 5)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from weightmem_fast.layout import ParamLayout, flatten, unflatten


def gpt_mlp() -> nn.Module:
    """G.pt's MNIST MLP (study_spec §1.1): 784 -> 10 (ReLU) -> 10."""
    return nn.Sequential(nn.Linear(784, 10), nn.ReLU(), nn.Linear(10, 10))


def hr_cnn() -> nn.Module:
    """The Hyper-Representations zoo CNN on 28 x 28 grayscale (study_spec §1.1), activation aside."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(8, 6, 5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(6, 4, 2), nn.ReLU(), nn.Flatten(),
        nn.Linear(36, 20), nn.ReLU(), nn.Linear(20, 10),
    )


class TwoBlocks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn1 = nn.BatchNorm2d(4)
        self.bn2 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)


def test_gpt_mlp_layout_matches_the_study():
    layout = ParamLayout.from_module(gpt_mlp())
    assert layout.size == 7960
    assert [e.offset for e in layout.entries] == [0, 7840, 7850, 7950]
    assert layout.names == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_hr_cnn_layout_matches_the_study():
    layout = ParamLayout.from_module(hr_cnn())
    assert layout.size == 2464
    assert [e.offset for e in layout.entries] == [0, 200, 208, 1408, 1414, 1510, 1514, 2234, 2254, 2454]


def test_include_selects_a_subset_in_module_order_and_never_buffers():
    module = TwoBlocks()
    layout = ParamLayout.from_module(module, include=["bn2", "bn1"])
    assert layout.names == ["bn1.weight", "bn1.bias", "bn2.weight", "bn2.bias"]
    assert layout.size == 16
    by_predicate = ParamLayout.from_module(module, include=lambda name: name.startswith("bn"))
    assert by_predicate == layout


def test_flatten_unflatten_round_trip_and_views():
    models = [gpt_mlp() for _ in range(3)]
    layout = ParamLayout.from_module(models[0])
    flat = flatten([m.state_dict() for m in models], layout)
    assert flat.shape == (3, 7960)
    assert torch.equal(flat[1, 7840:7850], models[1][0].bias.detach())
    restored = unflatten(flat, layout)
    for model, state in zip(models, restored):
        fresh = gpt_mlp()
        fresh.load_state_dict(state)
        x = torch.randn(5, 784)
        assert torch.equal(fresh(x), model(x))
    restored[0]["0.bias"].zero_()  # views: writing through them edits the flat matrix
    assert torch.all(flat[0, 7840:7850] == 0)


def test_flatten_default_layout_takes_every_floating_tensor_of_the_first_state_dict():
    module = TwoBlocks()
    state = module.state_dict()
    flat = flatten(state)
    # num_batches_tracked (int64) is left out; running statistics are floating buffers and are kept.
    assert flat.shape == (1, ParamLayout.from_state_dict(state).size)
    assert "bn1.running_mean" in ParamLayout.from_state_dict(state).names


def test_json_round_trip():
    layout = ParamLayout.from_module(hr_cnn())
    assert ParamLayout.from_json(layout.to_json()) == layout


@pytest.mark.parametrize(
    "text,fragment",
    [("{", "not a valid ParamLayout JSON"), ('{"format": "other", "tensors": []}', "format is 'other'"),
     ('{"format": "weightmem_fast.layout/1", "tensors": []}', "at least one tensor"),
     ('{"format": "weightmem_fast.layout/1", "tensors": [["a", [2]], ["a", [3]]]}', "appears twice")],
)
def test_from_json_rejects_malformed_text(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        ParamLayout.from_json(text)


def test_errors_name_the_problem():
    layout = ParamLayout.from_module(gpt_mlp())
    with pytest.raises(ValueError, match="include entry 'bn9' matches no parameter of Sequential"):
        ParamLayout.from_module(gpt_mlp(), include=["bn9"])
    state = gpt_mlp().state_dict()
    del state["2.bias"]
    with pytest.raises(ValueError, match="state_dict 1 has no tensor '2.bias'"):
        layout.flatten([gpt_mlp().state_dict(), state])
    state = gpt_mlp().state_dict()
    state["0.bias"] = torch.zeros(11)
    with pytest.raises(ValueError, match=r"'0.bias' has shape \(11,\); the layout expects \(10,\)"):
        layout.flatten(state)
    with pytest.raises(ValueError, match=r"flat must be \[N, 7960\] or \[7960\]"):
        layout.unflatten(torch.zeros(2, 7959))
