"""Twin of ``weightmem_fast.ops.chamfer`` (issue 6; study_spec §2.5): Chamfer distances by direct differences.

CD(a, b) = mean over a of min over b of ||a - b||^2 + mean over b of min over a of ||a - b||^2 (``squared=True``,
HyperDiffusion's and pytorch3d's default); ``squared=False`` takes Euclidean distances in both terms.

The twin follows the kernels' contract (csrc/chamfer/chamfer.h) op for op, so it is their oracle too: squared
distances as (dx*dx + dy*dy) + dz*dz with d = b - a, separate elementwise torch ops in the input dtype (no fused
multiply-add, no ||a||^2 + ||b||^2 - 2 a.b expansion); minima in that dtype (a minimum is exact); square roots,
sums and means in float64, rounded once to the input dtype. The compiled kernels then differ from it only in the
order of the float64 sums. Chunked so that no more than ``_TILE_ELEMENTS`` distances exist at once.
"""
from __future__ import annotations

import torch

# Distances per chunk: [clouds, a points, b points] blocks of at most 2**22 elements (16 MiB in float32).
_TILE_ELEMENTS = 1 << 22


def chamfer(a: torch.Tensor, b: torch.Tensor, *, squared: bool = True) -> float:
    """Chamfer distance of one pair of clouds a [P, 3] and b [Q, 3]. See ``weightmem_fast.chamfer``."""
    return float(chamfer_matrix(a[None], b[None], squared=squared)[0, 0])


def pair_minima(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-point minima of one cloud a [P, 3] against a batch b [C, Q, 3], in the input dtype.

    Returns:
        (row [C, P]: min over b's points of the squared distance to each point of a,
         col [C, Q]: min over a's points of the squared distance to each point of b).
    """
    c, q = b.shape[0], b.shape[1]
    p = a.shape[0]
    row = torch.full((c, p), torch.inf, dtype=a.dtype, device=a.device)
    col = torch.full((c, q), torch.inf, dtype=a.dtype, device=a.device)
    step = max(1, _TILE_ELEMENTS // max(1, c * q))
    with torch.no_grad():
        for start in range(0, p, step):
            block = a[start : start + step]  # [p', 3]
            dx = b[:, None, :, 0] - block[None, :, None, 0]  # [C, p', Q]
            dy = b[:, None, :, 1] - block[None, :, None, 1]
            dz = b[:, None, :, 2] - block[None, :, None, 2]
            d = (dx * dx + dy * dy) + dz * dz
            row[:, start : start + block.shape[0]] = d.amin(dim=2)
            col = torch.minimum(col, d.amin(dim=1))
    return row, col


def _mean_f(minima: torch.Tensor, squared: bool) -> torch.Tensor:
    m = minima.to(torch.float64)
    return (m if squared else m.sqrt()).mean(dim=-1)


def chamfer_matrix(A: torch.Tensor, B: torch.Tensor, *, squared: bool = True) -> torch.Tensor:
    """Chamfer distance of every pair (A[n], B[m]). See ``weightmem_fast.chamfer_matrix``.

    Args:
        A: [N, P, 3] float tensor. B: [M, Q, 3] with the same dtype and device.

    Returns:
        [N, M] in the input dtype.
    """
    n, m, q = A.shape[0], B.shape[0], B.shape[1]
    out = torch.empty(n, m, dtype=A.dtype, device=A.device)
    clouds = max(1, _TILE_ELEMENTS // max(1, A.shape[1] * q))  # b clouds per chunk: one row of a times them
    with torch.no_grad():
        for i in range(n):
            for start in range(0, m, clouds):
                row, col = pair_minima(A[i], B[start : start + clouds])
                out[i, start : start + row.shape[0]] = (_mean_f(row, squared) + _mean_f(col, squared)).to(A.dtype)
    return out


def nearest_shape(
    query: torch.Tensor,
    reference: torch.Tensor,
    k: int = 1,
    exclude_self: bool = False,
    *,
    squared: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k reference clouds with the smallest Chamfer distance to each query cloud. See
    ``weightmem_fast.nearest_shape``.

    Ties go to the lowest index (a stable sort over distances listed in index order); ``exclude_self`` removes
    reference i from query i's candidates by index.
    """
    cd = chamfer_matrix(query, reference, squared=squared)
    if exclude_self:
        rows = torch.arange(cd.shape[0], device=cd.device)
        cd[rows, rows] = torch.inf
    order = torch.sort(cd, dim=1, stable=True)
    return order.values[:, :k].contiguous(), order.indices[:, :k].contiguous()
