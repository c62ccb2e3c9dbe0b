"""Chamfer distances, nearest shapes and the generative-shape metrics (issue 6).

Oracles: a float64 numpy evaluation of the definition by direct differences (independent of torch and of the
twin), and the torch twin, which follows the kernels' contract op for op (csrc/chamfer/chamfer.h): the kernels
and the twin compute identical per-point minima and differ only in the order of their float64 sums, so they agree
to one float32 ulp for float32 clouds (observed: bit for bit) and to 1e-13 for float64 clouds.
"""
from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import weightmem_fast as wmf
from weightmem_fast import reference as twins
from weightmem_fast._testing import shape_clouds
from weightmem_fast.ops import chamfer as chamfer_ops

FIXTURE_OK = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Relative error against the float64 oracle. float32: each distance carries ~4 roundings (difference, squares,
# sums: <= 2.5e-7 relative), minima and float64 means add nothing, the output rounding 6e-8 (worst observed over
# random and near-duplicate clouds: 6.4e-8). float64 inputs: the same argument at 2^-52, plus the float64 sums'
# own rounding (worst observed 1.3e-15).
ORACLE_RTOL = {torch.float32: 1e-6, torch.float64: 1e-13}


def oracle(a: torch.Tensor, b: torch.Tensor, squared: bool = True) -> np.ndarray:
    """[N, M] Chamfer distances of A [N, P, 3] and B [M, Q, 3] in float64 by direct differences (numpy)."""
    A = a.detach().cpu().double().numpy()
    B = b.detach().cpu().double().numpy()
    out = np.empty((len(A), len(B)))
    for i, x in enumerate(A):
        for j, y in enumerate(B):
            d = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
            if not squared:
                d = np.sqrt(d)
            out[i, j] = d.min(1).mean() + d.min(0).mean()
    return out


def assert_matches_oracle(values: torch.Tensor, expected: np.ndarray, dtype: torch.dtype) -> None:
    got = values.detach().cpu().double().numpy()
    scale = np.maximum(np.abs(expected), np.finfo(np.float64).tiny)
    assert np.all(np.abs(got - expected) <= ORACLE_RTOL[dtype] * scale), np.max(np.abs(got - expected) / scale)


# Kernel vs twin: identical minima, float64 sums of up to a few thousand terms in different orders (relative
# difference <= ~1e-13, observed <= 1.3e-15). float32 outputs: that rounds away, leaving at most one float32 ulp
# (observed 0); float64 outputs keep it.
TWIN_RTOL = {torch.float32: torch.finfo(torch.float32).eps, torch.float64: 1e-13}


def assert_matches_twin(values: torch.Tensor, twin: torch.Tensor) -> None:
    assert values.dtype == twin.dtype and values.shape == twin.shape
    assert torch.all((values - twin).abs() <= TWIN_RTOL[values.dtype] * twin.abs())


def clouds(n: int, p: int, seed: int, device: str, dtype=torch.float32, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(n, p, 3, generator=g, dtype=torch.float64)).to(dtype).to(device)


# --- values --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize(
    "n,m,p,q",
    [(1, 1, 1, 1), (1, 4, 1, 17), (3, 1, 15, 16), (2, 3, 31, 33), (4, 5, 100, 7), (2, 2, 2048, 2048),
     (1, 2, 1025, 300)],  # points around the 16-lane vectors, the 4-row blocks and the 1024-point column blocks
)
def test_chamfer_matrix_matches_oracle_and_twin(device, dtype, squared, n, m, p, q):
    A, B = clouds(n, p, 1, device, dtype), clouds(m, q, 2, device, dtype)
    out = wmf.chamfer_matrix(A, B, squared=squared)
    assert out.shape == (n, m) and out.dtype == dtype and out.device == A.device
    assert_matches_oracle(out, oracle(A, B, squared), dtype)
    assert_matches_twin(out, twins.chamfer_matrix(A, B, squared=squared))


@settings(FIXTURE_OK, max_examples=60)
@given(
    n=st.integers(1, 4),
    m=st.integers(1, 4),
    p=st.integers(1, 70),
    q=st.integers(1, 70),
    seed=st.integers(0, 2**31 - 1),
    squared=st.booleans(),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
)
def test_chamfer_matrix_matches_twin_on_random_clouds(device, n, m, p, q, seed, squared, scale):
    A, B = clouds(n, p, seed, device, scale=scale), clouds(m, q, seed + 1, device, scale=scale)
    out = wmf.chamfer_matrix(A, B, squared=squared)
    assert_matches_twin(out, twins.chamfer_matrix(A, B, squared=squared))
    assert_matches_oracle(out, oracle(A, B, squared), torch.float32)


