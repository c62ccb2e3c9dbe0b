"""Function-preserving transforms of flat weights (issue 9, study_spec §2.9): neuron permutations and positive
scaling leave trained digits models' predictions unchanged, invert exactly (permutations) or to rounding
(scaling), move whole neurons, agree with the generators' permuters, and reject bad input clearly."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import weightmem_fast as wmf
from weightmem_fast import symmetry, zoo
from weightmem_fast.layout import ParamLayout

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Permuting or scaling units changes only the order and rounding of sums: a float32 loss moves by ~1e-7 of its
# value (worst seen here: 1.1e-7 relative), so 1e-5 leaves room while a wrong transform changes it at the 1e-1 level.
LOSS_RTOL, LOSS_ATOL = 1e-5, 1e-6


def deep_mlp() -> nn.Sequential:
    """Two hidden layers, with Dropout and LeakyReLU in the chain."""
    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 12), nn.LeakyReLU(0.1),
                         nn.Linear(12, 10))


def bn_chain() -> nn.Sequential:
    """Conv-BN chain on 8 x 8 digits: conv 1->4 (8 x 8) -> pool (4 x 4) -> conv 4->6 (2 x 2) -> flatten (24) ->
    fc 24->12 -> BatchNorm1d -> fc 12->10."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(),
                         nn.Linear(24, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 10))


def train_chain(template: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, models: int) -> torch.Tensor:
    """[models, D] flat weights in ``zoo_layout(template)``: full-batch Adam from seeds 0.. (BatchNorm running
    statistics included, so they differ per unit and per model)."""
    states = []
    for seed in range(models):
        torch.manual_seed(seed)
        model = copy.deepcopy(template)
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
        for _ in range(40):
            optimiser.zero_grad()
            F.cross_entropy(model(inputs), labels).backward()
            optimiser.step()
        states.append(model.state_dict())
    return zoo.zoo_layout(template).flatten(states)


