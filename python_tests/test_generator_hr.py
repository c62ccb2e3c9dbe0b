"""Hyper-Representations generator "hr" (issue 7, study_spec §3): interface, augmentations, loss, KDE sampler."""
from __future__ import annotations

import contextlib
import time

import pytest
import torch

import weightmem_fast as wmf
from weightmem_fast import generators, zoo
from weightmem_fast.generators.hr import HRConfig, HyperRepresentations, demo_zoo
from weightmem_fast.generators.hr_augment import random_erase
from weightmem_fast.generators.hr_kde import kde_sample_per_dim, top_quantile_rows
from weightmem_fast.generators.hr_model import nt_xent
from weightmem_fast.generators.training import add_noise
from weightmem_fast.io import Zoo
from weightmem_fast.layout import ParamLayout

# A few steps of a small autoencoder: enough to exercise every path in about a second.
# Chance is 0.1 on 10 classes (measured at demo size: see test_hr_demo_samples_are_accurate).
DEMO_MIN_ACCURACY = 0.5

# A few steps of a small autoencoder: enough to exercise every path in about a second.
TINY = {"d_model": 16, "heads": 2, "layers": 1, "d_ff": 32, "latent_dim": 8, "projection_dim": 4,
        "permutations": 4, "batch_size": 4, "optim": {"steps": 3, "warmup_steps": 0}}


@contextlib.contextmanager
def _single_thread():
    # Tiny models on a shared 2-core machine: extra intra-op threads only add contention.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _one_thread():
    with _single_thread():
        yield


@pytest.fixture(scope="module")
def data():
    return zoo.digits()


@pytest.fixture(scope="module")
def cnn_zoo() -> Zoo:
    """Six freshly initialised digits CNNs (D = 2,464) with made-up accuracies 0.0, 0.1, ..., 0.5."""
    layout = ParamLayout.from_module(zoo.cnn(1, 8))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        weights = torch.cat([layout.flatten(zoo.cnn(1, 8).state_dict()) for _ in range(6)])
    metadata = [{"arch": "cnn", "arch_kwargs": {}, "input_shape": [1, 8, 8], "classes": 10,
                 "test_accuracy": 0.1 * i} for i in range(6)]
    return Zoo(weights, layout, metadata)


@pytest.fixture(scope="module")
def fitted(cnn_zoo) -> HyperRepresentations:
    with _single_thread():
        return HyperRepresentations().fit(cnn_zoo, "demo", progress=False, **TINY)


# ------------------------------------------------------------------------------------------------------------------
# Interface
# ------------------------------------------------------------------------------------------------------------------

def test_hr_is_registered_with_demo_and_paper_configs():
    assert generators.get("hr") is HyperRepresentations
    assert isinstance(HyperRepresentations.configs["demo"], HRConfig)
    assert HyperRepresentations.configs["paper"].d_model > HyperRepresentations.configs["demo"].d_model


def test_hr_follows_the_generator_contract(fitted, cnn_zoo, check_generator_contract):
    refits = []

    def refit():
        with _single_thread():
            refits.append(HyperRepresentations().fit(cnn_zoo, "demo", progress=False, **TINY))
        return refits[-1]

    loaded = check_generator_contract(fitted, cnn_zoo.layout, refit)
    assert torch.equal(refits[0].latents, fitted.latents)
    assert torch.equal(loaded.sample(6, seed=1, kde_quirk=True), fitted.sample(6, seed=1, kde_quirk=True))


def test_hr_reconstruct_returns_flat_weights_of_the_input_shape(fitted, cnn_zoo):
    recon = fitted.reconstruct(cnn_zoo.weights[:3])
    assert recon.shape == (3, 2464) and torch.isfinite(recon).all()
    assert fitted.encode(cnn_zoo.weights[:3]).shape == (3, fitted.config.latent_dim)
    with pytest.raises(ValueError, match=r"\[B, 2464\]"):
        fitted.reconstruct(cnn_zoo.weights[:, :10])


def test_hr_keeps_the_top_30_percent_latents(fitted, cnn_zoo):
    # accuracies 0.0 .. 0.5: the 70th percentile is 0.35, so rows 4 and 5 are kept, encoded as in fit
    assert torch.equal(fitted.latents, fitted.encode(cnn_zoo.weights[4:6]))


def test_hr_fit_needs_the_ranking_metadata(cnn_zoo):
    bare = Zoo(cnn_zoo.weights, cnn_zoo.layout, [{} for _ in range(len(cnn_zoo))])
    with pytest.raises(ValueError, match="test_accuracy"):
        HyperRepresentations().fit(bare, "demo", progress=False, **TINY)