def test_chamfer_is_symmetric_bit_for_bit(device):
    A, B = clouds(5, 200, 3, device), clouds(7, 150, 4, device)
    assert torch.equal(wmf.chamfer_matrix(A, B), wmf.chamfer_matrix(B, A).T)
    assert wmf.chamfer(A[0], B[0]) == wmf.chamfer(B[0], A[0])


def test_self_matrix_is_symmetric_with_a_zero_diagonal(device):
    A = clouds(9, 130, 5, device)
    self_matrix = wmf.chamfer_matrix(A)  # computed by symmetry (half the pairs)
    assert torch.equal(self_matrix, wmf.chamfer_matrix(A, A))
    assert torch.equal(self_matrix, wmf.chamfer_matrix(A, A.clone()))  # computed in full
    assert torch.equal(self_matrix, self_matrix.T)
    assert torch.all(self_matrix.diagonal() == 0)


@pytest.mark.parametrize("squared", [True, False])
def test_chamfer_of_a_cloud_with_itself_is_exactly_zero(device, squared):
    a = clouds(1, 500, 6, device)[0]
    assert wmf.chamfer(a, a, squared=squared) == 0.0
    assert wmf.chamfer(a, a[torch.randperm(500, device=device)], squared=squared) == 0.0  # order is irrelevant


@pytest.mark.parametrize("t", [(0.5, 0.25, -1.0), (3.0, 0.0, 4.0), (2.0**-10, 0.0, 0.0)])
def test_translated_single_point_gives_twice_the_squared_shift(device, t):
    p = torch.tensor([[1.0, -2.0, 0.5]], device=device)
    shift = torch.tensor([t], device=device)
    sq = sum(x * x for x in t)  # dyadic values: every operation is exact
    assert wmf.chamfer(p, p + shift) == 2 * sq  # |t|^2 from each side
    # squared=False: sqrt and sums in float64, one rounding to float32 at the end.
    assert wmf.chamfer(p, p + shift, squared=False) == torch.tensor(2 * math.sqrt(sq)).float().item()


def test_translated_grid_gives_the_shift_from_both_sides(device):
    axis = torch.arange(5.0)
    grid = torch.cartesian_prod(axis, axis, axis).to(device)  # 125 points, spacing 1
    moved = grid + torch.tensor([0.25, 0.0, 0.0], device=device)  # each point's nearest is its own translate
    assert wmf.chamfer(grid, moved) == 2 * 0.0625
    assert wmf.chamfer(grid, moved, squared=False) == 2 * 0.25


def test_hand_computed_values(device):
    a = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], device=device)
    b = torch.tensor([[0.0, 0.0, 0.0]], device=device)
    assert wmf.chamfer(a, b) == 0.5  # a's side (0 + 1) / 2, b's side 0
    c = torch.tensor([[0.0, 2.0, 0.0], [3.0, 0.0, 0.0]], device=device)
    # a -> c: min(4, 9) = 4 and min(5, 4) = 4; c -> a: min(4, 5) = 4 and min(9, 4) = 4.
    assert wmf.chamfer(a, c) == 8.0
    assert wmf.chamfer(a, c, squared=False) == 4.0
    expected = torch.tensor([[0.5, 8.0]], device=device)
    assert torch.equal(wmf.chamfer_matrix(a[None], torch.stack([torch.cat([b, b]), c])), expected)


@pytest.mark.parametrize("eps", [1e-4, 1e-6])
def test_near_duplicate_clouds_are_exact(device, eps):
    # Shapes of norm ~1 and their copies moved by eps: distances ~eps^2, where the ||a||^2 + ||b||^2 - 2 a.b
    # expansion of cdist/bmm cancels to noise. Direct differences keep the float32 relative accuracy.
    base = shape_clouds(3, 2048, seed=7)
    moved = base * (1 + eps * torch.randn(base.shape, dtype=torch.float64)).float()
    A, B = base.to(device), moved.to(device)
    out = wmf.chamfer_matrix(A, B)
    assert_matches_oracle(out, oracle(A, B), torch.float32)
    assert torch.all(out.diagonal() > 0)


def test_low_precision_inputs_are_computed_in_float32(device):
    A = clouds(2, 40, 8, device).half()
    B = clouds(3, 50, 9, device).bfloat16()
    out = wmf.chamfer_matrix(A, A.clone())
    assert out.dtype == torch.float32
    assert torch.equal(out, wmf.chamfer_matrix(A.float(), A.float()))
    assert wmf.chamfer_matrix(B, B[:1]).dtype == torch.float32


