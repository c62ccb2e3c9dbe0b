"""The audit's search ops over a reference set sharded by rows across torch.distributed ranks (issue 10).

Each rank holds only its shard (``io.load_zoo(path, shard=(rank, world))`` or ``shard_rows``); results equal the
single-machine ops on the full set, on every rank.
"""
from .neighbors import sharded_max_iou, sharded_nearest
from .shards import shard_rows

__all__ = ["shard_rows", "sharded_max_iou", "sharded_nearest"]
