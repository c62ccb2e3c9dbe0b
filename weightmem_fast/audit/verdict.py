"""The memorisation verdict (issue 8): where a generator's models sit against the noise frontier and the training
set. None of the study's scripts computes it; the definitions here are the contract the docs and report cite.

Orientation: comparisons are made on *closeness* c (higher = closer to training: the error-set IoU itself, or
minus a Chamfer distance) and *goodness* g (higher = better: accuracy, or minus a Chamfer distance), read from the
task's ``Behaviour``.

- **Frontier curve** (drawn): for each sigma of the noise sweep, the median similarity and median quality of that
  sigma's noised training models (models without a behaviour, e.g. fields without a surface, skipped).
- **Noise envelope:** the staircase over all noised models of the sweep, ``G(c) = max{g_i : c_i <= c}``: the best
  quality that memorisation plus noise reached at closeness c or less.
- **Beyond the frontier:** ``g > G(c)``, i.e. no noised model is both at least as novel and at least as good
  (higher quality than noise reaches at equal novelty, or more novelty than noise needs for equal quality). A
  model more novel than every noised model is beyond. The envelope, not the median curve, is the bar: against
  the median, half of the noise itself would count as beyond; against the envelope a noise baseline scores
  close to 0 and an exact copy of a training model is beyond only if no noised copy is as good.
- **Near-copy:** ``min_l2 < q05`` and ``c >= c_0``, where q05 is the 5th percentile of the training models' own
  min L2 (self excluded) and c_0 the least closeness among the sweep's models at its smallest sigma (copies of
  training models plus almost no noise; the least, not the median, because a behaviour can be measured with
  noise of its own, e.g. surface points sampled at random, and an exact copy must still count).
- **Min-L2 ratio:** mean min L2 of the group / mean min L2 of training models among themselves (< 1: closer to
  training than training models are to each other).
- **Confidence intervals:** percentile bootstrap over the group's models (and, for the ratio, independently over
  the training models), ``resamples`` draws from a seeded generator. The references (q05, c_0, the envelope) stay
  fixed: they define the question, the interval measures how well the group's sample answers it.
"""
from __future__ import annotations

import math

import torch

from .result import Behaviour, Estimate, Frontier

NEAR_COPY_PERCENTILE = 5.0


def frontier(behaviour: Behaviour, sigmas: torch.Tensor, similarity: torch.Tensor, quality: torch.Tensor,
             model_sigmas: torch.Tensor) -> Frontier:
    """The frontier curve (per-sigma medians) and the noise envelope of the sweep's models.

    Raises:
        ValueError: no noised model has a behaviour (for fields: no surface at any sigma).
    """
    valid = ~(similarity.isnan() | quality.isnan())
    if not valid.any():
        raise ValueError("the noise frontier has no finite point: every noised training model failed to give a "
                         "behaviour (for fields: no surface); pass smaller frontier sigmas")
    sim, qual = [], []
    for sigma in sigmas.tolist():
        rows = (model_sigmas == sigma) & valid
        sim.append(float(similarity[rows].double().median()) if rows.any() else float("nan"))
        qual.append(float(quality[rows].double().median()) if rows.any() else float("nan"))
    knots_c, knots_g = _envelope(*oriented(behaviour, similarity[valid], quality[valid]))
    env_sim = knots_c if behaviour.closer_is_higher else -knots_c
    env_qual = knots_g if behaviour.better_is_higher else -knots_g
    return Frontier(tuple(sigmas.tolist()), tuple(sim), tuple(qual), tuple(env_sim.tolist()),
                    tuple(env_qual.tolist()))


def oriented(behaviour: Behaviour, similarity: torch.Tensor, quality: torch.Tensor) -> tuple[torch.Tensor,
                                                                                             torch.Tensor]:
    """(closeness, goodness) as float64: the task's numbers, negated where lower means closer / better."""
    c, g = similarity.double(), quality.double()
    return (c if behaviour.closer_is_higher else -c), (g if behaviour.better_is_higher else -g)