def test_non_contiguous_inputs(device):
    A = clouds(4, 60, 10, device).transpose(1, 2).contiguous().transpose(1, 2)  # [N, P, 3], strides (180, 1, 60)
    B = clouds(6, 40, 11, device)[::2]
    assert not A.is_contiguous() and not B.is_contiguous()
    assert torch.equal(wmf.chamfer_matrix(A, B), wmf.chamfer_matrix(A.contiguous(), B.contiguous()))


def test_backends_agree(device):
    A, B = clouds(3, 70, 12, device), clouds(4, 90, 13, device)
    kernel = wmf.chamfer_matrix(A, B, backend=device)
    assert_matches_twin(kernel, wmf.chamfer_matrix(A, B, backend="torch"))


def test_cuda_matches_cpu(cuda_device):
    A, B = shape_clouds(5, 2048, seed=1), shape_clouds(6, 2048, seed=2)
    cpu = wmf.chamfer_matrix(A, B)
    gpu = wmf.chamfer_matrix(A.to(cuda_device), B.to(cuda_device)).cpu()
    assert_matches_twin(gpu, cpu)  # the same minima; float64 sums in another order
    assert torch.equal(wmf.chamfer_matrix(A.cuda()).cpu(), wmf.chamfer_matrix(A))


# --- nearest_shape -------------------------------------------------------------------------------------------


def test_nearest_shape_ties_go_to_the_lowest_index(device):
    a = clouds(1, 30, 14, device)
    far = clouds(1, 30, 15, device) + 10
    reference = torch.cat([far, a, far, a, a])  # equal Chamfer values at indices 1, 3, 4 and at 0, 2
    values, indices = wmf.nearest_shape(a, reference, k=5)
    assert indices.tolist() == [[1, 3, 4, 0, 2]]
    assert values[0, :3].tolist() == [0.0, 0.0, 0.0] and values[0, 3] == values[0, 4] > 0


def test_nearest_shape_exclude_self_is_by_index(device):
    a, b = clouds(2, 25, 16, device)
    shapes = torch.stack([a, b, a, b + 0.01])
    values, indices = wmf.nearest_shape(shapes, shapes, k=2, exclude_self=True)
    assert indices[:, 0].tolist() == [2, 3, 0, 1]
    assert values[0, 0] == 0 and values[2, 0] == 0  # the duplicate is still found: the memorisation signal
    assert torch.all(indices != torch.arange(4, device=device)[:, None])
    # Without exclusion every shape finds itself first.
    values, indices = wmf.nearest_shape(shapes, shapes, k=1)
    assert indices.flatten().tolist() == [0, 1, 0, 3] and torch.all(values == 0)  # 2 ties with 0: lowest wins


@pytest.mark.parametrize("same", [True, False])
@pytest.mark.parametrize("exclude_self", [True, False])
@pytest.mark.parametrize("k", [1, 3])
def test_nearest_shape_matches_twin_across_tiles(device, monkeypatch, same, exclude_self, k):
    monkeypatch.setattr(chamfer_ops, "_BLOCK", 3)  # 11 shapes: 4 x 4 tiles, partial ones included
    query = clouds(11, 20, 17, device)
    query[7] = query[2]  # an exact duplicate pair: a tie for every other shape
    reference = query if same else query.clone()
    values, indices = wmf.nearest_shape(query, reference, k=k, exclude_self=exclude_self)
    expected_values, expected_indices = twins.nearest_shape(query, query, k, exclude_self)
    assert values.shape == (11, k) and indices.dtype == torch.int64
    assert torch.equal(indices, expected_indices)
    assert_matches_twin(values, expected_values)


def test_nearest_shape_values_are_chamfer_matrix_values(device):
    query, reference = clouds(4, 50, 18, device), clouds(9, 40, 19, device)
    values, indices = wmf.nearest_shape(query, reference, k=9)
    full = wmf.chamfer_matrix(query, reference)
    assert torch.equal(values, full.gather(1, indices))
    assert torch.all(values[:, 1:] >= values[:, :-1])


# --- MMD, COV, 1-NNA -----------------------------------------------------------------------------------------


def test_mmd_and_coverage_hand_case():
    gen_ref = torch.tensor([[1.0, 5.0, 9.0], [2.0, 0.5, 9.0]])  # rows generated, columns reference
    assert wmf.minimum_matching_distance(gen_ref) == pytest.approx((1.0 + 0.5 + 9.0) / 3)
    assert wmf.coverage(gen_ref) == pytest.approx(2 / 3)  # references 0 and 1 are matched, 2 is not
    assert wmf.coverage(torch.tensor([[1.0, 2.0], [1.0, 3.0]])) == 0.5  # both pick reference 0
    assert wmf.coverage(torch.tensor([[1.0, 1.0, 4.0]])) == pytest.approx(1 / 3)  # a tie: the lowest index


