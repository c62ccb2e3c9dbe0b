"""Baselines (issue 7, study_spec §2.6): stated statistics, the P-diff average's aliasing quirk, seeding and bad
inputs."""
from __future__ import annotations

import math

import pytest
import torch

from weightmem_fast import baselines

ALL = {
    "copy": lambda t, n, seed: baselines.copy(t, n, seed),
    "noise": lambda t, n, seed: baselines.noise(t, n, seed, 0.1),
    "average": lambda t, n, seed: baselines.average(t, n, seed, k=3),
    "average_quirk": lambda t, n, seed: baselines.average(t, n, seed, k=3, inplace_quirk=True),
    "gaussian": lambda t, n, seed: baselines.gaussian(t, n, seed),
    "interpolate": lambda t, n, seed: baselines.interpolate(t, n, seed),
}


def training(n: int = 10, d: int = 7, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0), dtype=dtype)


@pytest.mark.parametrize("name", sorted(ALL))
def test_shape_dtype_seeding_and_no_mutation(name):
    t = training(dtype=torch.float64)
    before = t.clone()
    out = ALL[name](t, 13, 4)
    assert out.shape == (13, 7) and out.dtype == torch.float64
    assert torch.equal(out, ALL[name](t, 13, 4))
    assert not torch.equal(out, ALL[name](t, 13, 5))
    assert torch.equal(t, before)


def test_copy_returns_training_rows_balanced():
    t = training(5)
    out = baselines.copy(t, 12, 0)
    matches = (out[:, None, :] == t[None]).all(dim=2)  # [12, 5]
    assert bool((matches.sum(dim=1) == 1).all())  # every output is exactly one training row
    counts = matches.sum(dim=0)
    assert sorted(counts.tolist()) == [2, 2, 2, 3, 3]  # 12 = 2 x 5 + 2: two full passes, then 2 distinct rows
    distinct = baselines.copy(t, 5, 1)
    assert sorted(((distinct[:, None] == t[None]).all(2).float().argmax(1)).tolist()) == [0, 1, 2, 3, 4]


def test_noise_std_is_sigma():
    row = torch.linspace(-1, 1, 500)
    t = row.expand(3, 500).clone()  # identical rows, so out - row is the noise itself
    out = baselines.noise(t, 200, 0, 0.05)
    diff = (out - row).double()
    # 100,000 draws: the std within 1 %, the mean within 4 standard errors.
    assert float(diff.std()) == pytest.approx(0.05, rel=0.01)
    assert abs(float(diff.mean())) < 4 * 0.05 / math.sqrt(diff.numel())
    assert torch.equal(baselines.noise(t, 4, 0, 0.0), t[:1].expand(4, 500))


def test_noise_frontier_shares_rows_and_directions():
    t = training(6, 40)
    sigmas, sets = baselines.noise_frontier(t, 5, 3)
    assert sigmas.shape == (12,) and len(sets) == 12 and all(s.shape == (5, 40) for s in sets)
    scale = float(t.double().std(unbiased=False))
    assert float(sigmas[0]) == pytest.approx(1e-3 * scale) and float(sigmas[-1]) == pytest.approx(scale)
    ratios = sigmas[1:] / sigmas[:-1]
    assert torch.allclose(ratios, ratios[0].expand(11))  # log-spaced
    direction = (sets[-1] - sets[0]) / float(sigmas[-1] - sigmas[0])
    middle = (sets[5] - sets[0]) / float(sigmas[5] - sigmas[0])
    assert torch.allclose(direction, middle, atol=1e-3)  # one eps for every sigma
    assert torch.equal(baselines.noise(t, 5, 3, 0.2), baselines.noise_frontier(t, 5, 3, [0.1, 0.2])[1][1])


def test_average_of_identical_rows_is_that_row():
    row = torch.randn(33)
    out = baselines.average(row.expand(20, 33).clone(), 4, 0, k=16)
    # Summing 16 equal float32 values then dividing by 16 rounds at most a few ulps.
    assert torch.allclose(out, row.expand(4, 33), rtol=1e-6, atol=0)


def test_average_means_k_distinct_rows():
    t = torch.eye(20) * 4.0  # row i is 4 e_i: an output reveals which rows it averaged
    out = baselines.average(t, 30, 1, k=4)
    assert bool(((out == 0) | (out == 1.0)).all()) and bool((out.sum(dim=1) == 4).all())


def reference_average_with_aliasing(t: torch.Tensor, draws: torch.Tensor, k: int) -> torch.Tensor:
    """The study's loop (P-diff/evaluation/baseline.py), restated: a list of per-checkpoint tensors; each output
    starts from the first drawn checkpoint *itself*, adds the others in place and divides in place."""
    checkpoints = [row.clone() for row in t]
    outputs = []
    for draw in draws.tolist():
        averaged = None
        for index in draw:
            if averaged is None:
                averaged = checkpoints[index]
            else:
                averaged += checkpoints[index]
        averaged /= k
        outputs.append(averaged.clone())  # torch.save writes a snapshot
    return torch.stack(outputs)


