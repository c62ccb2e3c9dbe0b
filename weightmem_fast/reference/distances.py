"""Twin of ``weightmem_fast.ops.distances``: exact distances by float64 direct differences."""
from __future__ import annotations

from typing import Iterator

import torch

# Rows per chunk so a float64 chunk of either input stays near this many bytes.
_CHUNK_BYTES = 32 << 20


def _row_chunks(x: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    rows = max(1, _CHUNK_BYTES // (8 * x.shape[1]))
    for start in range(0, x.shape[0], rows):
        yield start, x[start : start + rows].to(torch.float64)


def row_sqnorms(x: torch.Tensor) -> torch.Tensor:
    """[R] float64 squared norms, accumulated in float64."""
    out = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    with torch.no_grad():
        for start, chunk in _row_chunks(x):
            out[start : start + chunk.shape[0]] = (chunk * chunk).sum(dim=1)
    return out


def _unit_rows(chunk: torch.Tensor) -> torch.Tensor:
    return chunk / torch.linalg.vector_norm(chunk, dim=1, keepdim=True)


def sqdist_float64(x: torch.Tensor, y: torch.Tensor, metric: str) -> torch.Tensor:
    """[N, M] float64 squared distances (of unit rows for cosine) from direct differences, chunked over both sides."""
    out = torch.empty(x.shape[0], y.shape[0], dtype=torch.float64, device=x.device)
    with torch.no_grad():
        for i, xc in _row_chunks(x):
            if metric == "cosine":
                xc = _unit_rows(xc)
            for j, yc in _row_chunks(y):
                if metric == "cosine":
                    yc = _unit_rows(yc)
                # donot_use_mm: differences, never the cancelling expansion.
                d = torch.cdist(xc, yc, compute_mode="donot_use_mm_for_euclid_dist")
                out[i : i + xc.shape[0], j : j + yc.shape[0]] = d * d
    return out


def output_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64; 16- and 32-bit inputs report float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def finish(sqdist: torch.Tensor, metric: str) -> torch.Tensor:
    """Squared distance (float64) -> the metric's value: l2 = sqrt, sqeuclidean as is, cosine = 1 - cos = d^2 / 2."""
    if metric == "l2":
        return sqdist.sqrt()
    if metric == "cosine":
        return sqdist / 2
    return sqdist


def pairwise_distance(x: torch.Tensor, y: torch.Tensor | None = None, metric: str = "l2") -> torch.Tensor:
    """All-pairs distances [N, M]; ``y=None`` compares x with itself. See ``weightmem_fast.pairwise_distance``."""
    y = x if y is None else y
    return finish(sqdist_float64(x, y, metric), metric).to(output_dtype(x))
