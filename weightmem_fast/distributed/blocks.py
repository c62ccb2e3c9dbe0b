"""Moving rows of a set sharded in rank order between ranks (issue 10): every rank's rows in global order, rows
picked by global index, and each rank's block in turn as a replicated query.

Shards are in rank order here (rank r holds rows [offset_r, offset_r + M_r), offsets the running sum of the shard
sizes), as ``io.load_zoo(path, shard=(rank, world))`` and ``shard_rows`` give. Call every function on every rank of
``group`` with arguments of the same kind and trailing shape.
"""
from __future__ import annotations

from typing import Callable, TypeVar

import torch
import torch.distributed as dist

from ..packed_masks import PackedMasks
from ._protocol import exchange

Block = TypeVar("Block", torch.Tensor, PackedMasks)
# Same-width integers for a float's bits: summing one owner's bits with zeros from every other rank is exact.
_BITS = {torch.float32: torch.int32, torch.float64: torch.int64, torch.int64: torch.int64, torch.int32: torch.int32}


def shard_sizes(rows: int, group: dist.ProcessGroup | None = None) -> list[int]:
    """Every rank's row count, in rank order (one all_gather of an int)."""
    return [int(v) for v in _all_gather_scalar(rows, group)]


def gather_rows(local: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """Every rank's ``local`` rows [M_r, ...] concatenated in rank order: [sum M_r, ...] on every rank.

    Bool tensors travel as uint8 (Gloo has no bool collectives). Memory: world x max M_r rows per rank, so use it
    for per-model results (a few numbers per row), not for the sharded set itself.
    """
    sizes = shard_sizes(local.shape[0], group)
    wire = local.to(torch.uint8) if local.dtype == torch.bool else local.contiguous()
    padded = wire.new_zeros((max(sizes), *wire.shape[1:]))
    padded[: wire.shape[0]] = wire
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded, group=group)
    out = torch.cat([part[:size] for part, size in zip(parts, sizes)])
    return out.to(torch.bool) if local.dtype == torch.bool else out


def take_rows(shard: torch.Tensor, offset: int, indices: torch.Tensor,
              group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """Rows ``full[indices]`` of the set whose rows [offset, offset + M_r) this rank holds as ``shard`` [M_r, D].

    Bit-exact (each row travels as its integer bits, summed with zeros from the ranks that do not hold it, so even
    -0.0 survives); memory and traffic O(len(indices) x D). ``indices`` must be the same on every rank, each in
    [0, total rows); repeats are allowed.

    Returns:
        [len(indices), D], shard's dtype and device, on every rank.
    """
    bits = _BITS[shard.dtype]
    out = torch.zeros(indices.shape[0], shard.shape[1], dtype=bits, device=shard.device)
    local = indices - offset
    mine = (local >= 0) & (local < shard.shape[0])
    out[mine] = shard[local[mine]].contiguous().view(bits)
    dist.all_reduce(out, group=group)
    return out.view(shard.dtype)


def own_rows_as_queries(local: Block, search: Callable[[Block, int], tuple[torch.Tensor, ...]],
                        group: dist.ProcessGroup | None = None) -> tuple[torch.Tensor, ...]:
    """``search(block, start)`` for every rank's block of the sharded set in turn (broadcast from its owner, so
    it is a replicated query; ``start`` its first global row), results concatenated in global row order.

    This is how the sharded set is compared with itself: ``search`` is a sharded op with ``exclude_self=True,
    query_offset=start``. Memory per rank: its shard, one other rank's block, and the results.

    Args:
        local: this rank's rows, [M_r, ...] tensor or PackedMasks (M_r may be 0); same trailing shape and dtype on
            every rank.
        search: called once per non-empty block, on every rank alike; returns tensors with one row per query.

    Returns:
        search's outputs for all rows [sum M_r, ...], on every rank.

    Raises:
        RuntimeError: no initialised process group.
        ValueError: ranks whose rows differ in trailing shape, dtype or mask width (on every rank).
    """
    words = local.words if isinstance(local, PackedMasks) else local
    n_bits = local.n_bits if isinstance(local, PackedMasks) else None
    described = exchange("own_rows_as_queries", lambda: (words.shape[0], tuple(words.shape[1:]), words.dtype, n_bits),
                         group)
    kinds = [kind for _, *kind in described]
    if any(kind != kinds[0] for kind in kinds):
        raise ValueError(f"own_rows_as_queries: every rank's rows must have the same trailing shape, dtype and "
                         f"mask width; got {kinds} by rank")
    sizes = [rows for rows, *_ in described]
    rank = dist.get_rank(group)
    parts: list[tuple[torch.Tensor, ...]] = []
    for source, rows in enumerate(sizes):
        if rows == 0:
            continue
        buffer = words.contiguous() if source == rank else words.new_empty((rows, *words.shape[1:]))
        dist.broadcast(buffer, src=_global_rank(group, source), group=group)
        block = buffer if n_bits is None else PackedMasks(buffer, n_bits)
        parts.append(search(block, sum(sizes[:source])))
    return tuple(torch.cat(columns) for columns in zip(*parts))


def _all_gather_scalar(value: int, group: dist.ProcessGroup | None) -> list[int]:
    mine = torch.tensor([value], dtype=torch.int64)
    if dist.get_backend(group) == "nccl":
        mine = mine.cuda()
    values = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(values, mine, group=group)
    return [int(v) for v in values]


def _global_rank(group: dist.ProcessGroup | None, rank: int) -> int:
    return rank if group is None else dist.get_global_rank(group, rank)
