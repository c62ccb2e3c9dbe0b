"""The training set an audit compares with (issue 10): what ``audit`` needs from it, behind one interface.

``TrainingSet`` holds every training row in this process. ``weightmem_fast.distributed.audit.ShardedTrainingSet``
holds one rank's rows of a set split across torch.distributed ranks and answers the same calls with collectives,
so ``audit`` runs one code path for both:

- ``weights``: the rows this process holds (all of them here); ``rows``: the whole set's row count;
  ``trajectory``: the whole set is consecutive checkpoints of one run;
- ``std``, ``noise_frontier``, ``average``, ``gaussian``: statistics and draws over the whole set;
- ``gather``: per-row results of this process's rows -> the whole set's, in row order;
- ``searches``: the kernels that compare a group with the training rows (reference = this process's rows;
  with ``exclude_self`` the query is the training rows this process holds, compared with the whole set), and
  ``own_rows``, which cuts per-training-row data every process holds whole (a field task's training clouds) to
  this process's rows.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import torch

from .. import baselines
from ..layout import ParamLayout
from ..ops.chamfer import nearest_shape
from ..ops.eval import Evaluation, evaluate
from ..ops.iou import max_iou
from ..ops.neighbors import nearest
from ..symmetry.aligned import aligned_nearest


@dataclasses.dataclass(frozen=True)
class Searches:
    """The kernels an audit measures with, and the rows they see. The searches are called ``(query, reference, k=k,
    exclude_self=...)`` and return (values [n, k], indices [n, k]); the evaluations return an ``Evaluation``.

    Attributes:
        nearest: min L2.
        aligned_nearest: L2 after aligning hidden units; also takes ``layout=``.
        max_iou: error-set IoU (query and reference: packed error sets).
        nearest_shape: Chamfer distance (query and reference: point clouds).
        evaluate: ``(template, weights, inputs, labels, layout)`` of a group that every process holds whole.
        evaluate_own: the same, of the training rows this process holds (possibly none).
        own_rows: ``(whole [M, ...]) -> [M_r, ...]``, the rows this process holds of a tensor with one row per
            training model that every process holds whole (``LOCAL``: ``whole`` itself; sharded: a view).
    """

    nearest: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    aligned_nearest: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    max_iou: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    nearest_shape: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    evaluate: Callable[..., Evaluation]
    evaluate_own: Callable[..., Evaluation]
    own_rows: Callable[[torch.Tensor], torch.Tensor]


def _aligned(query: torch.Tensor, reference: torch.Tensor, *, k: int, exclude_self: bool,
             layout: ParamLayout) -> tuple[torch.Tensor, torch.Tensor]:
    return aligned_nearest(query, reference, layout, k, exclude_self)[:2]


def _all_rows(whole: torch.Tensor) -> torch.Tensor:
    return whole


LOCAL = Searches(nearest, _aligned, max_iou, nearest_shape, evaluate, evaluate, _all_rows)


@dataclasses.dataclass(eq=False)
class TrainingSet:
    """Every training row in this process (module docstring).

    Attributes:
        weights: [M, D] float32 training weights.
        trajectory: the rows are consecutive checkpoints of one run (the average and gaussian baselines apply).
    """

    weights: torch.Tensor
    trajectory: bool
    searches: Searches = LOCAL

    @property
    def rows(self) -> int:
        return self.weights.shape[0]

    def std(self, unbiased: bool = True) -> float:
        """The std of all training values."""
        return float(self.weights.double().std(unbiased=unbiased))

    def noise_frontier(self, n: int, seed: int,
                       sigmas: Sequence[float] | torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return baselines.noise_frontier(self.weights, n, seed, sigmas)

    def average(self, n: int, seed: int, k: int) -> torch.Tensor:
        return baselines.average(self.weights, n, seed, k=k)

    def gaussian(self, n: int, seed: int) -> torch.Tensor:
        return baselines.gaussian(self.weights, n, seed)

    def gather(self, values: torch.Tensor) -> torch.Tensor:
        """Per-row results [M, ...] of this process's rows, which are all of them."""
        return values
