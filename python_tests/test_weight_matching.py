"""Weight matching (Git Re-Basin coordinate descent; issue 9, study_spec §2.3): equal to the exact method for one
hidden layer, planted permutations of deeper MLPs and the HR CNN recovered, an upper bound between brute force and
plain L2, independent of batching, and the method switch of ``aligned_nearest``."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from weightmem_fast import zoo
from weightmem_fast.layout import ParamLayout
from weightmem_fast.symmetry import aligned, permute, random_permutations
from weightmem_fast.symmetry.aligned import aligned_nearest
from weightmem_fast.symmetry.weight_matching import weight_matching

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def chain_layout(*widths: int) -> ParamLayout:
    """A plain MLP layout with the given layer widths (inputs first)."""
    modules: list[nn.Module] = []
    for fan_in, units in zip(widths, widths[1:]):
        modules += [nn.Linear(fan_in, units), nn.ReLU()]
    return ParamLayout.from_module(nn.Sequential(*modules[:-1]))


@pytest.fixture(scope="module")
def hr_cnn():
    """(template, layout, trained float64 weights [3, 2464]) of the HR CNN on digits."""
    template = zoo.cnn(1, 8)
    trained = zoo.train_zoo("cnn", zoo.digits(), 3, 1, lr=0.03, progress=False)
    return template, zoo.zoo_layout(template), trained.weights.double()


def test_one_hidden_layer_equals_the_exact_method():
    layout = chain_layout(7, 6, 3)
    reference, query = torch.randn(30, layout.size, dtype=torch.float64), torch.randn(10, layout.size,
                                                                                      dtype=torch.float64)
    exact = aligned_nearest(query, reference, layout, k=3)
    matched = aligned_nearest(query, reference, layout, k=3, method="weight_matching")
    assert torch.equal(matched[1], exact[1]) and torch.equal(matched[2][0], exact[2])
    # One assignment on the same groups; only the float64 sums differ in order (worst seen 2e-15).
    torch.testing.assert_close(matched[0], exact[0], rtol=1e-12, atol=0)


def check_recovers(base: torch.Tensor, layout: ParamLayout, template: nn.Module | None) -> None:
    """A reference = permuted base + 1e-6 noise; aligning it to base undoes the permutation, leaving the noise."""
    planted = random_permutations(layout, base.shape[0], template=template,
                                  generator=torch.Generator().manual_seed(1))
    noise = 1e-6 * torch.randn_like(base)
    reference = permute(base, layout, planted, template=template) + noise
    found = weight_matching(base, reference, layout, template)
    assert all(torch.equal(f, p.argsort(dim=1)) for f, p in zip(found, planted))
    distance = (base - permute(reference, layout, found, template=template)).norm(dim=1)
    torch.testing.assert_close(distance, noise.norm(dim=1), rtol=1e-6, atol=0)
    # aligned_nearest finds each model's own permuted copy at that distance, with the same permutations.
    distances, index, perms = aligned_nearest(base, reference, layout, method="weight_matching", template=template)
    assert torch.equal(index[:, 0], torch.arange(base.shape[0]))
    assert all(torch.equal(p[:, 0], f) for p, f in zip(perms, found))
    torch.testing.assert_close(distances[:, 0], distance, rtol=1e-12, atol=0)


def test_recovers_planted_permutations_of_a_deeper_mlp():
    layout = chain_layout(20, 16, 12, 5)
    check_recovers(torch.randn(8, layout.size, dtype=torch.float64), layout, None)


def test_recovers_planted_permutations_with_batchnorm():
    # BatchNorm tensors (weight, bias, running statistics) move with their layer's units and enter its similarity.
    template = nn.Sequential(nn.Linear(10, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(),
                             nn.Linear(6, 3))
    layout = zoo.zoo_layout(template)
    check_recovers(torch.randn(6, layout.size, dtype=torch.float64), layout, template)


def test_recovers_planted_permutations_of_the_hr_cnn(hr_cnn):
    template, layout, weights = hr_cnn
    check_recovers(weights, layout, template)  # convs, and conv -> flatten -> linear in blocks of 3 x 3 columns


def test_upper_bound_between_brute_force_and_plain_l2():
    layout = chain_layout(4, 3, 3, 2)
    query, reference = torch.randn(200, layout.size, dtype=torch.float64), torch.randn(200, layout.size,
                                                                                       dtype=torch.float64)
    found = weight_matching(query, reference, layout)
    matched = (query - permute(reference, layout, found)).norm(dim=1)
    best = torch.full((200,), float("inf"), dtype=torch.float64)
    for a, b in itertools.product(itertools.permutations(range(3)), repeat=2):
        moved = permute(reference, layout, [torch.tensor(a), torch.tensor(b)])
        best = torch.minimum(best, (query - moved).norm(dim=1))
    plain = (query - reference).norm(dim=1)
    # Identity start and strict improvements only; 1e-12 covers the two norms' float64 rounding.
    assert (matched <= plain * (1 + 1e-12)).all()
    assert (matched >= best * (1 - 1e-12)).all()
    # A heuristic, but a good one on tiny nets: 86% of these pairs reach the optimum (a wrong bound fails this).
    assert ((matched - best).abs() <= 1e-12 * best).float().mean() > 0.75
    assert ((matched - best).abs() > 1e-9 * best).any()  # and the brute force is not vacuous


def test_pairs_are_independent_of_batching_and_seeded():
    layout = chain_layout(6, 5, 4, 4, 3)
    query, reference = torch.randn(4, layout.size), torch.randn(5, layout.size)
    rows, cols = (t.reshape(-1) for t in torch.meshgrid(torch.arange(4), torch.arange(5), indexing="ij"))
    together = weight_matching(query, reference, layout, pairs=(rows, cols), seed=3)
    for p in range(20):
        alone = weight_matching(query[rows[p]][None], reference[cols[p]][None], layout, seed=3)
        assert all(torch.equal(a[0], t[p]) for a, t in zip(alone, together))
    again = weight_matching(query, reference, layout, pairs=(rows, cols), seed=3)
    assert all(torch.equal(a, t) for a, t in zip(again, together))


def test_nearest_ranks_the_matched_distances(monkeypatch):
    # Blocks of 3 x 3 pairs, so the running top k is merged across query and reference blocks.
    layout = chain_layout(5, 4, 3, 2)
    monkeypatch.setattr(aligned, "_MATCHED_VALUES", 9 * layout.size)
    weights = torch.randn(7, layout.size, dtype=torch.float64)
    weights[5] = permute(weights[1:2], layout, [torch.tensor([3, 1, 0, 2]), torch.tensor([2, 0, 1])])[0]
    distances, index, perms = aligned_nearest(weights, weights, layout, k=3, exclude_self=True,
                                              method="weight_matching")
    rows, cols = (t.reshape(-1) for t in torch.meshgrid(torch.arange(7), torch.arange(7), indexing="ij"))
    found = weight_matching(weights, weights, layout, pairs=(rows, cols))
    full = (weights[rows] - permute(weights[cols], layout, found)).norm(dim=1).view(7, 7)
    full.fill_diagonal_(float("inf"))
    expected, expected_index = full.sort(dim=1, stable=True)
    assert torch.equal(index, expected_index[:, :3])
    torch.testing.assert_close(distances, expected[:, :3], rtol=1e-12, atol=0)
    assert index[1, 0] == 5 and distances[1, 0] == 0 and index[5, 0] == 1  # the permuted duplicate, at 0
    assert [p.shape for p in perms] == [(7, 3, 4), (7, 3, 3)]


def test_bad_input(hr_cnn):
    template, cnn_layout, weights = hr_cnn
    layout = chain_layout(4, 3, 3, 2)
    x = torch.randn(3, layout.size)
    with pytest.raises(ValueError, match="method must be one of"):
        aligned_nearest(x, x, layout, method="rebasin")
    with pytest.raises(ValueError, match="one-hidden-layer MLP layout.*method='weight_matching'"):
        aligned_nearest(x, x, layout)
    with pytest.raises(ValueError, match="one-hidden-layer MLP layout.*method='weight_matching'"):
        aligned_nearest(weights, weights, cnn_layout, template=template)
    with pytest.raises(ValueError, match="template is used only by method='weight_matching'"):
        aligned_nearest(x, x, chain_layout(4, 3, 2), template=nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="no hidden layer"):
        aligned_nearest(x[:, :10], x[:, :10], chain_layout(4, 2), method="weight_matching")
    with pytest.raises(ValueError, match="same number of rows when pairs is None"):
        weight_matching(x, x[:2], layout)
    with pytest.raises(ValueError, match=r"pairs\[1\] must hold row indices in \[0, 3\)"):
        weight_matching(x, x, layout, pairs=(torch.tensor([0, 1]), torch.tensor([0, 3])))
    with pytest.raises(TypeError, match=r"pairs\[0\] must be an int64"):
        weight_matching(x, x, layout, pairs=(torch.tensor([0.0]), torch.tensor([0])))
    with pytest.raises(ValueError, match="iterations must be an int >= 1"):
        weight_matching(x, x, layout, iterations=0)
    bad = x.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="reference holds NaN or Inf"):
        weight_matching(x, bad, layout)
