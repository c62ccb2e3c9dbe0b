"""nearest against float64 oracles and its torch twin (issue 3): exactness, ties, exclusion, tiling."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import weightmem_fast as wmf
from weightmem_fast import _testing
from weightmem_fast.ops import _gram
from weightmem_fast.ops import neighbors as neighbors_op

# Contract: relative error <= 1e-6 for float32 output, 1e-10 for float64 (measured worst case: the final
# float32 rounding, ~6e-8).
F32_RTOL = 1e-6
F64_RTOL = 1e-10


def partner_distance(generated: torch.Tensor, training: torch.Tensor, partner: torch.Tensor) -> np.ndarray:
    """Exact distance of each generated row to its known partner (float64 differences of float32 values)."""
    return np.sqrt(_testing.exact_sqdist(generated, training)[np.arange(len(partner)), partner.numpy()])


@pytest.mark.parametrize("eps", [1e-7, 1e-6, 1e-5, 1e-4, 1e-3])
@pytest.mark.parametrize("d", [10, 2048, 2464, 7960, 36737])  # the study's P-diff, HR, G.pt and HD widths
def test_nearest_exact_for_near_duplicates(device, eps, d):
    training, generated, partner = _testing.near_duplicates(48, d, eps, seed=7)
    dist, idx = wmf.nearest(generated.to(device), training.to(device))
    assert torch.equal(idx[:, 0].cpu(), partner)
    assert _testing.relative_error(dist[:, 0], partner_distance(generated, training, partner)).max() <= F32_RTOL
    assert torch.all(dist > 0)  # the float32 expansion returns exact zeros here (perf_notes §2.5)


@pytest.mark.slow
def test_nearest_exact_at_a_million_parameters(device):
    training, generated, partner = _testing.near_duplicates(3, 1_000_000, 1e-6, seed=8)
    dist, idx = wmf.nearest(generated.to(device), training.to(device))
    assert torch.equal(idx[:, 0].cpu(), partner)
    assert _testing.relative_error(dist[:, 0], partner_distance(generated, training, partner)).max() <= F32_RTOL


@pytest.mark.parametrize("eps", [1e-6, 1e-4])
def test_nearest_exclude_self_finds_every_partner(device, eps):
    rows, partner = _testing.self_set_with_pairs(200, 2048, eps, seed=9)
    dist, idx = wmf.nearest(rows.to(device), rows.to(device), exclude_self=True)
    assert torch.equal(idx[:, 0].cpu(), partner)  # "drop the first of k + 1" gets about half of these wrong
    exact = np.sqrt(_testing.exact_sqdist(rows, rows)[np.arange(200), partner.numpy()])
    assert _testing.relative_error(dist[:, 0], exact).max() <= F32_RTOL


def test_nearest_exclude_self_keeps_exact_duplicates(device):
    rows = torch.randn(6, 40)
    rows[4] = rows[1]  # an exact copy elsewhere in the set: the memorisation signal
    dist, idx = wmf.nearest(rows.to(device), rows.to(device), exclude_self=True)
    assert idx[1, 0] == 4 and idx[4, 0] == 1
    assert dist[1, 0] == 0 and dist[4, 0] == 0
    dist, idx = wmf.nearest(rows.to(device), rows.to(device))
    assert idx[4, 0] == 1 and dist[4, 0] == 0  # without exclusion the lowest index among equals wins


def test_nearest_ties_go_to_the_lowest_index(device):
    reference = torch.randn(3, 16).repeat(4, 1)  # rows i, i + 3, i + 6, i + 9 are identical
    query = reference[[2, 0]] + 0.25
    dist, idx = wmf.nearest(query.to(device), reference.to(device), k=4)
    assert idx.cpu().tolist() == [[2, 5, 8, 11], [0, 3, 6, 9]]
    assert torch.all(dist == dist[:, :1])


def test_nearest_many_identical_rows_take_the_exact_fallback(device):
    # Far more equal rows than a candidate list holds: the query overflows and is scanned exactly.
    rows = torch.randn(1, 64).repeat(300, 1)
    dist, idx = wmf.nearest(rows.to(device), rows.to(device), k=2, exclude_self=True)
    expected = torch.tensor([[1, 2], [0, 2]] + [[0, 1]] * 298)
    assert torch.equal(idx.cpu(), expected)
    assert torch.all(dist == 0)


def test_nearest_overflow_retry_matches_twin(monkeypatch, device):
    # No slack: lists overflow before the true neighbour arrives, forcing the second scan from the final tau.
    monkeypatch.setattr(neighbors_op, "_SLACK_CANDIDATES", 0)
    training, generated, partner = _testing.near_duplicates(150, 300, 0.3, seed=10)
    dist, idx = wmf.nearest(generated.to(device), training.to(device), k=3)
    twin_dist, twin_idx = wmf.reference.nearest(generated, training, k=3)
    assert torch.equal(idx.cpu(), twin_idx)
    torch.testing.assert_close(dist.cpu(), twin_dist, rtol=F32_RTOL, atol=0)


@pytest.mark.parametrize("exclude_self", [False, True])
def test_nearest_tiling_is_invisible(monkeypatch, device, exclude_self):
    # A tiny workspace forces many query blocks and reference tiles (self-exclusion across tile boundaries),
    # and a short slice length forces float64-summed GEMM slices.
    monkeypatch.setattr(_gram, "WORKSPACE_BYTES", 8192)
    monkeypatch.setattr(_gram, "SPLIT_K", 32)
    rows = torch.randn(83, 100)
    dist, idx = wmf.nearest(rows.to(device), rows.to(device), k=4, exclude_self=exclude_self)
    twin_dist, twin_idx = wmf.reference.nearest(rows, rows, k=4, exclude_self=exclude_self)
    assert torch.equal(idx.cpu(), twin_idx)
    torch.testing.assert_close(dist.cpu(), twin_dist, rtol=F32_RTOL, atol=0)


def test_nearest_never_materialises_the_full_matrix(monkeypatch):
    monkeypatch.setattr(_gram, "WORKSPACE_BYTES", 64 << 10)
    largest = []
    original = _gram._TileBuffers.product

    def spy(self, left, right):
        largest.append(left.shape[0] * right.shape[0])
        return original(self, left, right)

    monkeypatch.setattr(_gram._TileBuffers, "product", spy)
    query, reference = torch.randn(300, 64), torch.randn(400, 64)
    wmf.nearest(query, reference)
    # A float64 tile gets a quarter of the workspace: far below the 300 x 400 matrix.
    assert max(largest) * 8 <= (64 << 10) // 4
    assert max(largest) * 20 < 300 * 400


def test_nearest_centres_clustered_checkpoints_and_stays_exact(device):
    # One training run: every checkpoint is the same large vector plus a small drift.
    base = 50.0 * torch.randn(1, 3000, dtype=torch.float64)
    rows = (base + 1e-3 * torch.randn(120, 3000, dtype=torch.float64)).float()
    check = _gram.InputCheck(rows.device, ("query", "reference"), "l2")
    side, _ = _gram.prepare_pair("cpu", rows, rows, "l2", check)
    assert _gram.choose_centre(side, side) is not None
    dist, idx = wmf.nearest(rows.to(device), rows.to(device), k=2, exclude_self=True)
    twin_dist, twin_idx = wmf.reference.nearest(rows, rows, k=2, exclude_self=True)
    assert torch.equal(idx.cpu(), twin_idx)
    torch.testing.assert_close(dist.cpu(), twin_dist, rtol=F32_RTOL, atol=0)


def test_nearest_float64(device):
    training, generated, partner = _testing.near_duplicates(20, 700, 1e-9, seed=11, dtype=torch.float64)
    dist, idx = wmf.nearest(generated.to(device), training.to(device))
    assert dist.dtype == torch.float64
    assert torch.equal(idx[:, 0].cpu(), partner)
    assert _testing.relative_error(dist[:, 0], partner_distance(generated, training, partner)).max() <= F64_RTOL


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_nearest_half_inputs_are_computed_as_float32(device, dtype):
    query, reference = torch.randn(10, 50).to(dtype), torch.randn(30, 50).to(dtype)
    dist, idx = wmf.nearest(query.to(device), reference.to(device), k=2)
    expected = wmf.nearest(query.float().to(device), reference.float().to(device), k=2)
    assert dist.dtype == torch.float32
    assert torch.equal(dist, expected[0]) and torch.equal(idx, expected[1])


def test_nearest_accepts_strided_and_transposed_inputs(device):
    wide = torch.randn(20, 90, device=device)
    query = wide[:, 5:65]  # row stride 90, unit column stride
    reference = torch.randn(60, 25, device=device).t()  # column stride 25
    dist, idx = wmf.nearest(query, reference, k=3)
    expected = wmf.nearest(query.contiguous(), reference.contiguous(), k=3)
    assert torch.equal(dist, expected[0]) and torch.equal(idx, expected[1])


def test_nearest_cosine_near_parallel(device):
    reference = torch.randn(30, 500, dtype=torch.float64)
    query = (reference[[3, 17]] * 2.0 + 1e-6 * torch.randn(2, 500, dtype=torch.float64)).float()
    reference = reference.float()
    dist, idx = wmf.nearest(query.to(device), reference.to(device), metric="cosine")
    assert idx[:, 0].cpu().tolist() == [3, 17]
    unit_q = query.double() / query.double().norm(dim=1, keepdim=True)
    unit_r = reference.double()[[3, 17]] / reference.double()[[3, 17]].norm(dim=1, keepdim=True)
    exact = np.diag(_testing.exact_sqdist(unit_q, unit_r)) / 2
    assert _testing.relative_error(dist[:, 0], exact).max() <= F32_RTOL


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 30),
    m=st.integers(2, 30),
    d=st.integers(1, 70),
    data=st.data(),
    metric=st.sampled_from(["l2", "sqeuclidean", "cosine"]),
    exclude_self=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_nearest_matches_twin_on_random_shapes(n, m, d, data, metric, exclude_self, seed):
    if exclude_self:
        n = m
    k = data.draw(st.integers(1, m - int(exclude_self)), label="k")
    generator = torch.Generator().manual_seed(seed)
    reference = torch.randn(m, d, generator=generator)
    query = reference if exclude_self else torch.randn(n, d, generator=generator)
    dist, idx = wmf.nearest(query, reference, k=k, metric=metric, exclude_self=exclude_self)
    twin_dist, twin_idx = wmf.reference.nearest(query, reference, k=k, metric=metric, exclude_self=exclude_self)
    assert torch.equal(idx, twin_idx)
    torch.testing.assert_close(dist, twin_dist, rtol=F32_RTOL, atol=0)
    assert torch.all(dist[:, 1:] >= dist[:, :-1])  # sorted ascending


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 12), d=st.integers(1, 40), seed=st.integers(0, 2**31 - 1))
def test_distance_to_self_is_zero(n, d, seed):
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    dist, idx = wmf.nearest(x, x)
    assert torch.all(dist[:, 0] == 0)
    assert torch.all(wmf.pairwise_distance(x).diagonal() == 0)


def test_paper_baseline_agrees_on_well_separated_rows_and_fails_on_near_duplicates():
    training, generated, partner = _testing.near_duplicates(100, 2048, 1e-1, seed=12)
    paper, paper_idx = wmf.reference.paper_min_distance(generated, training)
    ours, ours_idx = wmf.nearest(generated, training)
    assert torch.equal(paper_idx, ours_idx[:, 0])
    torch.testing.assert_close(paper, ours[:, 0], rtol=1e-4, atol=0)
    training, generated, partner = _testing.near_duplicates(100, 2048, 1e-5, seed=12)
    paper, _ = wmf.reference.paper_min_distance(generated, training)
    exact = partner_distance(generated, training, partner)
    assert _testing.relative_error(paper, exact).max() > 0.5  # the float32 expansion has cancelled


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_nearest_ranked_keys_are_exact_and_the_same_in_any_call(metric):
    generator = torch.Generator().manual_seed(0)
    query, reference = torch.randn(6, 40, generator=generator), torch.randn(30, 40, generator=generator)
    values, indices, keys = neighbors_op.nearest_ranked(query, reference, 30, metric)  # every row, ranked
    expected_values, expected_indices = wmf.nearest(query, reference, 30, metric)
    assert torch.equal(values, expected_values) and torch.equal(indices, expected_indices)
    q, r = query.double(), reference.double()
    if metric == "cosine":
        q, r = q / q.norm(dim=1, keepdim=True), r / r.norm(dim=1, keepdim=True)
    torch.testing.assert_close(keys, ((q[:, None] - r[indices]) ** 2).sum(-1), rtol=1e-13, atol=0)
    assert bool((keys.diff(dim=1) >= 0).all())
    # A call on part of the set gives its rows the same keys, bit for bit (what a sharded merge relies on).
    _, part_indices, part_keys = neighbors_op.nearest_ranked(query, reference[10:], 20, metric)
    full_keys = torch.empty_like(keys).scatter_(1, indices, keys)  # by row index
    assert torch.equal(part_keys, full_keys.gather(1, part_indices + 10))
