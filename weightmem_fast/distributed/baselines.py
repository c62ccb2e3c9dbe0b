"""The audit's draws from a training set sharded by rows (issue 10): ``weightmem_fast.baselines`` on a ``Shard``.

Rows are drawn by global index with the same seeded generator as on one machine and fetched bit-exactly from
their owners (``blocks.take_rows``), so ``noise_frontier`` and ``average`` equal the single-machine baselines
exactly. Statistics over all rows (``value_std``, ``gaussian``'s per-parameter mean and std) are float64
all-reduces: the same two-pass formulas as torch's, summed in another order, so they may differ from the
single-machine numbers in the last float64 bits (relative 1e-15 at these sizes); ``gaussian``'s float32 output
then almost always rounds to the same values.

Collective: call each function on every rank of the shard's group with the same other arguments.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.distributed as dist

from .. import baselines as single
from ._protocol import exchange
from .blocks import take_rows
from .shards import Shard


def value_std(shard: Shard, unbiased: bool = True) -> float:
    """The std of all values of the whole set [total, D] (``full.double().std(unbiased=...)``), by two float64
    all-reduces (the mean, then the squared deviations from it).

    Raises:
        ValueError: fewer than 2 values in total with ``unbiased`` (no unbiased std).
    """
    values = shard.rows.double()
    count = shard.total * values.shape[1]
    if count - int(unbiased) < 1:
        raise ValueError(f"value_std needs at least {1 + int(unbiased)} values; the set has {count}")
    mean = _sum(values.sum(), shard) / count
    return math.sqrt(float(_sum((values - mean).square().sum(), shard)) / (count - int(unbiased)))


def noise_frontier(shard: Shard, n: int, seed: int,
                   sigmas: Sequence[float] | torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``baselines.noise_frontier(full, n, seed, sigmas)``, exactly (the default sigmas up to ``value_std``'s
    rounding). Returns the same (sigmas float64 [S], S tensors [n, D]) on every rank."""
    generator = _setup("noise_frontier", shard, n, seed)
    if sigmas is None:
        values = single.default_frontier_sigmas(value_std(shard, unbiased=False))
    else:
        values = single._sigmas(sigmas)
    return values, single.draw_noised(shard.total, n, generator, values, lambda rows: _take(shard, rows))


def average(shard: Shard, n: int, seed: int, k: int = 16) -> torch.Tensor:
    """``baselines.average(full, n, seed, k)`` (without the aliasing quirk), exactly: [n, D] on every rank."""
    generator = _setup("average", shard, n, seed)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= shard.total:
        raise ValueError(f"k must be an int in [1, {shard.total}] (rows per mean); got {k!r}")
    return single.draw_averages(shard.total, n, k, generator, lambda rows: _take(shard, rows))


def gaussian(shard: Shard, n: int, seed: int) -> torch.Tensor:
    """``baselines.gaussian(full, n, seed)``: per-parameter float64 mean and unbiased std by all-reduces (module
    docstring on rounding), the same eps draw. [n, D] in the shard's dtype on every rank."""
    generator = _setup("gaussian", shard, n, seed)
    if shard.total < 2:
        raise ValueError(f"gaussian needs at least 2 training rows (an unbiased std); the set has {shard.total}")
    values = shard.rows.double()
    mean = _sum(values.sum(dim=0), shard) / shard.total
    std = (_sum((values - mean).square().sum(dim=0), shard) / (shard.total - 1)).sqrt()
    return single.draw_gaussian(mean, std, n, generator, shard.rows.dtype)


def _setup(op: str, shard: Shard, n: object, seed: object) -> torch.Generator:
    """baselines' checks (finite rows on every rank, n >= 1, seed >= 0), raised on every rank alike."""
    def check() -> None:
        if not bool(torch.isfinite(shard.rows).all()):
            raise ValueError("training contains NaN or Inf; baselines need finite training weights (drop those rows)")
        for name, value, low in (("n", n, 1), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}; got {value!r}")

    exchange(op, check, shard.group)
    return torch.Generator(device=shard.rows.device).manual_seed(seed)


def _take(shard: Shard, rows: torch.Tensor) -> torch.Tensor:
    return take_rows(shard.rows, shard.offset, rows, shard.group)


def _sum(value: torch.Tensor, shard: Shard) -> torch.Tensor:
    value = value.clone()
    dist.all_reduce(value, group=shard.group)
    return value