def independent_one_nna(gen_gen, gen_ref, ref_ref) -> float:
    """Leave-one-out 1-NN accuracy by plain loops over shapes (references first, ties to the lowest index)."""
    g, r = gen_ref.shape

    def dist(i, j):  # i, j index the stacked set: references 0..r-1, then generated
        if i < r and j < r:
            return float(ref_ref[i, j])
        if i >= r and j >= r:
            return float(gen_gen[i - r, j - r])
        return float(gen_ref[j - r, i]) if i < r else float(gen_ref[i - r, j])

    correct = 0
    for j in range(r + g):
        nearest = min((dist(i, j), i) for i in range(r + g) if i != j)[1]
        correct += (nearest < r) == (j < r)
    return correct / (r + g)


def test_one_nn_accuracy_hand_cases():
    # Three reference shapes (8 equal points each) at x = 0, 0.1, 0.2 and three generated ones at x = 10.0,
    # 10.1, 10.2: CD(generated i, reference j) = 2 (10 + 0.1 (i - j))^2.
    near = torch.zeros(3, 8, 3)
    near[..., 0] += torch.arange(3.0)[:, None] * 0.1
    far = near.clone()
    far[..., 0] += 10
    m = wmf.shape_metrics(far, near)
    assert m["1-nna"] == 1.0  # every shape's neighbour is from its own set
    assert m["cov"] == pytest.approx(1 / 3)  # every generated shape's nearest reference is the one at x = 0.2
    expected_mmd = np.mean([min(2 * (10 + 0.1 * (i - j)) ** 2 for i in range(3)) for j in range(3)])
    assert m["mmd"] == pytest.approx(expected_mmd, rel=1e-6)
    # Generated = exact copies of the references: every shape's neighbour is its copy in the other set.
    m = wmf.shape_metrics(near.clone(), near)
    assert m["1-nna"] == 0.0 and m["cov"] == 1.0 and m["mmd"] == 0.0


@settings(max_examples=40, deadline=None)
@given(g=st.integers(1, 6), r=st.integers(1, 6), seed=st.integers(0, 2**31 - 1), ties=st.booleans())
def test_one_nn_accuracy_matches_independent_loops(g, r, seed, ties):
    rng = np.random.default_rng(seed)
    size = g + r
    full = rng.integers(1, 4, (size, size)) if ties else rng.random((size, size))
    full = torch.from_numpy(np.triu(full, 1) + np.triu(full, 1).T).double()  # symmetric, like Chamfer
    ref_ref, gen_gen, gen_ref = full[:r, :r], full[r:, r:], full[r:, :r]
    assert wmf.one_nn_accuracy(gen_gen, gen_ref, ref_ref) == pytest.approx(independent_one_nna(gen_gen, gen_ref,
                                                                                                ref_ref))


def test_shape_metrics_are_the_metrics_of_the_chamfer_matrices(device):
    gen, ref = clouds(5, 64, 20, device), clouds(7, 64, 21, device)
    m = wmf.shape_metrics(gen, ref)
    gen_ref = wmf.chamfer_matrix(gen, ref)
    assert m["mmd"] == wmf.minimum_matching_distance(gen_ref)
    assert m["mmd"] == pytest.approx(float(gen_ref.double().min(dim=0).values.mean()))
    assert m["cov"] == wmf.coverage(gen_ref)
    assert m["1-nna"] == wmf.one_nn_accuracy(wmf.chamfer_matrix(gen), gen_ref, wmf.chamfer_matrix(ref))
    assert 0.0 <= m["1-nna"] <= 1.0 and 0.0 < m["cov"] <= 1.0


# --- bad inputs ----------------------------------------------------------------------------------------------

P3 = torch.rand(2, 5, 3)
NAN = P3.clone()
NAN[1, 3, 0] = float("nan")
INF = P3.clone()
INF[0, 2, 2] = float("inf")

