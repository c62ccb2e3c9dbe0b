"""The collective step every sharded search shares (issue 10): validate together, rank the local shard, merge.

Every rank runs the same steps, so no rank waits in a collective that another skipped:
1. Local argument checks; an error is held, not raised.
2. all_gather_object of (query rows, shard rows, offset, settings, held error). Every rank sees every rank's sizes
   and errors, so each raises the same error (the failing rank its own exception, the others a RuntimeError
   naming that rank), or derives the same global offsets and checks k against the global row count.
3. Local top-k with the single-machine op; an exception here is held too. Besides values and indices it may give
   float64 ranking keys (``nearest_ranked``'s exact squared distances): float32 distances that differ in float64
   can round to one value, and the keys keep their order.
4. all_gather of one float64 payload per rank: an error flag, then [N, k] values, keys and global indices padded
   to k (float64 holds float32/float64 values and indices below 2^53 exactly). A flagged rank makes every rank
   raise; otherwise each merges by (key, global index), so ties go to the lowest global index, as on one machine.

A rank that dies or never calls the op makes the others fail in the next collective: Gloo raises when the
peer's connection closes, or at the latest when the process group's timeout (``init_process_group(timeout=...)``)
expires. Nothing here sets timeouts or retries; that stays the caller's choice.

A new sharded op is a ``describe`` (local checks, sizes) and a ``local_topk`` (the single-machine op on the shard,
returning (values, indices, keys or None when the values are their own exact keys)) handed to ``search``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist

from .. import _check

# k -> (values [N, k], indices [N, k], float64 ranking keys [N, k] or None: the values rank exactly).
LocalTopK = Callable[[int], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]


@dataclass(frozen=True)
class Local:
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


def require_group(op: str) -> None:
    """Raises the RuntimeError every sharded op gives without an initialised process group."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(f"{op} needs an initialised process group; call torch.distributed.init_process_group "
                           "first (torchrun sets its environment), or use the single-machine op")


def exchange(op: str, check: Callable[[], Any], group: dist.ProcessGroup | None) -> list[Any]:
    """Runs ``check()`` on this rank and all-gathers its value (or its TypeError / ValueError) from every rank.

    Returns every rank's value, in rank order, once no rank failed; otherwise raises on every rank
    (``raise_if_failed``). Values must be picklable."""
    require_group(op)
    held, value = None, None
    try:
        value = check()
    except (TypeError, ValueError) as err:
        held = err
    mine = (value, None if held is None else f"{type(held).__name__}: {held}")
    gathered: list[Any] = [mine] * dist.get_world_size(group)
    dist.all_gather_object(gathered, mine, group=group)
    raise_if_failed(op, held, [(r, error) for r, (_, error) in enumerate(gathered) if error is not None])
    return [v for v, _ in gathered]


def raise_if_failed(op: str, held: BaseException | None, failed: list[tuple[int, str | None]]) -> None:
    """The failing rank raises its own exception; every other rank a RuntimeError naming the first failing rank."""
    if held is not None:
        raise held
    if failed:
        rank, error = failed[0]
        raise RuntimeError(f"{op}: rank {rank} failed with {error}; every rank stops so that none waits for it")


