"""``sharded_evaluate`` (issue 10): ``evaluate`` of a model set split by rows across the ranks.

``evaluate`` is per model: a model's predictions never depend on the others, so a set sharded by rows is evaluated
by each rank on its own rows with the single-machine op. Two uses:

- the set lives in shards (a training zoo loaded with ``io.load_zoo(path, shard=(rank, world))``): call
  ``evaluate`` on the shard; nothing to communicate, and each rank keeps its rows' results;
- the set is replicated (the audit's generated, baseline and frontier groups): ``sharded_evaluate`` splits its rows
  with ``shard_rows``, evaluates this rank's part and gathers every part in row order, so each rank does 1/world of
  the work and gets the result of ``evaluate`` on the whole set.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from .. import _check
from ..layout import ParamLayout
from ..ops.eval import Evaluation, evaluate
from ..packed_masks import PackedMasks
from ._protocol import exchange
from .blocks import gather_rows
from .shards import shard_rows


def sharded_evaluate(
    template: nn.Module,
    weights: torch.Tensor,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    layout: ParamLayout | None = None,
    batch_size: int | None = None,
    *,
    group: dist.ProcessGroup | None = None,
) -> Evaluation:
    """``evaluate(template, weights, inputs, labels, layout, batch_size)`` with the models split across the ranks.

    Call it on every rank of ``group`` with the same arguments. Each rank evaluates rows ``shard_rows(N, rank,
    world)`` and every rank returns the whole Evaluation, equal to the single-process call (models are evaluated
    independently; ranks with no rows, N < world, evaluate nothing).

    Args:
        template, weights, inputs, labels, layout, batch_size: as ``evaluate``; weights [N, D] replicated.
        group: the process group (None: the default group).

    Returns:
        Evaluation of all N models, on every rank.

    Raises:
        RuntimeError: no initialised process group; another rank failed (names it).
        TypeError / ValueError: as ``evaluate``, raised on every rank.
    """
    mine: list[Evaluation] = []

    def run() -> None:
        rows = _check.matrix("weights", weights)
        start, stop = shard_rows(rows.shape[0], dist.get_rank(group), dist.get_world_size(group))
        mine.append(evaluate_rows(template, rows[start:stop], inputs, labels, layout, batch_size))

    exchange("sharded_evaluate", run, group)
    part, n_bits = mine[0], mine[0].errors.n_bits
    return Evaluation(gather_rows(part.predictions, group), gather_rows(part.accuracy, group),
                      gather_rows(part.loss, group), PackedMasks(gather_rows(part.errors.words, group), n_bits),
                      gather_rows(part.nonfinite, group))


def evaluate_rows(
    template: nn.Module,
    weights: torch.Tensor,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    layout: ParamLayout | None = None,
    batch_size: int | None = None,
) -> Evaluation:
    """``evaluate`` of this rank's rows [M_r, D], which may be none (then an Evaluation of 0 models, after the
    argument checks ``evaluate`` makes on one all-zero model, so every rank raises the same errors). No collective.
    """
    if weights.dim() != 2 or weights.shape[0]:
        return evaluate(template, weights, inputs, labels, layout, batch_size)
    one = evaluate(template, weights.new_zeros(1, weights.shape[1]), inputs, labels, layout, batch_size)
    return Evaluation(one.predictions[:0], one.accuracy[:0], one.loss[:0], one.errors[:0], one.nonfinite[:0])