BAD = [
    # (op, args, kwargs, exception, message fragment)
    (wmf.chamfer_matrix, (P3[..., :2], P3), {}, ValueError, r"A must be a tensor \[N, P, 3\].*got shape \(2, 5, 2\)"),
    (wmf.chamfer_matrix, (P3, torch.rand(2, 5, 4)), {}, ValueError, "B must be a tensor .*3 coordinates per point"),
    (wmf.chamfer_matrix, (P3[0], P3), {}, ValueError, r"A must be a tensor \[N, P, 3\].*pass one cloud as x\[None\]"),
    (wmf.chamfer_matrix, (torch.rand(0, 5, 3), P3), {}, ValueError, "A must hold at least one cloud"),
    (wmf.chamfer_matrix, (P3, torch.rand(2, 0, 3)), {}, ValueError, "B must hold at least one cloud of at least one"),
    (wmf.chamfer_matrix, (NAN, P3), {}, ValueError, "A contains NaN or Inf coordinates in 1 point.*cloud 1, point 3"),
    (wmf.chamfer_matrix, (P3, INF), {}, ValueError, "B contains NaN or Inf .*cloud 0, point 2"),
    (wmf.chamfer_matrix, (P3 * 1e19, P3), {}, ValueError, "squared distances overflow torch.float32; rescale"),
    (wmf.chamfer_matrix, (P3, P3.double()), {}, TypeError, "same dtype; got torch.float64 and torch.float32"),
    (wmf.chamfer_matrix, (P3.int(), P3), {}, TypeError, "A must be a floating tensor.*torch.int32"),
    (wmf.chamfer_matrix, ([[0.0, 0.0, 0.0]], P3), {}, TypeError, "A must be a torch.Tensor"),
    (wmf.chamfer_matrix, (P3, P3.to("meta")), {}, ValueError, "B and A must be on the same device; got meta and cpu"),
    (wmf.chamfer_matrix, (P3, P3), {"squared": 1}, TypeError, "squared must be a bool"),
    (wmf.chamfer_matrix, (P3, P3), {"backend": "gpu"}, ValueError, "backend must be one of"),
    (wmf.chamfer_matrix, (P3, P3), {"backend": "cuda"}, ValueError, "backend='cuda' needs CUDA tensors"),
    (wmf.chamfer, (P3, P3), {}, ValueError, r"a must be a tensor \[P, 3\].*use chamfer_matrix"),
    (wmf.chamfer, (P3[0], P3[0, :, :2]), {}, ValueError, r"b must be a tensor \[P, 3\]"),
    (wmf.chamfer, (P3[0], NAN[1]), {}, ValueError, "b contains NaN or Inf coordinates .*first at point 3"),
    (wmf.chamfer, (P3[0, :0], P3[0]), {}, ValueError, "a must hold at least one"),
    (wmf.chamfer, (P3[0], None), {}, TypeError, "b must be a torch.Tensor"),
    (wmf.nearest_shape, (P3, None), {}, TypeError, "reference must be a torch.Tensor"),
    (wmf.nearest_shape, (P3, P3), {"k": 3}, ValueError, "k must be between 1 and 2; got 3"),
    (wmf.nearest_shape, (P3, P3), {"k": 2, "exclude_self": True}, ValueError, "k must be between 1 and 1"),
    (wmf.nearest_shape, (P3, P3[:1]), {"exclude_self": True}, ValueError, "same number of rows; got 2 and 1"),
    (wmf.nearest_shape, (P3, P3), {"exclude_self": "yes"}, TypeError, "exclude_self must be a bool"),
    (wmf.nearest_shape, (P3, P3), {"k": 1.0}, TypeError, "k must be an int"),
    (wmf.nearest_shape, (P3, NAN), {}, ValueError, "reference contains NaN"),
    (wmf.shape_metrics, (P3, P3[..., :2]), {}, ValueError, "B must be a tensor"),
    (wmf.minimum_matching_distance, (torch.rand(3),), {}, ValueError, "gen_ref must be a non-empty 2-D"),
    (wmf.coverage, (torch.tensor([[float("nan")]]),), {}, ValueError, "gen_ref contains NaN"),
    (wmf.one_nn_accuracy, (torch.rand(2, 2), torch.rand(2, 3), torch.rand(2, 2)), {}, ValueError,
     r"ref_ref must have shape \(3, 3\)"),
]


@pytest.mark.parametrize("op,args,kwargs,exc,fragment", BAD)
def test_bad_input_is_rejected_with_a_clear_message(op, args, kwargs, exc, fragment):
    with pytest.raises(exc, match=fragment):
        op(*args, **kwargs)


def test_twin_backend_validates_too():
    with pytest.raises(ValueError, match="NaN or Inf"):
        wmf.chamfer_matrix(NAN, P3, backend="torch")


def test_docstring_examples_run():
    result = doctest.testmod(chamfer_ops, raise_on_error=False, verbose=False)
    assert result.attempted > 0 and result.failed == 0