def search(
    op: str,
    describe: Callable[[], Local],
    local_topk: LocalTopK,
    k: int,
    offset: int | None,
    exclude_self: bool,
    query_offset: int | None,
    settings: tuple,
    descending: bool,
    group: dist.ProcessGroup | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 1-4 of the module docstring. ``exclude_self`` drops global row ``query_offset + i`` for query row i
    (``query_offset`` None: the query is the whole reference set, N == total rows)."""
    require_group(op)
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    local, held = None, None
    try:
        local = describe()
        _check_local(k, offset, exclude_self, query_offset)
    except (TypeError, ValueError) as err:
        held = err
    mine = _Status(
        local and local.n_queries, local and local.shard_rows, offset, (k, exclude_self, query_offset, *settings),
        None if held is None else f"{type(held).__name__}: {held}",
    )
    statuses: list[_Status] = [mine] * world
    dist.all_gather_object(statuses, mine, group=group)
    raise_if_failed(op, held, [(r, s.error) for r, s in enumerate(statuses) if s.error is not None])
    assert local is not None  # no rank failed, this one included
    offsets = _global_offsets(op, statuses, exclude_self, query_offset)
    total = sum(s.shard_rows for s in statuses)
    _check.neighbour_count(k, total - int(exclude_self), exclude_self)

    n = local.n_queries
    try:
        values, keys, indices = _local_candidates(local_topk, local, k, exclude_self, query_offset or 0,
                                                  offsets[rank], descending)
        payload = torch.cat([torch.zeros(1, dtype=torch.float64, device=local.device),
                             torch.stack([values, keys, indices.to(torch.float64)], dim=2).flatten()])
    except Exception as err:  # held, then re-raised below on this rank, so the others do not wait in all_gather
        held = err
        payload = torch.ones(1 + n * k * 3, dtype=torch.float64, device=local.device)
    gathered = [torch.empty_like(payload) for _ in range(world)]
    dist.all_gather(gathered, payload, group=group)
    failed = [(r, "an error while ranking its shard (raised on that rank)") for r, g in enumerate(gathered) if g[0]]
    raise_if_failed(op, held, failed)
    values, indices = _merge([g[1:].view(n, k, 3) for g in gathered], k, descending)
    return values.to(local.value_dtype), indices


def _check_local(k: object, offset: object, exclude_self: object, query_offset: object) -> None:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int; got {type(k).__name__}")
    for name, value in (("offset", offset), ("query_offset", query_offset)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be None or an int >= 0 (a global row index); got {value!r}")
    if not isinstance(exclude_self, bool):
        raise TypeError(f"exclude_self must be a bool; got {type(exclude_self).__name__}")
    if query_offset is not None and not exclude_self:
        raise ValueError("query_offset places the query rows in the reference set for exclude_self=True; pass "
                         "query_offset=None without exclude_self")


def _global_offsets(op: str, statuses: list[_Status], exclude_self: bool, query_offset: int | None) -> list[int]:
    """Each rank's first global row, after the checks that need every rank's sizes (identical on every rank)."""
    per_rank = lambda field: [getattr(s, field) for s in statuses]  # noqa: E731
    if len(set(per_rank("settings"))) > 1:
        raise ValueError(f"{op}: every rank must pass the same (k, exclude_self, query_offset, ...); got "
                         f"{per_rank('settings')} by rank")
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
    n = statuses[0].n_queries
    if exclude_self and query_offset is None and n != total:
        raise ValueError(f"{op}: exclude_self=True without query_offset means the query is the whole reference "
                         f"set, so N must equal the total shard rows; got N = {n} and {total} rows")
    if exclude_self and query_offset is not None and query_offset + n > total:
        raise ValueError(f"{op}: query_offset + N must be at most the total shard rows (the query is rows "
                         f"[query_offset, query_offset + N) of the reference set); got {query_offset} + {n} > {total}")
    return offsets


def _local_candidates(
    local_topk: LocalTopK, local: Local, k: int, exclude_self: bool, query_offset: int, offset: int,
    descending: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """This shard's best min(k, M_r) per query: ([N, k] float64 values, [N, k] float64 keys, [N, k] int64 global
    indices), padded with the worst value and key (+inf, or -inf for similarities) and index -1."""
    n, rows, device = local.n_queries, local.shard_rows, local.device
    pad = -torch.inf if descending else torch.inf
    values = torch.full((n, k), pad, dtype=torch.float64, device=device)
    keys = values.clone()
    indices = torch.full((n, k), -1, dtype=torch.int64, device=device)
    if rows == 0:
        return values, keys, indices
    # exclude_self: rank one extra row without exclusion and drop the self match (global index == query's own
    # global row) if it is listed; keeping the first k of the rest is exact whether or not the self match made it.
    k_local = min(k + int(exclude_self), rows)
    v, i, key = local_topk(k_local)
    v, i = v.to(torch.float64), i + offset
    key = v if key is None else key.to(torch.float64)
    if exclude_self:
        drop = i == torch.arange(query_offset, query_offset + n, device=device)[:, None]
        kept_first = torch.sort(drop.to(torch.int8), dim=1, stable=True).indices
        drop = drop.gather(1, kept_first)
        v = v.gather(1, kept_first).masked_fill(drop, pad)
        key = key.gather(1, kept_first).masked_fill(drop, pad)
        i = i.gather(1, kept_first).masked_fill(drop, -1)
    used = min(k_local, k)
    values[:, :used], keys[:, :used], indices[:, :used] = v[:, :used], key[:, :used], i[:, :used]
    return values, keys, indices


def _merge(parts: list[torch.Tensor], k: int, descending: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best of every rank's [N, k, 3] (value, key, index) candidates by (key, global index): a sort by index,
    then a stable sort by key, so equal keys keep the lowest index first. Padding (worst key) sorts last."""
    every = torch.cat(parts, dim=1)
    values, keys, indices = every[..., 0], every[..., 1], every[..., 2].to(torch.int64)
    by_index = torch.sort(indices, dim=1).indices
    values, keys, indices = values.gather(1, by_index), keys.gather(1, by_index), indices.gather(1, by_index)
    by_key = torch.sort(keys, dim=1, stable=True, descending=descending).indices[:, :k]
    return values.gather(1, by_key), indices.gather(1, by_key)