@pytest.fixture(scope="module")
def models(one_torch_thread) -> dict[str, tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """name -> (template, trained weights [N, D] in zoo_layout(template), test inputs, test labels)."""
    data = zoo.digits()
    flat_x = data.test_x.flatten(1)
    mlp = zoo.train_mlp_zoo(data, 4, epochs=3, progress=False)
    cnn = zoo.train_zoo("cnn", data, 3, 1, lr=0.03, progress=False)
    return {
        "mlp": (zoo.mlp(64), mlp.weights, flat_x, data.test_y),
        "deep_mlp": (deep_mlp(), train_chain(deep_mlp(), data.train_x.flatten(1), data.train_y, 3), flat_x,
                     data.test_y),
        "cnn": (zoo.cnn(1, 8), cnn.weights, data.test_x, data.test_y),
        "bn_chain": (bn_chain(), train_chain(bn_chain(), data.train_x, data.train_y, 3), data.test_x, data.test_y),
    }


def assert_same_function(template, weights, transformed, inputs, labels):
    layout = zoo.zoo_layout(template)
    before = wmf.evaluate(template, weights, inputs, labels, layout=layout)
    after = wmf.evaluate(template, transformed, inputs, labels, layout=layout)
    assert before.accuracy.min() > 0.3  # trained, so predictions are far from ties and the check has teeth
    assert torch.equal(before.predictions, after.predictions)
    torch.testing.assert_close(after.loss, before.loss, rtol=LOSS_RTOL, atol=LOSS_ATOL)


@pytest.mark.parametrize("name", ["mlp", "deep_mlp", "cnn", "bn_chain"])
def test_permute_preserves_function_and_inverts_exactly(models, name):
    template, weights, inputs, labels = models[name]
    layout = zoo.zoo_layout(template)
    perms = symmetry.random_permutations(layout, len(weights), template=template,
                                         generator=torch.Generator().manual_seed(1))
    permuted = symmetry.permute(weights, layout, perms, template)
    assert not torch.equal(permuted, weights)
    assert torch.equal(permuted.sort(dim=1).values, weights.sort(dim=1).values)  # the same values, moved
    assert_same_function(template, weights, permuted, inputs, labels)
    inverse = [perm.argsort(dim=1) for perm in perms]
    assert torch.equal(symmetry.permute(permuted, layout, inverse, template), weights)


@pytest.mark.parametrize("name", ["mlp", "deep_mlp", "cnn"])
def test_scale_preserves_function_and_reciprocal_restores(models, name):
    template, weights, inputs, labels = models[name]
    layout = zoo.zoo_layout(template)
    factors = symmetry.random_scales(layout, len(weights), template=template, low=0.25, high=4.0,
                                     generator=torch.Generator().manual_seed(2))
    scaled = symmetry.scale(weights, layout, factors, template)
    assert (scaled - weights).abs().max() > 0.01
    assert_same_function(template, weights, scaled, inputs, labels)
    restored = symmetry.scale(scaled, layout, [1 / f for f in factors], template)
    # Three float32 roundings (f, 1 / f, each product): at most a few ulps, 1e-6 relative.
    torch.testing.assert_close(restored, weights, rtol=1e-6, atol=0)


def test_permute_moves_whole_neurons_of_a_deep_mlp():
    template = deep_mlp()
    layout = zoo.zoo_layout(template)
    weights = torch.randn(2, layout.size)
    perms = [torch.stack([torch.randperm(16), torch.randperm(16)]), torch.stack([torch.randperm(12)] * 2)]
    old, new = layout.unflatten(weights), layout.unflatten(symmetry.permute(weights, layout, perms, template))
    for n in range(2):
        p1, p2 = perms[0][n], perms[1][n]
        assert torch.equal(new[n]["0.weight"], old[n]["0.weight"][p1])
        assert torch.equal(new[n]["0.bias"], old[n]["0.bias"][p1])
        # The middle layer moves on both axes: its rows with p2, its input columns with p1.
        assert torch.equal(new[n]["3.weight"], old[n]["3.weight"][p2][:, p1])
        assert torch.equal(new[n]["3.bias"], old[n]["3.bias"][p2])
        assert torch.equal(new[n]["5.weight"], old[n]["5.weight"][:, p2])
        assert torch.equal(new[n]["5.bias"], old[n]["5.bias"])


def test_permute_moves_conv_channels_and_flattened_column_blocks():
    template = zoo.cnn(1, 8)
    layout = zoo.zoo_layout(template)
    weights = torch.randn(1, layout.size)
    perms = [torch.randperm(units) for units in (8, 6, 4, 20)]
    old, new = layout.unflatten(weights)[0], layout.unflatten(symmetry.permute(weights, layout, perms))[0]
    assert torch.equal(new["3.weight"], old["3.weight"][perms[1]][:, perms[0]])  # out and in channels
    assert torch.equal(new["6.weight"], old["6.weight"][perms[2]][:, perms[1]])
    assert torch.equal(new["6.bias"], old["6.bias"][perms[2]])
    # fc1 reads the flattened 4 x 3 x 3 map: channel c owns columns [9 c, 9 c + 9).
    for u, c in enumerate(perms[2].tolist()):
        assert torch.equal(new["9.weight"][:, 9 * u: 9 * u + 9], old["9.weight"][perms[3]][:, 9 * c: 9 * c + 9])


def test_permute_moves_batchnorm_parameters_and_running_statistics(models):
    template, weights, _, _ = models["bn_chain"]
    layout = zoo.zoo_layout(template)
    perms = symmetry.random_permutations(layout, 1, template=template, generator=torch.Generator().manual_seed(3))
    old = layout.unflatten(weights[:1])[0]
    new = layout.unflatten(symmetry.permute(weights[:1], layout, perms, template))[0]
    for bn, perm in (("1", perms[0][0]), ("5", perms[1][0]), ("9", perms[2][0])):
        for tensor in ("weight", "bias", "running_mean", "running_var"):
            assert torch.equal(new[f"{bn}.{tensor}"], old[f"{bn}.{tensor}"][perm])


def test_layout_only_analysis_matches_the_template():
    """Without a template, plain chains are read from the layout, with the same gather map."""
    generator = torch.Generator().manual_seed(4)
    for template in (zoo.mlp(64), deep_mlp(), zoo.cnn(1, 8)):
        layout = zoo.zoo_layout(template)
        perms = symmetry.random_permutations(layout, 3, generator=generator)
        index = symmetry.permutation_index(layout, perms)
        assert index.shape == (3, layout.size)
        assert torch.equal(index, symmetry.permutation_index(layout, perms, template))


def test_per_row_and_broadcast_permutations():
    template = deep_mlp()
    layout = zoo.zoo_layout(template)
    weights = torch.randn(3, layout.size)
    perms = symmetry.random_permutations(layout, 3, generator=torch.Generator().manual_seed(5))
    batched = symmetry.permute(weights, layout, perms)
    for n in range(3):
        assert torch.equal(batched[n], symmetry.permute(weights[n:n + 1], layout, [p[n] for p in perms])[0])
    shared = [p[0] for p in perms]  # one [H_k] permutation for every row
    assert torch.equal(symmetry.permute(weights, layout, shared),
                       symmetry.permute(weights, layout, [p.expand(3, -1) for p in shared]))


def test_random_helpers_are_seeded_and_valid():
    template = zoo.cnn(1, 8)
    layout = zoo.zoo_layout(template)
    chain = symmetry.analyze(layout, template)
    draw = lambda seed: symmetry.random_permutations(chain, 5, generator=torch.Generator().manual_seed(seed))
    assert all(torch.equal(a, b) for a, b in zip(draw(0), draw(0)))
    assert not all(torch.equal(a, b) for a, b in zip(draw(0), draw(1)))
    for perm, units in zip(draw(0), chain.hidden):
        assert perm.dtype == torch.int64
        assert torch.equal(perm.sort(dim=1).values, torch.arange(units).expand(5, -1))
    factors = symmetry.random_scales(chain, 5, low=0.5, high=2.0, generator=torch.Generator().manual_seed(0))
    assert [tuple(f.shape) for f in factors] == [(5, units) for units in chain.hidden]
    assert all(bool(((f >= 0.5) & (f <= 2.0)).all()) for f in factors)


class Case:
    """Small networks, layouts and weights for the bad-input table (built per test, not at collection)."""

    def __init__(self) -> None:
        self.template = zoo.mlp(64)
        self.layout = zoo.zoo_layout(self.template)
        self.chain = symmetry.analyze(self.layout, self.template)
        self.weights = torch.randn(4, self.layout.size)
        self.perms, self.factors = [torch.randperm(10).expand(4, -1)], [torch.ones(4, 10)]
        self.single = ParamLayout.from_module(nn.Linear(64, 10))
        self.bn = bn_chain()
        self.duplicate = torch.arange(10).repeat(4, 1)
        self.duplicate[2, 3] = 4

    def permute(self, perms, weights=None, template="same"):
        return symmetry.permute(self.weights if weights is None else weights, self.layout, perms,
                                self.template if template == "same" else template)

    def scale(self, factors, weights=None, template="same"):
        return symmetry.scale(self.weights if weights is None else weights, self.layout, factors,
                              self.template if template == "same" else template)


def grouped_conv() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(2, 4, 1, groups=2), nn.Conv2d(4, 2, 1))


