"""Batched linear assignment (issue 9): the kernel behind permutation-aligned distances.

``linear_assignment(costs)`` solves B independent square problems at once, with scipy's convention: for each
problem C = costs[b] [n, n], ``perm[b, i]`` is the column assigned to row i, a permutation minimising
``sum_i C[i, perm[b, i]]``, and ``total[b]`` is that sum in float64. ``r, c = scipy.optimize.linear_sum_assignment(C)``
gives ``c == perm[b]`` whenever the optimum is unique, and always the same total (up to the order of a float64 sum).

Kernels (csrc/assign/lap.h, one solver shared by CPU and CUDA): Jonker-Volgenant's column reduction, then
shortest augmenting paths with potentials (as scipy), O(n^3), all in float64 (float32 costs are widened on load),
deterministic. CPU: OpenMP threads over problems. CUDA: one thread per problem. No per-problem allocation: the G.pt
case (B ~ 1e8 problems of n = 10, chunked by the caller) costs about a microsecond per problem per core, against
3-8 us per problem for a Python loop over scipy.
"""
from __future__ import annotations

import math

import torch

from .. import _dispatch, _ext
from ..reference import assign as twins

_DTYPES = (torch.float32, torch.float64)
# Largest n that CUDA solves without a scratch tensor (csrc/assign/lap.h: kLapLocalMaxN).
_LOCAL_MAX_N = 32
# Scratch bound for n > 32 on CUDA: threads (one problem at a time each) x lap_work_bytes(n) <= 64 MiB.
_SCRATCH_BYTES = 64 << 20


def _work_bytes(n: int) -> int:
    """lap_work_bytes(n) of csrc/assign/lap.h: three float64 and four int32 arrays of n, rounded up to 8 bytes."""
    return (3 * 8 * n + 4 * 4 * n + 7) // 8 * 8


def _validated_costs(costs: object) -> torch.Tensor:
    if not isinstance(costs, torch.Tensor):
        raise TypeError(f"costs must be a torch.Tensor [B, n, n]; got {type(costs).__name__}")
    if costs.dim() != 3:
        hint = "; pass one problem as costs[None]" if costs.dim() == 2 else ""
        raise ValueError(f"costs must be a 3-D tensor [B, n, n] (B square cost matrices); got shape "
                         f"{tuple(costs.shape)}{hint}")
    if costs.shape[1] != costs.shape[2]:
        raise ValueError(f"costs must hold square matrices [B, n, n]; got shape {tuple(costs.shape)} "
                         f"({costs.shape[1]} rows, {costs.shape[2]} columns); pad rectangular problems to square")
    if costs.dtype not in _DTYPES:
        raise TypeError(f"costs must be a float32 or float64 tensor; got {costs.dtype}; convert it with "
                        f"costs.double() (integer costs are exact in float64 up to 2^53)")
    if costs.shape[1] == 0:
        raise ValueError(f"costs must have n >= 1 rows and columns; got shape {tuple(costs.shape)}")
    if costs.numel() == 0 or costs.device.type == "meta":
        return costs
    lo, hi = (float(v) for v in torch.aminmax(costs))  # one pass; NaN propagates, Inf shows as an extreme
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = ~torch.isfinite(costs).flatten(1).all(dim=1)
        first = int(torch.nonzero(bad)[0, 0])
        raise ValueError(f"costs contains NaN or Inf values in {int(bad.sum())} problem(s), first at problem "
                         f"{first}; costs must be finite (use a large finite cost for forbidden pairs)")
    # The solver's potentials and path lengths are sums of up to ~2n costs; keep them far from float64 overflow.
    n = costs.shape[1]
    bound = torch.finfo(torch.float64).max / (16 * n * n)
    largest = max(-lo, hi)
    if largest > bound:
        raise ValueError(f"costs has values up to {largest:.3g} in absolute value, too large for exact float64 "
                         f"sums over n = {n}; rescale them (|cost| <= {bound:.3g})")
    return costs


def linear_assignment(costs: torch.Tensor, *, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-cost perfect assignment of each of B independent square problems.

    Convention (scipy's): ``perm[b, i]`` is the column assigned to row i and ``total[b] = sum_i costs[b, i,
    perm[b, i]]``, minimal over all permutations, summed in float64 in row order. With ``r, c =
    scipy.optimize.linear_sum_assignment(costs[b])``: ``perm[b] == c`` when the optimum is unique; with ties the
    permutation may be another optimal one (a deterministic choice, csrc/assign/lap.h), and the total is the same.

    Exact: the solver runs in float64 (float32 costs are widened, not rounded further), so totals equal scipy's up
    to the order of the final float64 sum (relative 1e-15 for n = 10).

    Args:
        costs: [B, n, n] float32 or float64 tensor, CPU or CUDA, finite; B >= 0 problems of size n >= 1.
            Non-contiguous inputs are copied to contiguous ones.
        backend: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"torch"`` (the pure-Python twin).

    Returns:
        (perm [B, n] int64, total [B] float64), on the costs' device.

    Raises:
        TypeError: not a tensor; not float32/float64.
        ValueError: not 3-D, not square, n == 0, NaN or Inf (names the first bad problem), |cost| so large that
            float64 sums could overflow, unknown backend or one that does not match the device.
        RuntimeError: ``backend="cuda"`` where the CUDA kernels cannot run.

    Example:
        >>> import torch, weightmem_fast as wmf
        >>> perm, total = wmf.linear_assignment(torch.tensor([[[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]]]))
        >>> perm.tolist(), total.tolist()
        ([[1, 0, 2]], [5.0])
    """
    costs = _validated_costs(costs)
    impl = _dispatch.choose("linear_assignment", costs.device.type, backend)
    if impl == "torch":
        return twins.linear_assignment(costs)
    costs = costs.contiguous()
    count, n = costs.shape[0], costs.shape[1]
    perm = torch.empty(count, n, dtype=torch.int64, device=costs.device)
    total = torch.empty(count, dtype=torch.float64, device=costs.device)
    scratch = None
    if impl == "cuda" and n > _LOCAL_MAX_N and count > 0:
        slots = max(1, min(count, _SCRATCH_BYTES // _work_bytes(n)))
        scratch = torch.empty(slots * _work_bytes(n), dtype=torch.uint8, device=costs.device)
    _ext.call(impl, "linear_assignment", costs, perm, total, scratch)
    return perm, total
