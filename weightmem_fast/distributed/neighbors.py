"""Sharded ``nearest`` and ``max_iou`` (issue 10): the reference set split by rows across torch.distributed ranks.

Each rank ranks only its own shard with the single-machine op; one all_gather of every rank's k candidates per
query (values and global indices) lets every rank merge the same top-k. Memory per rank: O(shard + N k world).

Protocol. Every rank runs the same steps, so no rank waits in a collective that another skipped:
1. Local argument checks; an error is held, not raised.
2. all_gather_object of (query rows, shard rows, offset, settings, held error). Every rank sees every rank's sizes
   and errors, so each raises the same error (the failing rank its own exception, the others a RuntimeError
   naming that rank), or derives the same global offsets and checks k against the global row count.
3. Local top-k with the single-machine op; an exception here is held too.
4. all_gather of one float64 payload per rank: an error flag, then [N, k] values and global indices padded to k
   (float64 holds float32/float64 values and indices below 2^53 exactly). A flagged rank makes every rank raise;
   otherwise each merges by (value, global index), so ties go to the lowest global index, as on one machine.

A rank that dies or never calls the op makes the others fail in the next collective: Gloo raises when the
peer's connection closes, or at the latest when the process group's timeout (``init_process_group(timeout=...)``)
expires. Nothing here sets timeouts or retries; that stays the caller's choice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist

from .. import _check
from ..ops._gram import METRICS
from ..ops.iou import MaskInput, max_iou
from ..ops.neighbors import nearest
from ..packed_masks import PackedMasks
from ..reference.distances import output_dtype

LocalTopK = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


def sharded_nearest(
    query: torch.Tensor,
    reference_shard: torch.Tensor,
    k: int = 1,
    *,
    offset: int | None = None,
    exclude_self: bool = False,
    metric: str = "l2",
    group: dist.ProcessGroup | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``nearest(query, full_reference, k, metric, exclude_self)`` with the reference rows spread over the ranks.

    Call it on every rank of ``group`` with the same query, k, metric and exclude_self. Every rank returns the
    same result, equal to the single-process call on the concatenated shards (up to distances that differ in
    float64 but round to the same float32: the merge orders those by index).

    Args:
        query: [N, D] floating tensor, the same on every rank (replicated).
        reference_shard: [M_r, D] this rank's reference rows (M_r may be 0), same dtype and device as query.
        k: neighbours per query, 1 <= k <= total rows (total - 1 with exclude_self); may exceed M_r.
        offset: global index of this shard's first row. None (on every rank) places the shards in rank order,
            which is what ``io.load_zoo(path, shard=(rank, world))`` and ``shard_rows`` give.
        exclude_self: the query is the full reference set (N == total rows), and query row i never returns
            global reference row i.
        metric: ``"l2"``, ``"sqeuclidean"`` or ``"cosine"``.
        group: the process group (None: the default group). Its backend must accept tensors on query's device
            (Gloo: CPU; NCCL: CUDA, with ``torch.cuda.set_device`` called, as all_gather_object needs).

    Returns:
        (distances [N, k] ascending, indices [N, k] int64 global row indices), as ``nearest``.

    Raises:
        RuntimeError: no initialised process group; another rank failed (names it).
        TypeError / ValueError: as ``nearest``, raised on every rank; also ranks that disagree on N, k, metric
            or exclude_self, and offsets that do not tile the rows [0, total) once.
    """

    def describe() -> _Local:
        q = _check.matrix("query", query)
        if not isinstance(reference_shard, torch.Tensor):
            raise TypeError(f"reference_shard must be a torch.Tensor [M_r, D]; got {type(reference_shard).__name__}")
        if reference_shard.dim() != 2:
            raise ValueError(f"reference_shard must be a 2-D tensor [M_r, D]; got shape {tuple(reference_shard.shape)}")
        _check.choice("metric", metric, METRICS)
        return _Local(q.shape[0], reference_shard.shape[0], output_dtype(q), q.device)

    def local_topk(k_local: int) -> tuple[torch.Tensor, torch.Tensor]:
        return nearest(query, reference_shard, k_local, metric)

    return _search("sharded_nearest", describe, local_topk, k, offset, exclude_self, (metric,), False, group)


