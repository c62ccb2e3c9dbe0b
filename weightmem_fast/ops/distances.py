"""``pairwise_distance``: exact all-pairs distances between flattened checkpoints (issue 3)."""
from __future__ import annotations

import torch

from .. import _check, _dispatch, _ext
from .. import reference as twins
from ..reference.distances import output_dtype
from . import _gram

# Relative error allowed for a GEMM-derived squared distance before the pair is recomputed exactly. For float32
# output: 2e-7 on d^2 is 1e-7 on d, plus 6e-8 of final rounding, inside the 1e-6 contract. float64 output keeps
# 1e-10, about what an exact float64 evaluation at D = 10^6 guarantees.
_REL_TOL = {torch.float32: 2e-7, torch.float64: 1e-10}


def pairwise_distance(
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    metric: str = "l2",
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """Exact distances between every row of ``x`` and every row of ``y``.

    Fast where it can be (a torch GEMM per tile) and exact everywhere: each entry's GEMM error is bounded
    rigorously and any entry whose bound is wider than the output precision is recomputed from the rows with
    float64 direct differences. Near-duplicate checkpoints therefore get their true (tiny) distance, not the 0
    or the noise that the float32 expansion in ``torch.cdist`` gives them.

    Args:
        x: [N, D] float16/bfloat16/float32/float64 tensor, CPU or CUDA, any row stride; one model per row.
        y: [M, D] tensor of the same dtype and device, or None to compare ``x`` with itself.
        metric: ``"l2"`` (Euclidean), ``"sqeuclidean"`` (its square) or ``"cosine"`` (1 - cosine similarity,
            computed from exact differences of the unit rows, so near-parallel rows keep their digits).
        backend: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"torch"`` (the pure-PyTorch float64 reference).

    Returns:
        [N, M] distances, float32 (float64 for float64 inputs). Relative error <= 1e-6 against a float64 oracle
        on the same values (<= 1e-10 for float64 inputs), including exact zeros for duplicate rows.

    Raises:
        TypeError: non-tensor input, non-floating dtype, or dtypes that differ.
        ValueError: not 2-D, empty, widths or devices that differ, NaN/Inf values, unknown metric, all-zero rows
            with ``metric="cosine"``.

    Example:
        >>> import torch, weightmem_fast as wmf
        >>> a = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
        >>> wmf.pairwise_distance(a)
        tensor([[0., 5.],
                [5., 0.]])
    """
    x = _check.matrix("x", x)
    y_given = y is not None
    y = _check.matrix("y", y, like=x, like_name="x") if y_given else x
    metric = _check.choice("metric", metric, _gram.METRICS)
    impl = _dispatch.choose("pairwise_distance", x.device.type, backend)
    check = _gram.InputCheck(x.device, ("x", "y"), metric)
    q, r = _gram.prepare_pair(impl, x, y, metric, check)
    if impl == "torch":
        check.raise_if_failed()
        return twins.pairwise_distance(q.rows, r.rows if y_given else None, metric)

    plan = _gram.GramPlan(impl, q, r, metric)
    out = torch.empty(q.rows.shape[0], r.rows.shape[0], dtype=output_dtype(x), device=x.device)
    rel_tol = _REL_TOL[q.rows.dtype]
    for q0, q1 in plan.query_blocks():
        block = slice(q0, q1)
        for tile in plan.tiles(block):
            _ext.call(
                impl,
                "pairwise_from_gram",
                tile.gram,
                q.rows[block],
                tile.q_sqnorm,
                tile.q_norm,
                _gram.scale_of(q, block),
                r.rows[tile.r0 : tile.r1],
                tile.r_sqnorm,
                tile.r_norm,
                _gram.scale_of(r, slice(tile.r0, tile.r1)),
                plan.gemm_rel,
                plan.operand_rel,
                rel_tol,
                _gram.DISTANCE_OUTPUT[metric],
                out[block, tile.r0 : tile.r1],
            )
    check.raise_if_failed()
    return out
