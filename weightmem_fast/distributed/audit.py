"""The audit's training set split by rows across torch.distributed ranks (issue 10): ``audit(..., sharded=True)``.

``ShardedTrainingSet`` answers ``weightmem_fast.audit.training.TrainingSet``'s calls with collectives: searches go
through the sharded ops (the training group itself through ``own_rows_as_queries``), draws through
``distributed.baselines``, per-row results through ``gather_rows``, groups that every rank holds whole are
evaluated a share per rank (``sharded_evaluate``), and per-training-row data that every rank holds whole (a field
task's training clouds) is cut to this rank's rows (``own_rows``). Memory per rank: its shard, one other rank's
block while the training group is compared with itself, the replicated groups, and O(M k) per-row results.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import torch
import torch.distributed as dist
from torch import nn

from ..audit.training import Searches
from ..io import Zoo
from ..layout import ParamLayout
from ..ops.eval import Evaluation
from . import baselines
from ._protocol import exchange
from .blocks import gather_rows, own_rows_as_queries
from .evaluate import evaluate_rows, sharded_evaluate
from .neighbors import sharded_aligned_nearest, sharded_max_iou, sharded_nearest, sharded_nearest_shape
from .shards import Shard


@dataclasses.dataclass(eq=False)
class ShardedTrainingSet:
    """This rank's rows of the training set (``weightmem_fast.audit.training`` module docstring).

    Attributes:
        shard: this rank's rows [M_r, D] float32 and their place in the whole set.
        trajectory: the whole set is consecutive checkpoints of one run.
        searches: the sharded kernels on this shard's group.
    """

    shard: Shard
    trajectory: bool
    searches: Searches

    @classmethod
    def create(cls, training: torch.Tensor | Zoo, width: int,
               group: dist.ProcessGroup | None = None) -> "ShardedTrainingSet":
        """Collective: checks every rank's shard together (a bad shard raises on every rank) and places them.

        Args:
            training: this rank's training rows [M_r, D] (tensor or Zoo, e.g. ``io.load_zoo(path, shard=(rank,
                world))``), M_r may be 0; shards in rank order.
            width: D, the task layout's size.
            group: the process group (None: the default group).

        Raises:
            TypeError / ValueError: on every rank, naming the rank whose shard is not finite floating [M_r, D].
        """
        def check() -> set | None:
            weights = training.weights if isinstance(training, Zoo) else training
            if not isinstance(weights, torch.Tensor) or weights.dim() != 2 or not weights.is_floating_point() \
                    or weights.shape[1] != width:
                got = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
                raise ValueError(f"training must be this rank's shard of floating weights [M_r, {width}] (a tensor or "
                                 f"a weightmem_fast.io Zoo; M_r may be 0); got {got}")
            if not bool(torch.isfinite(weights).all()):
                raise ValueError("training contains NaN or Inf; the audit needs finite training weights")
            return {row.get("run") for row in training.metadata} if isinstance(training, Zoo) else None

        runs = exchange("audit(sharded=True)", check, group)
        weights = (training.weights if isinstance(training, Zoo) else training).float()
        shard = Shard.of(weights, group)
        # One run, as on one machine: every shard a Zoo, one distinct named run over all rows, more than one row.
        names = set().union(*runs) if all(r is not None for r in runs) else {None}
        one_run = len(names) == 1 and None not in names and shard.total > 1
        return cls(shard, one_run, _searches(shard))

    @property
    def weights(self) -> torch.Tensor:
        return self.shard.rows

    @property
    def rows(self) -> int:
        return self.shard.total

    def std(self, unbiased: bool = True) -> float:
        return baselines.value_std(self.shard, unbiased)

    def noise_frontier(self, n: int, seed: int,
                       sigmas: Sequence[float] | torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return baselines.noise_frontier(self.shard, n, seed, sigmas)

    def average(self, n: int, seed: int, k: int) -> torch.Tensor:
        return baselines.average(self.shard, n, seed, k)

    def gaussian(self, n: int, seed: int) -> torch.Tensor:
        return baselines.gaussian(self.shard, n, seed)

    def gather(self, values: torch.Tensor) -> torch.Tensor:
        return gather_rows(values, self.shard.group)


def _searches(shard: Shard) -> Searches:
    group = shard.group

    def evaluate(template: nn.Module, weights: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor,
                 layout: ParamLayout) -> Evaluation:
        return sharded_evaluate(template, weights, inputs, labels, layout, group=group)

    return Searches(_against_shard(sharded_nearest, group), _against_shard(sharded_aligned_nearest, group),
                    _against_shard(sharded_max_iou, group), _against_shard(sharded_nearest_shape, group), evaluate,
                    evaluate_rows, lambda whole: whole[shard.offset: shard.offset + shard.rows.shape[0]])


def _against_shard(op: Callable[..., tuple[torch.Tensor, torch.Tensor]],
                   group: dist.ProcessGroup | None) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """``Searches``' calling convention for a sharded op: reference = this rank's shard; a replicated query, or
    with exclude_self this rank's own rows (every rank's block in turn as the query, results for all rows)."""
    def search(query, shard, k: int = 1, exclude_self: bool = False, **options):
        if not exclude_self:
            return op(query, shard, k=k, group=group, **options)
        return own_rows_as_queries(query, lambda block, start: op(
            block, shard, k=k, exclude_self=True, query_offset=start, group=group, **options), group)

    return search