def sharded_max_iou(
    query: MaskInput,
    reference_shard: MaskInput,
    k: int = 1,
    *,
    offset: int | None = None,
    exclude_self: bool = False,
    group: dist.ProcessGroup | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``max_iou(query, full_reference, k, exclude_self)`` with the reference error sets spread over the ranks.

    Same contract as ``sharded_nearest`` (replicated query, ``offset``, ``group``, errors on every rank); IoU
    values are exact, so the result equals the single-process call exactly.

    Args:
        query: [N, S] bool tensor or PackedMasks, the same on every rank.
        reference_shard: [M_r, S] this rank's reference masks (M_r may be 0), same S and device.
        k, offset, exclude_self, group: as ``sharded_nearest``.

    Returns:
        (IoU [N, k] float32 descending, indices [N, k] int64 global row indices), as ``max_iou``.
    """

    def describe() -> _Local:
        n = _mask_rows("query", query)
        if n == 0:
            raise ValueError("query must hold at least one mask; got 0")
        return _Local(n, _mask_rows("reference_shard", reference_shard), torch.float32, query.device)

    def local_topk(k_local: int) -> tuple[torch.Tensor, torch.Tensor]:
        return max_iou(query, reference_shard, k_local)

    return _search("sharded_max_iou", describe, local_topk, k, offset, exclude_self, (), True, group)


@dataclass(frozen=True)
class _Local:
    """This rank's sizes, and the dtype and device every rank's result will have."""

    n_queries: int
    shard_rows: int
    value_dtype: torch.dtype
    device: torch.device


@dataclass(frozen=True)
class _Status:
    """What step 2 tells every rank about one rank (picklable for all_gather_object)."""

    n_queries: int | None
    shard_rows: int | None
    offset: int | None
    settings: tuple
    error: str | None


def _mask_rows(name: str, masks: object) -> int:
    if isinstance(masks, PackedMasks):
        return len(masks)
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"{name} must be a bool torch.Tensor [rows, S] or PackedMasks; got {type(masks).__name__}")
    if masks.dim() != 2:
        raise ValueError(f"{name} must be a 2-D bool tensor [rows, S]; got shape {tuple(masks.shape)}")
    return masks.shape[0]


def _search(
    op: str,
    describe: Callable[[], _Local],
    local_topk: LocalTopK,
    k: int,
    offset: int | None,
    exclude_self: bool,
    settings: tuple,
    descending: bool,
    group: dist.ProcessGroup | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 1-4 of the module docstring, shared by both ops."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(f"{op} needs an initialised process group; call torch.distributed.init_process_group "
                           "first (torchrun sets its environment), or use the single-machine op")
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    local, held = None, None
    try:
        local = describe()
        _check_local(k, offset, exclude_self)
    except (TypeError, ValueError) as err:
        held = err
    mine = _Status(
        local and local.n_queries, local and local.shard_rows, offset, (k, exclude_self, *settings),
        None if held is None else f"{type(held).__name__}: {held}",
    )
    statuses: list[_Status] = [mine] * world
    dist.all_gather_object(statuses, mine, group=group)
    _raise_if_failed(op, held, [(r, s.error) for r, s in enumerate(statuses) if s.error is not None])
    assert local is not None  # no rank failed, this one included
    offsets = _global_offsets(op, statuses, exclude_self)
    total = sum(s.shard_rows for s in statuses)
    _check.neighbour_count(k, total - int(exclude_self), exclude_self)

    n = local.n_queries
    try:
        values, indices = _local_candidates(local_topk, local, k, exclude_self, offsets[rank], descending)
        payload = torch.cat([torch.zeros(1, dtype=torch.float64, device=local.device),
                             torch.stack([values, indices.to(torch.float64)], dim=2).flatten()])
    except Exception as err:  # held, then re-raised below on this rank, so the others do not wait in all_gather
        held = err
        payload = torch.ones(1 + n * k * 2, dtype=torch.float64, device=local.device)
    gathered = [torch.empty_like(payload) for _ in range(world)]
    dist.all_gather(gathered, payload, group=group)
    failed = [(r, "an error while ranking its shard (raised on that rank)") for r, g in enumerate(gathered) if g[0]]
    _raise_if_failed(op, held, failed)
    values, indices = _merge([g[1:].view(n, k, 2) for g in gathered], k, descending)
    return values.to(local.value_dtype), indices


def _check_local(k: object, offset: object, exclude_self: object) -> None:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int; got {type(k).__name__}")
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int) or offset < 0):
        raise ValueError(f"offset must be None or an int >= 0 (this shard's first global row); got {offset!r}")
    if not isinstance(exclude_self, bool):
        raise TypeError(f"exclude_self must be a bool; got {type(exclude_self).__name__}")


def _raise_if_failed(op: str, held: BaseException | None, failed: list[tuple[int, str | None]]) -> None:
    """The failing rank raises its own exception; every other rank a RuntimeError naming the first failing rank."""
    if held is not None:
        raise held
    if failed:
        rank, error = failed[0]
        raise RuntimeError(f"{op}: rank {rank} failed with {error}; every rank stops so that none waits for it")


def _global_offsets(op: str, statuses: list[_Status], exclude_self: bool) -> list[int]:
    """Each rank's first global row, after the checks that need every rank's sizes (identical on every rank)."""
    per_rank = lambda field: [getattr(s, field) for s in statuses]  # noqa: E731
    if len(set(per_rank("settings"))) > 1:
        raise ValueError(f"{op}: every rank must pass the same (k, exclude_self, ...); got {per_rank('settings')} "
                         "by rank")
    if len(set(per_rank("n_queries"))) > 1:
        raise ValueError(f"{op}: query must be the same set on every rank (replicated); got N = "
                         f"{per_rank('n_queries')} by rank")
    rows, given = per_rank("shard_rows"), per_rank("offset")
    total = sum(rows)
    if all(o is None for o in given):
        offsets = [sum(rows[:r]) for r in range(len(rows))]
    elif any(o is None for o in given):
        raise ValueError(f"{op}: pass offset on every rank or on none; got {given} by rank")
    else:
        offsets = given
        spans = sorted((o, o + m) for o, m in zip(offsets, rows) if m > 0)
        ends = [0] + [stop for _, stop in spans]
        if any(start != end for (start, _), end in zip(spans, ends)) or ends[-1] != total:
            raise ValueError(f"{op}: the shards must tile the global rows [0, {total}) once; got (offset, rows) "
                             f"{list(zip(offsets, rows))} by rank")
    if exclude_self and statuses[0].n_queries != total:
        raise ValueError(f"{op}: exclude_self=True means the query is the whole reference set, so N must equal the "
                         f"total shard rows; got N = {statuses[0].n_queries} and {total} rows")
    return offsets


def _local_candidates(
    local_topk: LocalTopK, local: _Local, k: int, exclude_self: bool, offset: int, descending: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """This shard's best min(k, M_r) per query: ([N, k] float64 values, [N, k] int64 global indices), padded
    with the worst value (+inf, or -inf for similarities) and index -1."""
    n, rows, device = local.n_queries, local.shard_rows, local.device
    pad = -torch.inf if descending else torch.inf
    values = torch.full((n, k), pad, dtype=torch.float64, device=device)
    indices = torch.full((n, k), -1, dtype=torch.int64, device=device)
    if rows == 0:
        return values, indices
    # exclude_self: rank one extra row without exclusion and drop the self match (global index == query row) if
    # it is listed; keeping the first k of the rest is exact whether or not the self match made the list.
    k_local = min(k + int(exclude_self), rows)
    v, i = local_topk(k_local)
    v, i = v.to(torch.float64), i + offset
    if exclude_self:
        drop = i == torch.arange(n, device=device)[:, None]
        kept_first = torch.sort(drop.to(torch.int8), dim=1, stable=True).indices
        drop = drop.gather(1, kept_first)
        v = v.gather(1, kept_first).masked_fill(drop, pad)
        i = i.gather(1, kept_first).masked_fill(drop, -1)
    used = min(k_local, k)
    values[:, :used], indices[:, :used] = v[:, :used], i[:, :used]
    return values, indices


def _merge(parts: list[torch.Tensor], k: int, descending: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best of every rank's [N, k, 2] candidates by (value, global index): a sort by index, then a stable
    sort by value, so equal values keep the lowest index first. Padding (worst value) sorts last."""
    both = torch.cat(parts, dim=1)
    values, indices = both[..., 0], both[..., 1].to(torch.int64)
    by_index = torch.sort(indices, dim=1).indices
    values, indices = values.gather(1, by_index), indices.gather(1, by_index)
    by_value = torch.sort(values, dim=1, stable=True, descending=descending).indices[:, :k]
    return values.gather(1, by_value), indices.gather(1, by_value)
