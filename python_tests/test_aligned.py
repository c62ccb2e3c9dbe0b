"""Permutation-aligned distances (issue 9, study_spec §2.3): brute force over every permutation, permuted
near-duplicates at their exact distance, the pruning bound, self exclusion, ties, one pair, bad input."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from weightmem_fast import evaluate, zoo
from weightmem_fast.layout import ParamLayout
from weightmem_fast.symmetry import permute
from weightmem_fast.symmetry import aligned as aligned_module
from weightmem_fast.symmetry.aligned import HiddenUnits, _lower_bound, aligned_distance, aligned_nearest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def mlp_layout(i: int, h: int, o: int, bias: bool = True) -> ParamLayout:
    return ParamLayout.from_module(nn.Sequential(nn.Linear(i, h, bias=bias), nn.ReLU(), nn.Linear(h, o, bias=bias)))


def brute_force(query: torch.Tensor, reference: torch.Tensor, layout: ParamLayout) -> torch.Tensor:
    """[N, M] aligned distances by trying every permutation of the hidden units (float64)."""
    h = HiddenUnits.of(layout).hidden
    best = torch.full((query.shape[0], reference.shape[0]), float("inf"), dtype=torch.float64)
    for p in itertools.permutations(range(h)):
        moved = permute(reference.double(), layout, [torch.tensor(p)])
        best = torch.minimum(best, torch.cdist(query.double(), moved))
    return best


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_equals_brute_force_over_all_permutations(dtype, bias):
    layout = mlp_layout(7, 6, 3, bias)
    reference, query = torch.randn(30, layout.size, dtype=dtype), torch.randn(10, layout.size, dtype=dtype)
    distances, index, perms = aligned_nearest(query, reference, layout, k=3)
    expected, expected_index = brute_force(query, reference, layout).sort(dim=1, stable=True)
    assert distances.dtype == dtype and torch.equal(index, expected_index[:, :3])
    torch.testing.assert_close(distances.double(), expected[:, :3], rtol=1e-6 if dtype == torch.float32 else 1e-12,
                               atol=0)
    # The permutations realise the distances: the permuted reference is that far away in plain L2.
    for a in range(10):
        for j in range(3):
            moved = permute(reference[index[a, j]][None].double(), layout, [perms[a, j]])
            plain = (query[a].double() - moved[0]).norm()
            torch.testing.assert_close(plain, distances[a, j].double(), rtol=1e-6, atol=0)


def test_row_floors_skip_assignments_and_keep_the_exact_answer(monkeypatch):
    # Unrelated weights: the sorted-norm bound prunes nothing, the row floors most pairs (module docstring).
    layout = mlp_layout(7, 6, 3)
    generator = torch.Generator().manual_seed(5)
    reference, query = (torch.randn(n, layout.size, generator=generator) for n in (300, 20))
    solved = []
    solve = aligned_module.linear_assignment

    def spy(costs):
        solved.append(costs.shape[0])
        return solve(costs)

    monkeypatch.setattr(aligned_module, "linear_assignment", spy)
    distances, index, _ = aligned_nearest(query, reference, layout, k=2)
    assert sum(solved) < 0.5 * 300 * 20  # screening and exact re-ranking together
    expected, expected_index = brute_force(query, reference, layout).sort(dim=1, stable=True)
    assert torch.equal(index, expected_index[:, :2])
    torch.testing.assert_close(distances.double(), expected[:, :2], rtol=1e-6, atol=0)


def test_lowest_per_row_picks_each_rows_k_smallest():
    rows = torch.tensor([2, 0, 2, 0, 2, 1, 0])
    values = torch.tensor([5.0, 1.0, 3.0, 1.0, 4.0, 9.0, 0.5])
    chosen = aligned_module._lowest_per_row(rows, values, 2)
    # row 0: 0.5 and the first 1.0; row 1: its only pair; row 2: 3 and 4
    assert chosen.tolist() == [False, True, True, False, True, True, True]


def test_permuted_near_duplicates_get_their_exact_distance():
    # G.pt's size: 784 -> 10 -> 10. Queries are references with permuted hidden units and a 1e-6 relative change.
    layout = mlp_layout(784, 10, 10)
    reference = torch.randn(40, layout.size, dtype=torch.float64)
    perms = torch.rand(40, 10).argsort(dim=1)
    base = permute(reference, layout, [perms])
    query = base * (1 + 1e-6 * torch.randn_like(base))
    distances, index, found = aligned_nearest(query, reference, layout)
    assert torch.equal(index[:, 0], torch.arange(40))
    # Aligning the reference with the found permutation undoes the planted one exactly.
    assert torch.equal(permute(reference, layout, [found[:, 0]]), base)
    exact = (query - base).norm(dim=1)
    torch.testing.assert_close(distances[:, 0], exact, rtol=1e-12, atol=0)
    # float32 inputs: still exact against float64 direct differences of the same float32 values.
    q32, r32 = query.float(), reference.float()
    d32, i32, p32 = aligned_nearest(q32, r32, layout)
    exact32 = (q32.double() - permute(r32.double(), layout, [p32[:, 0]])).norm(dim=1)
    assert torch.equal(i32[:, 0], torch.arange(40))
    torch.testing.assert_close(d32[:, 0].double(), exact32, rtol=1e-6, atol=0)


def test_lower_bound_never_exceeds_the_aligned_distance():
    layout = mlp_layout(5, 8, 3)
    units = HiddenUnits.of(layout)
    # Near-duplicates and far pairs, so the bound is tested where it is tight and where it is loose.
    reference = torch.randn(20, layout.size, dtype=torch.float64)
    query = torch.cat([permute(reference[:10], layout, [torch.rand(10, 8).argsort(1)]) + 1e-7,
                       torch.randn(10, layout.size, dtype=torch.float64)])
    q_groups, q_rest = units.groups(query)
    r_groups, r_rest = units.groups(reference)
    bound = _lower_bound(q_groups.norm(dim=2).sort(1).values, r_groups.norm(dim=2).sort(1).values, q_rest, r_rest)
    exact = aligned_nearest(query, reference, layout, k=20)
    full = torch.empty(20, 20, dtype=torch.float64).scatter_(1, exact[1], exact[0])
    assert (bound <= full.square()).all()
    assert (bound[10:] > 0).all()  # and it is not trivially zero


def test_self_exclusion_and_ties_to_the_lowest_index():
    layout = mlp_layout(6, 4, 2)
    reference = torch.randn(12, layout.size, dtype=torch.float64)
    reference[7] = permute(reference[3:4], layout, [torch.tensor([2, 0, 3, 1])])[0]  # a permuted duplicate of 3
    reference[9] = reference[3]  # an exact duplicate of 3
    distances, index, _ = aligned_nearest(reference, reference, layout, k=2, exclude_self=True)
    assert (index != torch.arange(12)[:, None]).all()
    assert index[3].tolist() == [7, 9] and distances[3].tolist() == [0.0, 0.0]  # both at 0: lowest index first
    assert index[7].tolist() == [3, 9] and index[9].tolist() == [3, 7]


def test_one_pair_and_function_invariance():
    data = zoo.digits()
    trained = zoo.train_mlp_zoo(data, 2, epochs=2, progress=False)
    a, b = trained.weights[0], trained.weights[1]
    distance, perm = aligned_distance(a, b, trained.layout)
    aligned = permute(b[None], trained.layout, [perm])
    assert distance <= float((a - b).norm()) and distance == pytest.approx(float((a - aligned[0]).norm()), rel=1e-6)
    template = zoo.model_from_zoo(trained, 0)
    before = evaluate(template, b[None], data.test_x.flatten(1), data.test_y, layout=trained.layout)
    after = evaluate(template, aligned, data.test_x.flatten(1), data.test_y, layout=trained.layout)
    assert torch.equal(before.predictions, after.predictions)


def test_bad_input():
    layout = mlp_layout(4, 3, 2)
    x = torch.randn(5, layout.size)
    with pytest.raises(ValueError, match="one-hidden-layer MLP layout"):
        aligned_nearest(torch.randn(2, 2464), torch.randn(2, 2464), zoo.zoo_layout(zoo.cnn(1, 8)))
    deep = ParamLayout.from_module(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(),
                                                 nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="one-hidden-layer MLP layout"):
        aligned_nearest(torch.randn(2, deep.size), torch.randn(2, deep.size), deep)
    with pytest.raises(ValueError, match=rf"query must be \[N, {layout.size}\]"):
        aligned_nearest(torch.randn(5, 7), torch.randn(5, 7), layout)
    with pytest.raises(ValueError, match="k must be between 1 and 4"):
        aligned_nearest(x, x, layout, k=5, exclude_self=True)
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="query holds NaN or Inf"):
        aligned_nearest(bad, x, layout)
    with pytest.raises(TypeError, match="float32 or float64"):
        aligned_nearest(x.half(), x.half(), layout)
