"""Which reference rows a rank holds: the same balanced contiguous split as ``io.load_zoo(shard=(rank, world))``."""
from __future__ import annotations

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
