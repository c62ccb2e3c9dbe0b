"""Sharded searches (issue 10): ``nearest``, ``max_iou``, ``nearest_shape`` and ``aligned_nearest`` with the
reference set split by rows across torch.distributed ranks.

Each rank ranks only its own shard with the single-machine op; one all_gather of every rank's k candidates per
query (values and global indices) lets every rank merge the same top-k (``_protocol``: collective validation, so a
bad argument on one rank fails every rank; the lowest-global-index tie rule). Memory per rank: O(shard + N k world).

Every op here shares one contract: call it on every rank of ``group`` with the same replicated query and the same
settings; every rank returns the same result, equal to the single-machine op on the concatenated shards.
``offset`` (this shard's first global row; None on every rank: shards in rank order, as ``io.load_zoo(path,
shard=(rank, world))`` and ``shard_rows`` give) and ``exclude_self`` with ``query_offset`` (None: the query is the
whole reference set; an int q: query row i is global reference row q + i, so a rank's own block of the reference
set can be the query, as ``own_rows_as_queries`` does) mean the same for all of them.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from .. import _check
from ..layout import ParamLayout
from ..ops._gram import METRICS
from ..ops.chamfer import nearest_shape
from ..ops.iou import MaskInput, max_iou
from ..ops.neighbors import nearest_ranked
from ..packed_masks import PackedMasks
from ..reference.distances import output_dtype
from ..symmetry.aligned import aligned_nearest
from ._protocol import Local, search


def sharded_nearest(
    query: torch.Tensor,
    reference_shard: torch.Tensor,
    k: int = 1,
    *,
    offset: int | None = None,
    exclude_self: bool = False,
    query_offset: int | None = None,
    metric: str = "l2",
    group: dist.ProcessGroup | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``nearest(query, full_reference, k, metric, exclude_self)`` with the reference rows spread over the ranks.

    Call it on every rank of ``group`` with the same query, k, metric and exclude_self. Every rank returns the
    same result, equal to the single-process call on the concatenated shards: the merge ranks by the exact float64
    keys of ``nearest_ranked``, so distances that round to one float32 keep the single call's order.

    Args:
        query: [N, D] floating tensor, the same on every rank (replicated).
        reference_shard: [M_r, D] this rank's reference rows (M_r may be 0), same dtype and device as query.
        k: neighbours per query, 1 <= k <= total rows (total - 1 with exclude_self); may exceed M_r.
        offset: global index of this shard's first row. None (on every rank) places the shards in rank order,
            which is what ``io.load_zoo(path, shard=(rank, world))`` and ``shard_rows`` give.
        exclude_self: query row i never returns global reference row i (or ``query_offset + i``).
        query_offset: with exclude_self, the global row of query row 0 (None: the query is the full reference
            set, N == total rows).
        metric: ``"l2"``, ``"sqeuclidean"`` or ``"cosine"``.
        group: the process group (None: the default group). Its backend must accept tensors on query's device
            (Gloo: CPU; NCCL: CUDA, with ``torch.cuda.set_device`` called, as all_gather_object needs).

    Returns:
        (distances [N, k] ascending, indices [N, k] int64 global row indices), as ``nearest``.

    Raises:
        RuntimeError: no initialised process group; another rank failed (names it).
        TypeError / ValueError: as ``nearest``, raised on every rank; also ranks that disagree on N, k, metric,
            exclude_self or query_offset, offsets that do not tile the rows [0, total) once, and query rows
            [query_offset, query_offset + N) outside them.
    """

    def describe() -> Local:
        q = _check.matrix("query", query)
        if not isinstance(reference_shard, torch.Tensor):
            raise TypeError(f"reference_shard must be a torch.Tensor [M_r, D]; got {type(reference_shard).__name__}")
        if reference_shard.dim() != 2:
            raise ValueError(f"reference_shard must be a 2-D tensor [M_r, D]; got shape {tuple(reference_shard.shape)}")
        _check.choice("metric", metric, METRICS)
        return Local(q.shape[0], reference_shard.shape[0], output_dtype(q), q.device)

    def local_topk(k_local: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return nearest_ranked(query, reference_shard, k_local, metric)

    return search("sharded_nearest", describe, local_topk, k, offset, exclude_self, query_offset, (metric,), False,
                  group)


def sharded_max_iou(
    query: MaskInput,
    reference_shard: MaskInput,
    k: int = 1,
    *,
    offset: int | None = None,
    exclude_self: bool = False,
    query_offset: int | None = None,
    group: dist.ProcessGroup | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``max_iou(query, full_reference, k, exclude_self)`` with the reference error sets spread over the ranks.

    Same contract as ``sharded_nearest`` (replicated query, ``offset``, ``group``, errors on every rank); IoU
    values are exact, so the result equals the single-process call exactly.

    Args:
        query: [N, S] bool tensor or PackedMasks, the same on every rank.
        reference_shard: [M_r, S] this rank's reference masks (M_r may be 0), same S and device.
        k, offset, exclude_self, query_offset, group: as ``sharded_nearest``.

    Returns:
        (IoU [N, k] float32 descending, indices [N, k] int64 global row indices), as ``max_iou``.
    """

    def describe() -> Local:
        n = _mask_rows("query", query)
        if n == 0:
            raise ValueError("query must hold at least one mask; got 0")
        return Local(n, _mask_rows("reference_shard", reference_shard), torch.float32, query.device)

    def local_topk(k_local: int) -> tuple[torch.Tensor, torch.Tensor, None]:
        return (*max_iou(query, reference_shard, k_local), None)

    return search("sharded_max_iou", describe, local_topk, k, offset, exclude_self, query_offset, (), True, group)



def sharded_nearest_shape(
    query: torch.Tensor,
    reference_shard: torch.Tensor,
    k: int = 1,
    *,
    offset: int | None = None,
    exclude_self: bool = False,
    query_offset: int | None = None,
    squared: bool = True,
    group: dist.ProcessGroup | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``nearest_shape(query, full_reference, k, exclude_self, squared=...)`` with the reference clouds spread over
    the ranks (module docstring: replicated query, ``offset``, errors on every rank).

    Args:
        query: [N, P, 3] float clouds, the same on every rank.
        reference_shard: [M_r, Q, 3] this rank's reference clouds (M_r may be 0), same dtype and device.
        k, offset, exclude_self, query_offset, group: as ``sharded_nearest``.
        squared: squared (HyperDiffusion) or Euclidean Chamfer distances, as ``nearest_shape``.

    Returns:
        (Chamfer distances [N, k] ascending, float32 or float64 as ``nearest_shape``; indices [N, k] int64 global
        row indices, ties to the lowest).
    """

    def describe() -> Local:
        q = _check.point_clouds("query", query, batched=True)
        if not isinstance(reference_shard, torch.Tensor) or reference_shard.dim() != 3:
            raise ValueError(f"reference_shard must be a 3-D tensor [M_r, Q, 3]; got {_shape(reference_shard)}")
        if not isinstance(squared, bool):
            raise TypeError(f"squared must be a bool; got {type(squared).__name__}")
        dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
        return Local(q.shape[0], reference_shard.shape[0], dtype, q.device)

    def local_topk(k_local: int) -> tuple[torch.Tensor, torch.Tensor, None]:
        return (*nearest_shape(query, reference_shard, k_local, squared=squared), None)

    return search("sharded_nearest_shape", describe, local_topk, k, offset, exclude_self, query_offset, (squared,),
                  False, group)


def sharded_aligned_nearest(
    query: torch.Tensor,
    reference_shard: torch.Tensor,
    layout: ParamLayout,
    k: int = 1,
    *,
    offset: int | None = None,
    exclude_self: bool = False,
    query_offset: int | None = None,
    method: str = "exact",
    template: nn.Module | None = None,
    group: dist.ProcessGroup | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``aligned_nearest(query, full_reference, layout, k, exclude_self, method=..., template=...)[:2]`` with the
    reference models spread over the ranks (module docstring: replicated query, ``offset``, errors on every rank).

    The permutations are not gathered ([N, k, H] per rank would dominate the payload); recompute the ones you need
    with ``symmetry.aligned_distance(query[a], reference_row, layout)`` on the rank that holds the row.

    Args:
        query: [N, D] float32/float64 flat weights in ``layout``, the same on every rank.
        reference_shard: [M_r, D] this rank's reference models (M_r may be 0), same dtype and device.
        layout, method, template: as ``aligned_nearest``.
        k, offset, exclude_self, query_offset, group: as ``sharded_nearest``.

    Returns:
        (aligned distances [N, k] ascending in query's dtype, indices [N, k] int64 global row indices, ties to
        the lowest).
    """

    def describe() -> Local:
        q = _check.matrix("query", query)
        if not isinstance(reference_shard, torch.Tensor) or reference_shard.dim() != 2:
            raise ValueError(f"reference_shard must be a 2-D tensor [M_r, D]; got {_shape(reference_shard)}")
        if not isinstance(layout, ParamLayout):
            raise TypeError(f"layout must be a ParamLayout; got {type(layout).__name__}")
        _check.choice("method", method, ("exact", "weight_matching"))
        return Local(q.shape[0], reference_shard.shape[0], q.dtype, q.device)

    def local_topk(k_local: int) -> tuple[torch.Tensor, torch.Tensor, None]:
        return (*aligned_nearest(query, reference_shard, layout, k_local, method=method, template=template)[:2], None)

    return search("sharded_aligned_nearest", describe, local_topk, k, offset, exclude_self, query_offset, (method,),
                  False, group)


def _mask_rows(name: str, masks: object) -> int:
    if isinstance(masks, PackedMasks):
        return len(masks)
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"{name} must be a bool torch.Tensor [rows, S] or PackedMasks; got {type(masks).__name__}")
    if masks.dim() != 2:
        raise ValueError(f"{name} must be a 2-D bool tensor [rows, S]; got shape {tuple(masks.shape)}")
    return masks.shape[0]


def _shape(x: object) -> object:
    return f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
