"""Generative-shape metrics from Chamfer matrices, as HyperDiffusion reports them (issue 6; study_spec §2.5).

HyperDiffusion's ``evaluation_metrics_3d.py`` (from PointFlow) computes, with G generated and R reference shapes
(the reference set is the test set in the study's tables):

- **MMD** (``lgan_mmd``): minimum matching distance, the mean over reference shapes of the smallest distance to
  any generated shape: ``mean_r min_g D[g, r]`` for ``D = gen_ref [G, R]``. Lower is better.
- **COV** (``lgan_cov``): coverage, the fraction of reference shapes that are the nearest reference of at least
  one generated shape: ``|{argmin_r D[g, r] : g}| / R``. Higher is better.
- **1-NNA** (``knn(M_rr, M_rs, M_ss, 1)["acc"]``): the accuracy of the leave-one-out 1-nearest-neighbour
  classifier that labels each shape of generated ∪ reference by the set of its nearest other shape. 0.5 is
  ideal (the sets cannot be told apart); 1.0 means every shape's nearest neighbour is from its own set.

Ties (which ``torch.min`` and ``torch.topk`` leave unspecified) go to the lowest index here: for COV the lowest
reference index, for 1-NNA the lowest index in HyperDiffusion's stacking order (reference shapes first, then
generated). Distances may come from any symmetric metric; ``shape_metrics`` uses the exact Chamfer distance.
"""
from __future__ import annotations

import torch

from .chamfer import chamfer_matrix


def _distance_matrix(name: str, x: object, rows: int | None = None, cols: int | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D distance matrix; got shape {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating tensor; got {x.dtype}")
    expected = (rows if rows is not None else x.shape[0], cols if cols is not None else x.shape[1])
    if tuple(x.shape) != expected:
        raise ValueError(f"{name} must have shape {expected}; got {tuple(x.shape)}")
    if bool(torch.isnan(x).any()):
        raise ValueError(f"{name} contains NaN")
    return x


def _argmin_lowest(x: torch.Tensor, dim: int) -> torch.Tensor:
    """argmin along ``dim`` with ties to the lowest index (torch.argmin leaves ties unspecified)."""
    minimum = x.amin(dim=dim, keepdim=True)
    positions = torch.arange(x.shape[dim], device=x.device)
    positions = positions.view(-1, 1) if dim == 0 else positions.view(1, -1)
    big = torch.iinfo(torch.int64).max
    return torch.where(x == minimum, positions, big).amin(dim=dim)


def minimum_matching_distance(gen_ref: torch.Tensor) -> float:
    """MMD: the mean over reference shapes of the minimum distance to a generated shape (``lgan_mmd``).

    Args:
        gen_ref: [G, R] distances, row g a generated shape, column r a reference shape (e.g.
            ``chamfer_matrix(generated, reference)``).

    Returns:
        ``mean_r min_g gen_ref[g, r]``, computed in float64.
    """
    d = _distance_matrix("gen_ref", gen_ref)
    return float(d.to(torch.float64).amin(dim=0).mean())


def coverage(gen_ref: torch.Tensor) -> float:
    """COV: the fraction of reference shapes that are some generated shape's nearest reference (``lgan_cov``).

    Args:
        gen_ref: [G, R] distances, rows generated, columns reference.

    Returns:
        ``|{argmin_r gen_ref[g, r] : g < G}| / R`` in [1/R, min(1, G/R)]; ties to the lowest reference index.
    """
    d = _distance_matrix("gen_ref", gen_ref)
    return _argmin_lowest(d, dim=1).unique().numel() / d.shape[1]


def one_nn_accuracy(gen_gen: torch.Tensor, gen_ref: torch.Tensor, ref_ref: torch.Tensor) -> float:
    """1-NNA: leave-one-out 1-nearest-neighbour accuracy on generated ∪ reference (HyperDiffusion's ``knn``).

    HyperDiffusion stacks ``M = [[ref_ref, gen_ref^T], [gen_ref, gen_gen]]`` (reference shapes first), sets the
    diagonal to +inf and, for each shape (a column), predicts the set of the row holding the column's minimum.

    Args:
        gen_gen: [G, G] distances among generated shapes.
        gen_ref: [G, R] distances, rows generated, columns reference.
        ref_ref: [R, R] distances among reference shapes.

    Returns:
        The fraction of the G + R shapes whose nearest other shape is from their own set; 0.5 is ideal. Ties go
        to the lowest row of M.
    """
    d = _distance_matrix("gen_ref", gen_ref)
    g, r = d.shape
    gg = _distance_matrix("gen_gen", gen_gen, g, g)
    rr = _distance_matrix("ref_ref", ref_ref, r, r)
    if gg.device != d.device or rr.device != d.device:
        raise ValueError(f"gen_gen, gen_ref and ref_ref must be on one device; got {gg.device}, {d.device}, "
                         f"{rr.device}")
    dtype = torch.promote_types(torch.promote_types(gg.dtype, d.dtype), rr.dtype)
    m = torch.cat([torch.cat([rr, d.t()], dim=1), torch.cat([d, gg], dim=1)], dim=0).to(dtype)
    m.fill_diagonal_(torch.inf)
    is_reference = torch.arange(r + g, device=m.device) < r
    nearest = _argmin_lowest(m, dim=0)
    return float((is_reference[nearest] == is_reference).double().mean())


def shape_metrics(
    generated: torch.Tensor,
    reference: torch.Tensor,
    *,
    squared: bool = True,
    backend: str = "auto",
) -> dict[str, float]:
    """MMD, COV and 1-NNA of a set of generated shapes against a reference set, with exact Chamfer distances.

    Computes the three Chamfer matrices gen x ref, gen x gen and ref x ref (the last two symmetric: half the
    pairs each) with ``chamfer_matrix``.

    Args:
        generated: [G, P, 3] point clouds (in the study: 2,048 points sampled on each generated mesh, normalised).
        reference: [R, Q, 3] point clouds with the same dtype and device (the study: the test shapes).
        squared: squared (HyperDiffusion) or Euclidean Chamfer distance.
        backend: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"torch"``.

    Returns:
        ``{"mmd": ..., "cov": ..., "1-nna": ...}`` as Python floats (see the module docstring).

    Raises:
        The errors of ``chamfer_matrix``.
    """
    gen_ref = chamfer_matrix(generated, reference, squared=squared, backend=backend)
    gen_gen = chamfer_matrix(generated, squared=squared, backend=backend)
    ref_ref = chamfer_matrix(reference, squared=squared, backend=backend)
    return {
        "mmd": minimum_matching_distance(gen_ref),
        "cov": coverage(gen_ref),
        "1-nna": one_nn_accuracy(gen_gen, gen_ref, ref_ref),
    }