def test_average_quirk_differs_from_clean_exactly_as_the_aliasing_predicts():
    t, n, k, seed = torch.randn(40, 9), 30, 4, 7
    draws = baselines._subsets(40, n, k, torch.Generator().manual_seed(seed))  # the draws average makes
    quirk = baselines.average(t, n, seed, k=k, inplace_quirk=True)
    clean = baselines.average(t, n, seed, k=k)
    assert torch.equal(quirk, reference_average_with_aliasing(t, draws, k))
    # Clean: the same loop on fresh checkpoints for every output (same summation order, so bit-equal).
    assert torch.equal(clean, torch.cat([reference_average_with_aliasing(t, draw[None], k) for draw in draws]))
    # Output i is affected exactly when its draw contains a row drawn first by an earlier output.
    firsts: set[int] = set()
    predicted = []
    for i, draw in enumerate(draws.tolist()):
        if firsts & set(draw):
            predicted.append(i)
        firsts.add(draw[0])
    differs = [i for i in range(n) if not torch.equal(quirk[i], clean[i])]
    assert differs == predicted and len(predicted) > 0 and differs[0] > 0


def test_gaussian_mean_and_unbiased_std():
    scales = torch.tensor([0.1, 1.0, 2.0, 0.5], dtype=torch.float64)
    shifts = torch.tensor([0.0, 3.0, -1.0, 0.2], dtype=torch.float64)
    t = torch.randn(200, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * scales + shifts
    out = baselines.gaussian(t, 40000, 0)
    # 40,000 draws: means within 4 standard errors, stds within 2 %.
    assert bool(((out.mean(0) - t.mean(0)).abs() < 4 * t.std(0) / 200).all())
    assert torch.allclose(out.std(0), t.std(0), rtol=0.02)
    two = torch.tensor([[0.0] * 3, [2.0] * 3])  # mean 1; unbiased std sqrt(2), biased 1
    assert torch.allclose(baselines.gaussian(two, 40000, 1).std(0), torch.full((3,), math.sqrt(2)), rtol=0.02)


def test_interpolate_gives_convex_pairs_of_distinct_rows():
    t = torch.eye(6, dtype=torch.float64)
    out = baselines.interpolate(t, 500, 0)
    assert bool((out >= 0).all()) and torch.allclose(out.sum(1), torch.ones(500, dtype=torch.float64))
    assert bool(((out > 0).sum(1) <= 2).all())
    lam = out.max(1).values
    assert float(lam.min()) >= 0.5 and float(lam.max()) <= 1.0
    assert bool(((out > 0).sum(1) == 2).any())


BAD = [
    (lambda: baselines.copy(torch.zeros(5), 2, 0), ValueError, r"training must be a 2-D tensor \[N, D\]"),
    (lambda: baselines.copy(torch.zeros(2, 3, dtype=torch.int64), 2, 0), TypeError, "must be a floating tensor"),
    (lambda: baselines.copy(torch.zeros(0, 3), 2, 0), ValueError, "must be non-empty"),
    (lambda: baselines.copy(torch.tensor([[1.0, float("nan")]]), 2, 0), ValueError, "NaN or Inf"),
    (lambda: baselines.copy([[1.0]], 2, 0), TypeError, "training must be a torch.Tensor"),
    (lambda: baselines.copy(training(), 0, 0), ValueError, "n must be an int >= 1; got 0"),
    (lambda: baselines.copy(training(), True, 0), ValueError, "n must be an int >= 1; got True"),
    (lambda: baselines.copy(training(), 2, -1), ValueError, "seed must be an int >= 0; got -1"),
    (lambda: baselines.noise(training(), 2, 0, -0.1), ValueError, "sigma must be a finite number >= 0"),
    (lambda: baselines.noise(training(), 2, 0, float("inf")), ValueError, "sigma must be a finite number >= 0"),
    (lambda: baselines.noise_frontier(training(), 2, 0, []), ValueError, "sigmas must be a non-empty 1-D"),
    (lambda: baselines.noise_frontier(training(), 2, 0, [0.1, -1]), ValueError, "every sigma must be finite"),
    (lambda: baselines.noise_frontier(torch.ones(3, 2), 2, 0), ValueError, "pass sigmas"),
    (lambda: baselines.average(training(5), 2, 0, k=6), ValueError, "k must be between 1 and 5"),
    (lambda: baselines.average(training(5), 2, 0, k=0), ValueError, "k must be between 1 and 5"),
    (lambda: baselines.gaussian(training(1), 2, 0), ValueError, "gaussian needs training with at least 2 rows"),
    (lambda: baselines.interpolate(training(1), 2, 0), ValueError, "interpolate needs training with at least 2"),
]


@pytest.mark.parametrize("call, exc, match", BAD)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
