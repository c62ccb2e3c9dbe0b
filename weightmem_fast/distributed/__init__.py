"""The audit and its search ops over sets sharded by rows across torch.distributed ranks (issue 10).

Each rank holds only its shard (``io.load_zoo(path, shard=(rank, world))`` or ``shard_rows``); results equal the
single-machine ops on the full set, on every rank. ``audit(..., sharded=True)`` runs the whole audit this way
(``distributed.audit``); ``launch`` starts the default group from torchrun's environment. docs/distributed.md has
the design and the scaling numbers.
"""
from .blocks import gather_rows, own_rows_as_queries, take_rows
from .evaluate import evaluate_rows, sharded_evaluate
from .neighbors import sharded_aligned_nearest, sharded_max_iou, sharded_nearest, sharded_nearest_shape
from .shards import Shard, shard_rows

__all__ = ["Shard", "evaluate_rows", "gather_rows", "own_rows_as_queries", "shard_rows", "sharded_aligned_nearest",
           "sharded_evaluate", "sharded_max_iou", "sharded_nearest", "sharded_nearest_shape", "take_rows"]