def test_hr_config_rejects_bad_values():
    with pytest.raises(ValueError, match="gamma"):
        HRConfig(gamma=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        HRConfig(batch_size=1)


# ------------------------------------------------------------------------------------------------------------------
# Method-specific pieces
# ------------------------------------------------------------------------------------------------------------------

def test_noise_and_erasing_augmentations():
    ones = torch.ones(200, 100)
    noisy = add_noise(ones, 0.1, torch.Generator().manual_seed(0))
    assert abs(float((noisy - 1).std()) - 0.1) < 0.005
    erased = random_erase(ones, 0.5, (0.1, 0.3), generator=torch.Generator().manual_seed(0))
    zeros = (erased == 0).sum(dim=1)
    hit = zeros > 0
    assert 0.35 < hit.float().mean() < 0.65 and zeros[hit].min() >= 10 and zeros.max() <= 30
    for row in erased[hit]:  # one contiguous block per erased row
        where = torch.nonzero(row == 0).flatten()
        assert int(where[-1] - where[0]) + 1 == where.numel()


def test_nt_xent_is_lower_for_matching_views_than_for_shuffled_pairs():
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    matched = nt_xent(z, z, temperature=0.1)
    shuffled = nt_xent(z, z[torch.roll(torch.arange(16), 1)], temperature=0.1)
    assert matched < 0.1 < shuffled
    # uninformative embeddings (all equal): each row is classified uniformly among the other 2B - 1
    same = torch.ones(4, 3)
    torch.testing.assert_close(nt_xent(same, same, 0.5), torch.tensor(7.0).log())


def test_top_quantile_rows_keeps_scores_at_or_above_the_quantile():
    scores = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
    # torch.quantile interpolates: the 0.7 quantile of 0.0 .. 0.9 is 0.63, so 0.7, 0.8 and 0.9 are kept
    assert top_quantile_rows(scores, 0.7).tolist() == [2, 4, 6]
    assert top_quantile_rows(scores, 0.0).tolist() == list(range(10))


def test_independent_kde_draws_each_dimension_from_its_own_row():
    latents = torch.arange(50.0).view(5, 10) * 100  # row r, dim d holds 1000 r + 100 d: rows are recoverable
    draws = kde_sample_per_dim(latents, 200, 1.0, torch.Generator().manual_seed(0))
    rows = ((draws - torch.arange(10) * 100) / 1000).round()
    assert ((draws - (rows * 1000 + torch.arange(10) * 100)).abs() < 6).all()  # within 6 bandwidths of a point
    assert (rows != rows[:, :1]).any(dim=1).float().mean() > 0.9  # dimensions pick different rows
    offsets = draws - latents.gather(0, rows.long())
    assert abs(float(offsets.std()) - 1.0) < 0.1


def test_kde_quirk_samples_are_one_training_latent_plus_a_constant_shift(fitted):
    draws = fitted.sample_latents(50, seed=2, kde_quirk=True)
    # each draw minus its nearest kept latent is one constant in every coordinate
    nearest = torch.cdist(draws.double(), fitted.latents.double()).argmin(dim=1)
    shift = draws - fitted.latents[nearest]
    torch.testing.assert_close(shift, shift[:, :1].expand_as(shift), rtol=0, atol=1e-6)
    bandwidth = fitted.config.kde_bandwidth * float(fitted.latents.std())
    assert 0 < float(shift[:, 0].abs().max()) < 6 * bandwidth
    assert not torch.allclose(shift[:, 0], shift[0, 0])  # a fresh normal draw per sample
    # the published (independent) sampler mixes rows across dimensions, so its draws are not such copies
    independent = fitted.sample_latents(50, seed=2)
    nearest = torch.cdist(independent.double(), fitted.latents.double()).argmin(dim=1)
    spread = (independent - fitted.latents[nearest]).std(dim=1)
    assert (spread > 10 * bandwidth).any()


def test_hr_sample_decodes_the_sampled_latents(fitted):
    torch.testing.assert_close(fitted.sample(3, seed=5, kde_quirk=True),
                               fitted.decode(fitted.sample_latents(3, seed=5, kde_quirk=True)))


# ------------------------------------------------------------------------------------------------------------------
# Demo size on the built-in data (slow)
# ------------------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_hr_demo_samples_are_accurate(data):
    cnn_zoo = demo_zoo()
    start = time.perf_counter()
    generator = HyperRepresentations().fit(cnn_zoo, "demo", progress=False)
    elapsed = time.perf_counter() - start
    template = zoo.cnn(1, 8)

    def accuracy(weights: torch.Tensor) -> float:
        return float(wmf.evaluate(template, weights, data.test_x, data.test_y, cnn_zoo.layout).accuracy.mean())

    scores = torch.tensor([entry["test_accuracy"] for entry in cnn_zoo.metadata])
    kept = top_quantile_rows(scores, 0.7)
    reconstructed = accuracy(generator.reconstruct(cnn_zoo.weights[kept]))
    study = accuracy(generator.sample(100, seed=0, kde_quirk=True))
    independent = accuracy(generator.sample(100, seed=0))
    print(f"hr demo: fit {elapsed:.0f} s; mean accuracy: kept training {float(scores[kept].mean()):.3f}, "
          f"reconstructed {reconstructed:.3f}, samples (study's sampler) {study:.3f}, samples (independent "
          f"per-dimension KDE) {independent:.3f}")
    # The study's sampler decodes kept training latents (shifted by a tiny constant), so its samples score like the
    # reconstructions; measured 0.77 and 0.78 (training 0.94). The independent sampler recombines coordinates of
    # latents from different runs, which this small autoencoder decodes into chance-level models (measured 0.10),
    # so it is reported, not asserted.
    assert reconstructed > DEMO_MIN_ACCURACY and study > DEMO_MIN_ACCURACY


def test_hr_weight_noise_of_the_ablation(cnn_zoo, check_regularisers):
    from weightmem_fast.generators import hr

    # Layer-standardised units: weight_noise is the noise std itself (HR's transformer has dropout already).
    check_regularisers(hr, lambda: HyperRepresentations().fit(cnn_zoo, "demo", progress=False,
                                                              **{**TINY, "weight_noise": 0.3}), 0.3)
    with pytest.raises(ValueError, match="weight_noise"):
        HRConfig(weight_noise=-0.5)
