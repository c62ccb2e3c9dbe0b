"""Twin of ``weightmem_fast.ops.assign`` (issue 9): batched square linear assignment, minimised.

``linear_assignment`` is the pure twin: the textbook O(n^3) Hungarian method with row and column potentials (one
row added at a time, a Dijkstra-like search over reduced costs to a free column), in plain Python float64 over one
problem at a time. It is written independently of the kernels' scan rules (csrc/assign/lap.h), so on ties it may
pick a different optimal permutation; totals agree. Slow (tens of microseconds per 10 x 10 problem) but it needs
nothing compiled, so it also serves as the fallback.

``scipy_linear_assignment`` is the study's own method, ``scipy.optimize.linear_sum_assignment`` called once per
problem, kept as the benchmark baseline and test oracle.

Convention of both (and of the public op): ``perm[b, i]`` is the column assigned to row i, and ``total[b] =
sum_i costs[b, i, perm[b, i]]`` in float64, rows added in order.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def _hungarian(c: list[list[float]]) -> list[int]:
    """Row -> column minimising sum_i c[i][perm[i]] for one finite square matrix (lists of floats)."""
    n = len(c)
    inf = math.inf
    # 1-based rows and columns; column 0 is a virtual column that holds the row being inserted.
    u = [0.0] * (n + 1)  # row potentials
    v = [0.0] * (n + 1)  # column potentials
    match = [0] * (n + 1)  # match[j] = row assigned to column j (0: free)
    way = [0] * (n + 1)  # previous column on the shortest path
    for row in range(1, n + 1):
        match[0] = row
        j0 = 0
        minv = [inf] * (n + 1)
        used = [False] * (n + 1)
        while True:
            used[j0] = True
            i0 = match[j0]
            delta, j1 = inf, 0
            ci = c[i0 - 1]
            for j in range(1, n + 1):
                if not used[j]:
                    cur = ci[j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            # Every reduced cost stays >= 0: scanned columns and their rows shift by delta, the rest get closer.
            for j in range(n + 1):
                if used[j]:
                    u[match[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:  # augment along the path
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    perm = [0] * n
    for j in range(1, n + 1):
        perm[match[j] - 1] = j - 1
    return perm


def _totals(costs: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """sum_i costs[b, i, perm[b, i]] in float64, rows added in order."""
    picked = costs.to(torch.float64).gather(2, perm[:, :, None])[:, :, 0]
    total = torch.zeros(costs.shape[0], dtype=torch.float64, device=costs.device)
    for i in range(costs.shape[1]):
        total += picked[:, i]
    return total


def linear_assignment(costs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-cost assignment of every problem in ``costs`` [B, n, n] (finite, float). See
    ``weightmem_fast.linear_assignment``.

    Returns:
        (perm [B, n] int64, total [B] float64) on the input's device.
    """
    with torch.no_grad():
        rows = costs.detach().to("cpu", torch.float64).tolist()
        perm = torch.tensor([_hungarian(c) for c in rows], dtype=torch.int64).reshape(costs.shape[0], costs.shape[1])
        perm = perm.to(costs.device)
        return perm, _totals(costs, perm)


def scipy_linear_assignment(costs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The study's method: ``scipy.optimize.linear_sum_assignment`` on each problem of ``costs`` [B, n, n], in
    float64. Same convention and return values as ``linear_assignment``."""
    from scipy.optimize import linear_sum_assignment

    with torch.no_grad():
        arrays = costs.detach().to("cpu", torch.float64).numpy()
        perm = np.empty(arrays.shape[:2], dtype=np.int64)
        for b, c in enumerate(arrays):
            perm[b] = linear_sum_assignment(c)[1]  # the rows come back as 0..n-1 for square problems
        perm = torch.from_numpy(perm).to(costs.device)
        return perm, _totals(costs, perm)
