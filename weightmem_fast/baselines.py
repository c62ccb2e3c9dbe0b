"""Baselines a weight generator must beat (issue 7, study_spec §2.6): simple functions of the training weights.

Every baseline is ``f(training [N, D], n, seed, ...) -> [n, D]``: ``n`` new flat weight vectors in the layout,
dtype and device of ``training`` (which is never modified). The same arguments give the same output on the same
device (a ``torch.Generator`` seeded with ``seed`` draws everything).

- ``copy``: exact copies of training rows, the pure memoriser (distance 0, similarity 1).
- ``noise`` / ``noise_frontier``: training rows plus N(0, sigma^2) noise, the study's noise baseline; the frontier
  sweeps sigma and traces the accuracy-versus-novelty curve that memorisation plus noise produces.
- ``average``: means of k random training rows (P-diff's "average" baseline, with the study's aliasing bug on request).
- ``gaussian``: independent per-parameter normal fit (P-diff's "gaussian" baseline).
- ``interpolate``: random convex combinations of two training rows.

Rows are picked in balanced fashion where several are needed (``copy``, ``noise``): distinct rows when n <= N (n = N
uses every row once, in random order), else every row ``n // N`` or ``n // N + 1`` times.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from . import _check

# noise_frontier's default sweep: this many sigmas, log-spaced over [1e-3, 1] x the std of all training values.
FRONTIER_SIGMAS = 12
FRONTIER_RANGE = (1e-3, 1.0)


def copy(training: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Exact copies of training rows (balanced picks, see the module docstring): the pure memoriser.

    Args:
        training: [N, D] floating training weights.
        n: number of outputs, >= 1.
        seed: int >= 0.

    Returns:
        [n, D], every row equal to some training row.

    Raises:
        TypeError / ValueError: ``training`` is not a non-empty finite 2-D floating tensor; bad ``n`` or ``seed``.
    """
    training, generator = _setup(training, n, seed)
    return training[_rows(training.shape[0], n, generator)]


def noise(training: torch.Tensor, n: int, seed: int, sigma: float) -> torch.Tensor:
    """Training rows (balanced picks) plus independent N(0, sigma^2) noise on every parameter (study_spec §2.6).

    The study's settings: HR sigma 0.02 / 0.04 on reconstructed top-30 % models; G.pt 0.05 / 0.1 in its
    normalised space (x 4.185); HyperDiffusion 0.02 / 0.04; P-diff 0.06 / 0.12 on all 300 checkpoints.
    ``noise(t, n, seed, s)`` equals ``noise_frontier(t, n, seed, [s])[1][0]``.

    Args:
        training: [N, D] floating training weights.
        n: number of outputs, >= 1.
        seed: int >= 0.
        sigma: noise standard deviation, finite and >= 0.

    Returns:
        [n, D].

    Raises:
        TypeError / ValueError: bad ``training``, ``n``, ``seed`` or ``sigma``.
    """
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0 (the noise std); got {sigma!r}")
    return noise_frontier(training, n, seed, [sigma])[1][0]


