"""Batched linear assignment (issue 9): ``linear_assignment`` against scipy, brute force and the pure twin.

Oracles: ``scipy.optimize.linear_sum_assignment`` per problem (the study's method), an exhaustive search over all
n! permutations for n <= 6, and the pure-Python Hungarian twin (``weightmem_fast.reference.assign``), written
independently of the kernels. Where the optimum is unique (random real costs) the permutation must equal scipy's;
where ties make several optimal (integer costs, repeated rows) only the total is compared, and perm is checked to be
a permutation whose costs add up to the total.
"""
from __future__ import annotations

import doctest
import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import weightmem_fast as wmf
from weightmem_fast import reference as twins
from weightmem_fast.ops import assign as assign_ops

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Totals against scipy's (both float64 sums of the same float64 entries, in different orders): relative 1e-12 is
# the brief's bound; the difference observed is at most a few ulps (<= 1e-15 relative).
RTOL = 1e-12


def random_costs(b: int, n: int, seed: int, dtype=torch.float64, device="cpu", scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return (shift + scale * torch.rand(b, n, n, generator=g, dtype=torch.float64)).to(dtype).to(device)


def scipy_solution(costs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(perm [B, n], total [B]) from scipy, totals summed by numpy in float64."""
    arrays = costs.detach().cpu().double().numpy()
    perms, totals = [], []
    for c in arrays:
        rows, cols = linear_sum_assignment(c)
        assert np.array_equal(rows, np.arange(len(c)))
        perms.append(cols)
        totals.append(c[rows, cols].sum())
    return np.array(perms, dtype=np.int64).reshape(len(arrays), -1), np.array(totals)


def brute_force_totals(costs: torch.Tensor) -> np.ndarray:
    """min over all n! permutations of sum_i C[i, p[i]], summed in row order in float64."""
    arrays = costs.detach().cpu().double().numpy()
    n = arrays.shape[1]
    perms = np.array(list(itertools.permutations(range(n))))  # [n!, n]
    picked = arrays[:, np.arange(n)[None, :], perms]  # [B, n!, n]
    sums = np.zeros(picked.shape[:2])
    for i in range(n):
        sums += picked[:, :, i]
    return sums.min(axis=1)


def assert_valid(costs: torch.Tensor, perm: torch.Tensor, total: torch.Tensor) -> None:
    """perm [B, n] int64 is a permutation per problem and total [B] float64 is its cost, summed in row order."""
    b, n = costs.shape[0], costs.shape[1]
    assert perm.shape == (b, n) and perm.dtype == torch.int64 and perm.device == costs.device
    assert total.shape == (b,) and total.dtype == torch.float64 and total.device == costs.device
    p = perm.cpu()
    assert torch.equal(p.sort(dim=1).values, torch.arange(n).expand(b, n))
    picked = costs.cpu().double().gather(2, p[:, :, None])[:, :, 0]
    expected = torch.zeros(b, dtype=torch.float64)
    for i in range(n):
        expected += picked[:, i]
    assert torch.equal(total.cpu(), expected)


def assert_totals_close(total: torch.Tensor, expected: np.ndarray, rtol: float = RTOL) -> None:
    got = total.cpu().numpy()
    scale = np.maximum(np.abs(expected), 1.0)
    assert np.all(np.abs(got - expected) <= rtol * scale), np.max(np.abs(got - expected) / scale)


# --- against scipy -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 17, 64, 200])
def test_matches_scipy_on_random_problems(device, dtype, n):
    b = 3 if n >= 64 else 40
    costs = random_costs(b, n, seed=n, dtype=dtype, device=device)
    perm, total = wmf.linear_assignment(costs)
    assert_valid(costs, perm, total)
    scipy_perm, scipy_total = scipy_solution(costs)
    assert_totals_close(total, scipy_total)
    assert np.array_equal(perm.cpu().numpy(), scipy_perm)  # random real costs: the optimum is unique


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_matches_brute_force(device, n):
    costs = torch.cat([random_costs(30, n, seed=10 + n), torch.randint(0, 3, (30, n, n)).double()]).to(device)
    perm, total = wmf.linear_assignment(costs)
    assert_valid(costs, perm, total)
    assert_totals_close(total, brute_force_totals(costs), rtol=1e-15)


def test_integer_costs_with_many_ties(device):
    costs = torch.randint(0, 4, (300, 9, 9), generator=torch.Generator().manual_seed(3)).to(device, torch.float64)
    perm, total = wmf.linear_assignment(costs)
    assert_valid(costs, perm, total)
    assert np.array_equal(total.cpu().numpy(), scipy_solution(costs)[1])  # integer sums: exact


@pytest.mark.parametrize("n", [1, 4, 12, 40])
def test_identical_rows_and_columns(device, n):
    row = torch.arange(n, dtype=torch.float64) * 1.5 - 3
    same_rows = row.expand(n, n)  # every permutation costs sum(row)
    same_cols = row[:, None].expand(n, n)  # every permutation costs sum(row) too
    constant = torch.full((n, n), 7.25, dtype=torch.float64)
    costs = torch.stack([same_rows, same_cols, constant]).to(device)
    perm, total = wmf.linear_assignment(costs)
    assert_valid(costs, perm, total)
    assert total.cpu().tolist() == [float(row.sum())] * 2 + [7.25 * n]


def test_negative_costs(device):
    costs = random_costs(50, 8, seed=5, device=device, scale=10.0, shift=-7.0)
    perm, total = wmf.linear_assignment(costs)
    assert_valid(costs, perm, total)
    scipy_perm, scipy_total = scipy_solution(costs)
    assert_totals_close(total, scipy_total)
    assert np.array_equal(perm.cpu().numpy(), scipy_perm)
    assert_totals_close(-wmf.linear_assignment(-costs)[1], -scipy_solution(-costs)[1])  # maximisation by negation


@pytest.mark.parametrize("n", [5, 10])
def test_large_magnitude_and_near_equal_costs(device, n):
    g = torch.Generator().manual_seed(7)
    big = 1e6 * torch.randn(20, n, n, generator=g, dtype=torch.float64)
    near = 1.0 + 1e-9 * torch.randint(0, 1000, (20, n, n), generator=g).double()  # costs 1e-9 apart
    for costs in (big, near, 1e6 + near):
        costs = costs.to(device)
        perm, total = wmf.linear_assignment(costs)
        assert_valid(costs, perm, total)
        scipy_perm, scipy_total = scipy_solution(costs)
        # Same optimum, so the same entries: equal totals up to summation order (observed: bit for bit).
        assert_totals_close(total, scipy_total, rtol=1e-15)
        if n == 5:
            assert_totals_close(total, brute_force_totals(costs), rtol=1e-15)


def test_float32_is_solved_in_float64(device):
    # Differences of 2^-20 on values near 2^4 are exact in float32; a float32 solver could still lose them in its
    # potentials, a float64 one cannot.
    base = torch.full((1, 6, 6), 16.0, dtype=torch.float32)
    base[0] += torch.randint(0, 8, (6, 6), generator=torch.Generator().manual_seed(2)).float() * 2.0**-20
    perm, total = wmf.linear_assignment(base.to(device))
    assert total.item() == brute_force_totals(base)[0]


# --- shapes, layouts, backends -------------------------------------------------------------------------------


def test_empty_batch(device):
    perm, total = wmf.linear_assignment(torch.empty(0, 7, 7, device=device))
    assert perm.shape == (0, 7) and perm.dtype == torch.int64
    assert total.shape == (0,) and total.dtype == torch.float64


def test_single_entry_problems(device):
    costs = torch.tensor([[[3.5]], [[-2.0]]], device=device)
    perm, total = wmf.linear_assignment(costs)
    assert perm.cpu().tolist() == [[0], [0]] and total.cpu().tolist() == [3.5, -2.0]


def test_non_contiguous_input(device):
    costs = random_costs(20, 9, seed=8, device=device)
    view = costs.transpose(1, 2)
    assert not view.is_contiguous()
    perm, total = wmf.linear_assignment(view)
    expected = wmf.linear_assignment(view.contiguous())
    assert torch.equal(perm, expected[0]) and torch.equal(total, expected[1])


def test_deterministic(device):
    costs = torch.randint(0, 3, (500, 10, 10), generator=torch.Generator().manual_seed(9)).to(device).float()
    first = wmf.linear_assignment(costs)
    second = wmf.linear_assignment(costs)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


@pytest.mark.parametrize("n", [1, 3, 10, 33])
def test_twin_matches_kernel(n):
    costs = random_costs(25, n, seed=20 + n)
    perm, total = wmf.linear_assignment(costs)
    twin_perm, twin_total = twins.linear_assignment(costs)
    assert torch.equal(perm, twin_perm)  # unique optimum
    assert_totals_close(total, twin_total.numpy())
    ties = torch.randint(0, 3, (40, n, n), generator=torch.Generator().manual_seed(n)).double()
    _, total = wmf.linear_assignment(ties)
    twin_perm, twin_total = twins.linear_assignment(ties)
    assert_valid(ties, twin_perm, twin_total)
    assert torch.equal(total, twin_total)  # integer sums: exact


def test_torch_backend_and_scipy_baseline_agree():
    costs = random_costs(10, 6, seed=30, dtype=torch.float32)
    perm, total = wmf.linear_assignment(costs, backend="torch")
    assert_valid(costs, perm, total)
    scipy_perm, scipy_total = twins.scipy_linear_assignment(costs)
    assert torch.equal(perm, scipy_perm)
    assert_totals_close(total, scipy_total.numpy())
    empty = twins.linear_assignment(torch.empty(0, 3, 3))
    assert empty[0].shape == (0, 3) and empty[1].shape == (0,)


def test_docstring_example():
    result = doctest.testmod(assign_ops, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_cuda_matches_cpu(cuda_device):
    # One float64 solver shared verbatim (csrc/assign/lap.h): the same additions in the same order (no products,
    # so nothing to contract into FMAs), hence identical permutations and totals. n = 40 takes the scratch path.
    for n, b in ((10, 5000), (32, 300), (40, 100), (120, 5)):
        for dtype in (torch.float32, torch.float64):
            costs = random_costs(b, n, seed=n, dtype=dtype)
            ties = torch.randint(0, 3, (b, n, n)).to(dtype)
            for c in (costs, ties):
                gpu = wmf.linear_assignment(c.to(cuda_device))
                cpu = wmf.linear_assignment(c)
                assert torch.equal(gpu[0].cpu(), cpu[0]) and torch.equal(gpu[1].cpu(), cpu[1])


# --- bad inputs (the table style of test_validation.py) -------------------------------------------------------

C = torch.rand(2, 3, 3)
NAN = C.clone()
NAN[1, 2, 0] = float("nan")
INF = C.clone()
INF[0, 0, 1] = -float("inf")

CASES = [
    # (args, kwargs, exception, message fragment)
    (([[1.0]],), {}, TypeError, "costs must be a torch.Tensor"),
    ((C[0],), {}, ValueError, r"costs must be a 3-D tensor \[B, n, n\].*got shape \(3, 3\); pass one problem as"),
    ((torch.rand(3),), {}, ValueError, "costs must be a 3-D tensor"),
    ((torch.rand(2, 3, 4),), {}, ValueError, r"costs must hold square matrices.*\(2, 3, 4\)"),
    ((C.long(),), {}, TypeError, "costs must be a float32 or float64 tensor; got torch.int64"),
    ((C.half(),), {}, TypeError, "float16"),
    ((torch.empty(2, 0, 0),), {}, ValueError, "n >= 1"),
    ((NAN,), {}, ValueError, "costs contains NaN or Inf values in 1 problem.*first at problem 1"),
    ((INF,), {}, ValueError, "costs contains NaN or Inf .*first at problem 0"),
    ((C.double() + 1e307,), {}, ValueError, "too large"),
    ((C,), {"backend": "gpu"}, ValueError, "backend must be one of"),
    ((C,), {"backend": "cuda"}, ValueError, "backend='cuda' needs CUDA tensors"),
]


@pytest.mark.parametrize("args,kwargs,exc,fragment", CASES)
def test_bad_input_is_rejected_with_a_clear_message(args, kwargs, exc, fragment):
    with pytest.raises(exc, match=fragment):
        wmf.linear_assignment(*args, **kwargs)


def test_torch_backend_validates_too():
    with pytest.raises(ValueError, match="NaN or Inf"):
        wmf.linear_assignment(NAN, backend="torch")
