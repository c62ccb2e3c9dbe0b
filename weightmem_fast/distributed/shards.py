"""Which rows of a sharded set a rank holds: ``shard_rows``, the same balanced contiguous split as
``io.load_zoo(shard=(rank, world))``, and ``Shard``, a rank's rows with their place in the whole set."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..io import _shard_rows


def shard_rows(n_rows: int, rank: int, world: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of an ``n_rows`` set that rank ``rank`` of ``world`` holds.

    ``start = rank * n_rows // world`` and ``stop = (rank + 1) * n_rows // world``: shards differ by at most one
    row, the ranks cover every row once in rank order, and leading ranks get 0 rows when ``n_rows < world``
    (e.g. 2 rows over 3 ranks gives 0, 1, 1). It is io.load_zoo's own split (one implementation), so a rank that
    loads its shard with ``load_zoo(path, shard=(rank, world))`` passes ``offset=start`` to the sharded ops.

    Raises:
        TypeError: n_rows, rank or world is not an int.
        ValueError: n_rows < 0, world < 1, or rank outside [0, world).
    """
    if isinstance(n_rows, bool) or not isinstance(n_rows, int):
        raise TypeError(f"n_rows must be an int; got {type(n_rows).__name__}")
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0; got {n_rows}")
    return _shard_rows(n_rows, (rank, world))


@dataclass(frozen=True)
class Shard:
    """This rank's rows of a set split by rows across the ranks of ``group``, in rank order.

    Attributes:
        rows: [M_r, ...] this rank's rows (M_r may be 0), global rows [offset, offset + M_r).
        offset: the global index of ``rows[0]``.
        total: rows of the whole set (the sum over ranks).
        group: the process group (None: the default group).
    """

    rows: torch.Tensor
    offset: int
    total: int
    group: dist.ProcessGroup | None = None

    @classmethod
    def of(cls, rows: torch.Tensor, group: dist.ProcessGroup | None = None) -> "Shard":
        """Collective (every rank of ``group`` calls it): places every rank's rows in rank order.

        Raises:
            TypeError: ``rows`` is not a tensor (on every rank, naming the rank).
        """
        from .blocks import shard_sizes

        sizes = shard_sizes(rows.shape[0] if isinstance(rows, torch.Tensor) else -1, group)
        if min(sizes) < 0:
            raise TypeError(f"Shard.of: rows must be a torch.Tensor [M_r, ...] on every rank; rank "
                            f"{sizes.index(-1)} passed something else")
        rank = dist.get_rank(group)
        return cls(rows, sum(sizes[:rank]), sum(sizes), group)