def noise_frontier(training: torch.Tensor, n: int, seed: int,
                   sigmas: Sequence[float] | torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The noise baseline at several sigmas, for the accuracy-versus-novelty frontier of memorisation.

    All sets share the picked rows and one standard-normal draw ``eps``: set s is ``rows + sigmas[s] * eps``, so
    each sample moves along a fixed direction as sigma grows (a smooth frontier from few draws).

    Args:
        training: [N, D] floating training weights.
        n: outputs per sigma, >= 1.
        seed: int >= 0.
        sigmas: finite values >= 0; default ``FRONTIER_SIGMAS`` = 12 values log-spaced from 1e-3 to 1 times the
            standard deviation of all training values (from near-copies to noise as large as the weights).

    Returns:
        (sigmas as a float64 tensor [S] on the CPU, a list of S tensors [n, D]).

    Raises:
        TypeError / ValueError: bad ``training``, ``n`` or ``seed``; ``sigmas`` empty, not 1-D, negative or
            non-finite; the default sweep on training values that are all equal (pass ``sigmas``).
    """
    training, generator = _setup(training, n, seed)
    if sigmas is None:
        values = default_frontier_sigmas(float(training.double().std(unbiased=False)))
    else:
        values = _sigmas(sigmas)
    return values, draw_noised(training.shape[0], n, generator, values, training.__getitem__)


def average(training: torch.Tensor, n: int, seed: int, k: int = 16, inplace_quirk: bool = False) -> torch.Tensor:
    """Means of ``k`` training rows drawn without replacement, a fresh draw per output (P-diff's "average"
    baseline: n = 100, k = 16; study_spec §2.6).

    Each mean is summed in the order drawn, in ``training``'s dtype, then divided by k, as the study's code does.

    ``inplace_quirk=True`` reproduces the study's aliasing bug (``P-diff/evaluation/baseline.py``): the running sum
    is accumulated into the first drawn checkpoint's own tensors, which stay in the shared training list, so after
    output i that checkpoint *is* output i, and later draws that pick it use the average instead of the original.
    Output 0 is always the clean one; output i differs from the clean output i exactly when its draw includes a row
    that was drawn first by an earlier output. The draws themselves are the same with and without the quirk.

    Args:
        training: [N, D] floating training weights.
        n: number of outputs, >= 1.
        seed: int >= 0.
        k: rows per mean, in [1, N].
        inplace_quirk: reproduce the aliasing bug.

    Returns:
        [n, D].

    Raises:
        TypeError / ValueError: bad ``training``, ``n`` or ``seed``; ``k`` outside [1, N].
    """
    training, generator = _setup(training, n, seed)
    k = _check.neighbour_count(k, training.shape[0], exclude_self=False)
    if not inplace_quirk:
        return draw_averages(training.shape[0], n, k, generator, training.__getitem__)
    draws = _subsets(training.shape[0], n, k, generator)
    rows = training.clone()  # the study's shared list of checkpoints, mutated as its code does
    out = torch.empty(n, training.shape[1], dtype=training.dtype, device=training.device)
    for i, draw in enumerate(draws.tolist()):
        total = rows[draw[0]]  # a view: the sum lands in that checkpoint
        for j in draw[1:]:
            total += rows[j]
        total /= k
        out[i] = total
    return out


def gaussian(training: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Independent normal draws per parameter: ``mean[d] + std[d] * eps`` with the per-parameter mean and unbiased
    std over the N training rows, no covariance (P-diff's "gaussian" baseline; study_spec §2.6).

    Args:
        training: [N, D] floating training weights, N >= 2.
        n: number of outputs, >= 1.
        seed: int >= 0.

    Returns:
        [n, D] (statistics computed in float64, output in ``training``'s dtype).

    Raises:
        TypeError / ValueError: bad ``training``, ``n`` or ``seed``; N < 2 (no unbiased std).
    """
    training, generator = _setup(training, n, seed)
    _at_least_two_rows(training, "gaussian", "an unbiased std")
    values = training.double()
    return draw_gaussian(values.mean(dim=0), values.std(dim=0), n, generator, training.dtype)


def interpolate(training: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Random convex combinations ``(1 - lam) a + lam b`` of two distinct random training rows a, b, with
    lam ~ U(0, 1) per output.

    Args:
        training: [N, D] floating training weights, N >= 2.
        n: number of outputs, >= 1.
        seed: int >= 0.

    Returns:
        [n, D].

    Raises:
        TypeError / ValueError: bad ``training``, ``n`` or ``seed``; N < 2.
    """
    training, generator = _setup(training, n, seed)
    _at_least_two_rows(training, "interpolate", "two distinct rows")
    count, device = training.shape[0], training.device
    first = torch.randint(count, (n,), generator=generator, device=device)
    second = torch.randint(count - 1, (n,), generator=generator, device=device)
    second += (second >= first).long()  # uniform over the rows other than ``first``
    lam = torch.rand(n, 1, generator=generator, device=device, dtype=training.dtype)
    return torch.lerp(training[first], training[second], lam)


# Building blocks shared with the sharded training sets of ``weightmem_fast.distributed``: the draws need only the
# row count and the generator, and rows come through ``take`` (row indices [r] -> rows [r, D]), so a set split over
# ranks draws exactly what one machine draws.
RowTaker = Callable[[torch.Tensor], torch.Tensor]


def default_frontier_sigmas(scale: float) -> torch.Tensor:
    """``noise_frontier``'s default sweep for training values of population std ``scale``: float64 [12] on the CPU.

    Raises:
        ValueError: ``scale`` is not > 0 (all training values equal).
    """
    if not scale > 0:
        raise ValueError("noise_frontier's default sigmas scale with the spread of the training values, and "
                         "all of them are equal; pass sigmas=[...] explicitly")
    low, high = (scale * f for f in FRONTIER_RANGE)
    return torch.logspace(math.log10(low), math.log10(high), FRONTIER_SIGMAS, dtype=torch.float64)


def draw_noised(count: int, n: int, generator: torch.Generator, sigmas: torch.Tensor,
                take: RowTaker) -> list[torch.Tensor]:
    """``noise_frontier``'s sets for a training set of ``count`` rows: balanced row picks, one shared eps."""
    rows = take(_rows(count, n, generator))
    eps = torch.randn(rows.shape, generator=generator, device=rows.device, dtype=rows.dtype)
    return [rows + float(sigma) * eps for sigma in sigmas]


def draw_averages(count: int, n: int, k: int, generator: torch.Generator, take: RowTaker) -> torch.Tensor:
    """``average``'s clean outputs: means of k distinct rows, summed in the order drawn."""
    draws = _subsets(count, n, k, generator)
    total = take(draws[:, 0])
    for j in range(1, k):
        total += take(draws[:, j])
    return total / k


def draw_gaussian(mean: torch.Tensor, std: torch.Tensor, n: int, generator: torch.Generator,
                  dtype: torch.dtype) -> torch.Tensor:
    """``gaussian``'s outputs from the per-parameter float64 mean [D] and unbiased std [D]: [n, D] in ``dtype``."""
    eps = torch.randn(n, mean.shape[0], generator=generator, device=mean.device, dtype=torch.float64)
    return (mean + std * eps).to(dtype)


def _setup(training: object, n: object, seed: object) -> tuple[torch.Tensor, torch.Generator]:
    """Validates the common arguments; returns ``training`` and a generator on its device seeded with ``seed``."""
    training = _check.matrix("training", training)
    if not bool(torch.isfinite(training).all()):
        raise ValueError("training contains NaN or Inf; baselines need finite training weights (drop those rows)")
    for name, value, low in (("n", n, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}; got {value!r}")
    return training, torch.Generator(device=training.device).manual_seed(seed)


def _rows(count: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """n row indices in [0, count): successive random permutations, cut at n."""
    perms = [torch.randperm(count, generator=generator, device=generator.device) for _ in range(-(-n // count))]
    return torch.cat(perms)[:n]


def _subsets(count: int, n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """int64 [n, k]: row i is k distinct indices in [0, count) in random order (``average``'s draws)."""
    return torch.stack([torch.randperm(count, generator=generator, device=generator.device)[:k] for _ in range(n)])


def _sigmas(sigmas: Sequence[float] | torch.Tensor) -> torch.Tensor:
    try:
        values = torch.as_tensor(sigmas, dtype=torch.float64).cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"sigmas must be a 1-D sequence of numbers; got {sigmas!r}") from err
    if values.dim() != 1 or values.numel() == 0:
        raise ValueError(f"sigmas must be a non-empty 1-D sequence; got shape {tuple(values.shape)}")
    if not bool(torch.isfinite(values).all() and (values >= 0).all()):
        raise ValueError(f"every sigma must be finite and >= 0; got {values.tolist()}")
    return values


def _at_least_two_rows(training: torch.Tensor, name: str, reason: str) -> None:
    if training.shape[0] < 2:
        raise ValueError(f"{name} needs training with at least 2 rows ({reason}); got shape {tuple(training.shape)}")