# (id, call on a Case, exception, message fragment)
BAD_INPUTS = [
    ("no hidden layer", lambda c: symmetry.permute(torch.randn(2, c.single.size), c.single, []), ValueError,
     "no hidden layer"),
    ("no hidden layer (sampling)", lambda c: symmetry.random_permutations(c.single, 2), ValueError, "no hidden layer"),
    ("duplicate units", lambda c: c.permute([c.duplicate]), ValueError, r"row 2 repeats unit\(s\) \[4\]"),
    ("out of range", lambda c: c.permute([torch.arange(1, 11)]), ValueError, r"outside \[0, 10\)"),
    ("negative unit", lambda c: c.permute([torch.arange(10) - 1]), ValueError, r"outside \[0, 10\)"),
    ("wrong length", lambda c: c.permute([torch.arange(9)]), ValueError, r"perms\[0\] must be \[4, 10\] or \[10\]"),
    ("wrong rows", lambda c: c.permute([torch.arange(10).repeat(3, 1)]), ValueError, r"must be \[4, 10\]"),
    ("too many perms", lambda c: c.permute(c.perms * 2), ValueError, "one tensor per hidden layer: 1"),
    ("no perms", lambda c: c.permute([]), ValueError, "one tensor per hidden layer"),
    ("float perms", lambda c: c.permute([torch.arange(10.0)]), TypeError, "int64"),
    ("perms not a list", lambda c: c.permute(torch.arange(10)), TypeError, "list of int64"),
    ("zero factor", lambda c: c.scale([torch.zeros(10)]), ValueError, "finite and > 0"),
    ("negative factor", lambda c: c.scale([-torch.ones(4, 10)]), ValueError, "finite and > 0"),
    ("nan factor", lambda c: c.scale([torch.full((10,), float("nan"))]), ValueError, "finite and > 0"),
    ("inf factor", lambda c: c.scale([torch.full((10,), float("inf"))]), ValueError, "finite and > 0"),
    ("integer factors", lambda c: c.scale([torch.ones(10, dtype=torch.int64)]), TypeError, "floating"),
    ("too many factor tensors", lambda c: c.scale(c.factors * 2), ValueError, "one tensor per hidden layer"),
    ("wrong factor width", lambda c: c.scale([torch.ones(4, 9)]), ValueError, r"must be \[4, 10\]"),
    ("tanh", lambda c: c.scale(c.factors, template=zoo.mlp(64, activation="tanh")), ValueError,
     "Tanh.*not positively homogeneous"),
    ("tanh (sampling)", lambda c: symmetry.random_scales(c.layout, 2, template=zoo.mlp(64, activation="tanh")),
     ValueError, "Tanh"),
    ("batchnorm", lambda c: symmetry.random_scales(zoo.zoo_layout(c.bn), 2, template=c.bn), ValueError,
     "BatchNorm2d '1' follows layer '0'"),
    ("no template for scale", lambda c: c.scale(c.factors, template=None), ValueError, "template="),
    ("weights too wide", lambda c: c.permute(c.perms, weights=torch.randn(4, 761)), ValueError,
     r"weights must be \[N, 760\]"),
    ("weights 1-D", lambda c: c.permute(c.perms, weights=c.weights[0]), ValueError, r"2-D tensor \[N, D\]"),
    ("integer weights", lambda c: c.scale(c.factors, weights=c.weights.long()), TypeError, "floating"),
    ("BN stats outside the layout", lambda c: symmetry.analyze(ParamLayout.from_module(c.bn), c.bn), ValueError,
     "running_mean.*zoo_layout"),
    ("BN without template", lambda c: symmetry.analyze(zoo.zoo_layout(c.bn)), ValueError, "pass template="),
    ("residual network", lambda c: symmetry.analyze(zoo.zoo_layout(zoo.cnn_bn()), zoo.cnn_bn()), ValueError,
     "BasicBlock"),
    ("layout of another network", lambda c: symmetry.analyze(c.layout, zoo.cnn(1, 8)), ValueError,
     r"layout gives '0.weight' shape \(10, 64\); the template's is \(8, 1, 5, 5\)"),
    ("tensor the template lacks", lambda c: symmetry.analyze(ParamLayout.from_named_tensors(
        [(e.name, e.shape) for e in c.layout.entries] + [("extra", (3,))]), c.template), ValueError,
     "'extra', which the template lacks"),
    ("grouped conv", lambda c: symmetry.analyze(ParamLayout.from_module(grouped_conv()), grouped_conv()), ValueError,
     "groups=2"),
    ("not a chain of fan-ins", lambda c: symmetry.analyze(ParamLayout.from_named_tensors(
        [("a.weight", (3, 5)), ("b.weight", (2, 7))])), ValueError, "not a multiple of the 3 units"),
    ("structure and template", lambda c: symmetry.permute(c.weights, c.chain, c.perms, c.template), ValueError,
     "template must be None"),
    ("layout not a layout", lambda c: symmetry.analyze(c.template), TypeError, "ParamLayout"),
    ("bad scale range", lambda c: symmetry.random_scales(c.chain, 2, low=2.0, high=1.0), ValueError, "low must be"),
    ("zero rows", lambda c: symmetry.random_permutations(c.chain, 0), ValueError, "n must be at least 1"),
]


@pytest.mark.parametrize("call, exception, fragment", [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_rejected_clearly(call, exception, fragment):
    with pytest.raises(exception, match=fragment):
        call(Case())
