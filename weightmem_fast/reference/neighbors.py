"""Twin of ``weightmem_fast.ops.neighbors`` and the study's min-distance method (study_spec §2.1)."""
from __future__ import annotations

import torch

from .distances import finish, output_dtype, sqdist_float64

# Queries per chunk: bounds the float64 [chunk, M] distance block.
_QUERY_CHUNK = 256


def nearest(
    query: torch.Tensor,
    reference: torch.Tensor,
    k: int = 1,
    metric: str = "l2",
    exclude_self: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest reference rows per query by float64 direct differences. See ``weightmem_fast.nearest``.

    Ties: a stable sort over distances listed in index order keeps the lowest index first. ``exclude_self``
    removes reference row i from query row i's candidates by index.
    """
    values, indices = [], []
    with torch.no_grad():
        for start in range(0, query.shape[0], _QUERY_CHUNK):
            block = query[start : start + _QUERY_CHUNK]
            sq = sqdist_float64(block, reference, metric)
            if exclude_self:
                rows = torch.arange(block.shape[0], device=sq.device)
                sq[rows, rows + start] = torch.inf
            order = torch.sort(sq, dim=1, stable=True)
            values.append(order.values[:, :k])
            indices.append(order.indices[:, :k])
    return finish(torch.cat(values), metric).to(output_dtype(query)), torch.cat(indices)


def paper_min_distance(
    target: torch.Tensor,
    training: torch.Tensor,
    exclude_self: bool = False,
    block: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The study's min-L2-to-training (boyazeng/weight_memorization, plot_min_distance_to_training.py).

    float32 ``torch.cdist`` of blocks of ``block`` targets against all training rows, diagonal set to +inf when a
    set is compared with itself, then the minimum. This is the baseline users know, kept with its flaws: cdist
    takes the float32 expansion ||a||^2 + ||b||^2 - 2 a.b path (more than 25 rows), which loses every digit for
    near-duplicates and often returns exactly 0 (perf_notes §2.5). The study decides "itself" by object identity
    after the float32 cast, which silently disables exclusion for non-float32 inputs; here it is explicit.

    Returns:
        (min_dist [M] float32, argmin [M] int64) for the M target rows.
    """
    target = target.to(torch.float32)
    training = training.to(torch.float32)
    dists, args = [], []
    with torch.no_grad():
        for start in range(0, target.shape[0], block):
            d = torch.cdist(target[start : start + block], training)
            if exclude_self:
                rows = torch.arange(d.shape[0], device=d.device)
                d[rows, rows + start] = torch.inf
            best = d.min(dim=1)
            dists.append(best.values)
            args.append(best.indices)
    return torch.cat(dists), torch.cat(args)