def beyond_frontier(behaviour: Behaviour, frontier: Frontier, similarity: torch.Tensor,
                    quality: torch.Tensor) -> torch.Tensor:
    """bool [n]: models above the noise envelope (module docstring); models without a behaviour: False."""
    knots_c, knots_g = oriented(behaviour, torch.tensor(frontier.envelope_similarity, dtype=torch.float64),
                                torch.tensor(frontier.envelope_quality, dtype=torch.float64))
    c, g = (x.cpu() for x in oriented(behaviour, similarity, quality))
    # The last corner at closeness <= c holds the envelope's value there; none means more novel than all noise.
    corner = torch.searchsorted(knots_c, c.nan_to_num(0.0), right=True) - 1
    bar = torch.where(corner >= 0, knots_g[corner.clamp(min=0)], -math.inf)
    return ((g > bar) & ~(c.isnan() | g.isnan())).to(similarity.device)


def near_copy_thresholds(behaviour: Behaviour, training_min_l2: torch.Tensor, sweep_similarity: torch.Tensor,
                         sweep_sigmas: torch.Tensor) -> dict[str, float]:
    """{"min_l2": q05 of the training models' own min L2, "similarity": c_0 in the task's own units (module
    docstring), from the sweep's per-model similarities and sigmas; NaN when no smallest-sigma model has one}."""
    rows = (sweep_sigmas == sweep_sigmas.min()) & ~sweep_similarity.isnan()
    closeness, _ = oriented(behaviour, sweep_similarity[rows], sweep_similarity[rows])
    least = float(closeness.min()) if rows.any() else math.nan
    return {"min_l2": float(torch.quantile(training_min_l2.double(), NEAR_COPY_PERCENTILE / 100)),
            "similarity": least if behaviour.closer_is_higher else -least}


def near_copies(behaviour: Behaviour, thresholds: dict[str, float], min_l2: torch.Tensor,
                similarity: torch.Tensor) -> torch.Tensor:
    """bool [n]: min L2 below the training percentile and at least the frontier's closeness at its smallest sigma."""
    c, _ = oriented(behaviour, similarity, similarity)
    c0, _ = oriented(behaviour, torch.tensor([thresholds["similarity"]]), torch.tensor([0.0]))
    return (min_l2.double() < thresholds["min_l2"]) & (c >= c0)


def bootstrap_fraction(flags: torch.Tensor, resamples: int, level: float, generator: torch.Generator) -> Estimate:
    """The fraction of True flags and its percentile-bootstrap interval."""
    values = flags.double()
    draws = values[_resample(values.shape[0], resamples, generator)].mean(dim=1)
    return _estimate(float(values.mean()), draws, level)


def bootstrap_ratio(group_min_l2: torch.Tensor, training_min_l2: torch.Tensor, resamples: int, level: float,
                    generator: torch.Generator) -> Estimate:
    """mean(group) / mean(training) and its percentile-bootstrap interval (both sides resampled)."""
    a, b = group_min_l2.double(), training_min_l2.double()
    draws = a[_resample(a.shape[0], resamples, generator)].mean(dim=1) / \
        b[_resample(b.shape[0], resamples, generator)].mean(dim=1)
    return _estimate(float(a.mean() / b.mean()), draws, level)


def _resample(n: int, resamples: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, n, (resamples, n), generator=generator)


def _estimate(value: float, draws: torch.Tensor, level: float) -> Estimate:
    tail = (1.0 - level) / 2
    low, high = torch.quantile(draws, torch.tensor([tail, 1.0 - tail], dtype=torch.float64)).tolist()
    return Estimate(value, low, high, level)


def _envelope(c: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The corners of ``G(c) = max{g_i : c_i <= c}``: points sorted by closeness whose goodness beats every point
    at lower or equal closeness (for equal closeness, the best one)."""
    order = torch.argsort(g, descending=True, stable=True)  # best first, kept first by the stable sort below
    c, g = c[order], g[order]
    order = torch.argsort(c, stable=True)
    c, g = c[order], g[order]
    best = torch.cummax(g, dim=0).values
    corner = torch.ones_like(g, dtype=torch.bool)
    corner[1:] = g[1:] > best[:-1]
    return c[corner], g[corner]
