"""HyperDiffusion (issue 7, study_spec §5): unconditional x0-predicting diffusion transformer over occupancy MLPs."""
from __future__ import annotations

import pytest
import torch

import weightmem_fast as wmf
from weightmem_fast import fields
from weightmem_fast.generators import GaussianDiffusion, Optim, get
from weightmem_fast.generators import hyperdiffusion
from weightmem_fast.generators.hyperdiffusion import DEMO_ZOO, HyperDiffusion, HyperDiffusionConfig, demo_zoo
from weightmem_fast.generators.hyperdiffusion_net import HyperDiffusionDenoiser
from weightmem_fast.generators.tokenize import Tokenizer
from weightmem_fast.io import Zoo
from weightmem_fast.layout import ParamLayout
from weightmem_fast.symmetry import permutation_augment

# Seconds on 2 cores: a 4-wide, 2-layer occupancy MLP (D = 65), a 16-wide transformer, the published 500 steps.
TINY = HyperDiffusionConfig(width=16, depth=1, heads=2, num_frequencies=8, batch_size=8,
                            optim=Optim(steps=20, lr=1e-3))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _occupancy_zoo(n: int, seed: int = 0, **arch: int) -> Zoo:
    """n randomly initialised OccupancyMLPs (enough for shapes, seeds and save/load)."""
    layout = ParamLayout.from_module(fields.OccupancyMLP(**arch))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        weights = torch.cat([layout.flatten(fields.OccupancyMLP(**arch).state_dict()) for _ in range(n)])
    return Zoo(weights, layout)


@pytest.fixture(scope="module")
def zoo():
    return _occupancy_zoo(12, frequencies=1, hidden=4, layers=2)


@pytest.fixture(scope="module")
def fitted(zoo):
    return HyperDiffusion().fit(zoo, TINY, progress=False)


def test_hyperdiffusion_registered_with_the_published_paper_config():
    assert get("hyperdiffusion") is HyperDiffusion
    paper = HyperDiffusion.configs["paper"]  # study_spec §5.2, train_plane.yaml
    assert (paper.width, paper.depth, paper.heads, paper.max_token_size) == (2880, 12, 16, None)
    assert (paper.diffusion_steps, paper.beta_start, paper.beta_end) == (500, 1e-4, 2e-2)
    assert (paper.sampling_steps, paper.eta, paper.normalization_factor) == (None, 0.0, 1.0)
    assert (paper.batch_size, paper.optim.lr) == (32, 2e-4)
    assert DEMO_ZOO["init"] == "first_weights"


def test_hyperdiffusion_paper_transformer_has_the_published_size():
    # study_spec §5.2: 8 tensor tokens + 1 timestep token, about 1.4B parameters; built on the meta device.
    layout = ParamLayout.from_module(fields.OccupancyMLP(4, 128, 3))
    assert layout.size == 36_737
    tokenizer = Tokenizer.per_tensor(layout)
    cfg = HyperDiffusion.configs["paper"]
    with torch.device("meta"):
        net = HyperDiffusionDenoiser(tokenizer, cfg.width, cfg.depth, cfg.heads, cfg.mlp_ratio, cfg.num_frequencies,
                                     cfg.max_log2)
    assert tuple(net.pos_emb.shape) == (1, 9, 2880)
    assert 1.3e9 < sum(p.numel() for p in net.parameters()) < 1.5e9


def test_hyperdiffusion_tokenises_one_token_per_tensor_and_chunks_large_ones(zoo, fitted):
    assert fitted.tokenizer.num_tokens == len(zoo.layout.entries) == 6
    assert fitted.tokenizer.token_size == max(entry.numel for entry in zoo.layout.entries)
    assert tuple(fitted.net.pos_emb.shape[:2]) == (1, 7)  # plus the timestep token
    chunked = HyperDiffusion().fit(zoo, TINY, progress=False, max_token_size=10, optim={"steps": 1})
    # net.0.weight [4, 9] = 36 values -> 10, 10, 10, 6; net.2.weight [4, 4] = 16 -> 10, 6; biases and the rest one each
    sizes = chunked.tokenizer.mask.sum(dim=1).tolist()
    assert sizes == [10, 10, 10, 6, 4, 10, 6, 4, 4, 1]
    x = zoo.weights[:3]
    assert torch.equal(chunked.tokenizer.flat(chunked.tokenizer.tokens(x)), x)


def test_hyperdiffusion_follows_the_generator_contract(fitted, zoo, check_generator_contract):
    refits = []

    def refit():
        refits.append(HyperDiffusion().fit(zoo, TINY, progress=False))
        return refits[-1]

    check_generator_contract(fitted, zoo.layout, refit)
    assert refits[0].losses == fitted.losses


def test_hyperdiffusion_samples_with_ddim_eta_zero_over_all_500_steps(fitted, monkeypatch):
    calls = []
    original = GaussianDiffusion.ddim_sample

    def spy(self, model, shape, **kwargs):
        calls.append((self.prediction, self.schedule, self.steps, kwargs["steps"], kwargs["eta"]))
        return original(self, model, shape, **kwargs)

    monkeypatch.setattr(GaussianDiffusion, "ddim_sample", spy)
    fitted.sample(2, seed=0)
    assert calls == [("x0", "linear", 500, None, 0.0)]
    assert fitted.diffusion.ddim_timesteps(None) == list(range(499, -1, -1))


def test_hyperdiffusion_ddim_eta_zero_is_a_deterministic_map_of_the_noise(fitted, zoo):
    x_T = torch.randn(3, zoo.layout.size)
    runs = [fitted.diffusion.ddim_sample(fitted.net, x_T.shape, x_T=x_T, eta=0.0,
                                         generator=torch.Generator().manual_seed(seed)) for seed in (0, 1)]
    assert torch.equal(runs[0], runs[1])  # no noise is drawn after x_T
    noisy = fitted.diffusion.ddim_sample(fitted.net, x_T.shape, x_T=x_T, eta=1.0,
                                         generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(noisy, runs[0])


def test_hyperdiffusion_denoiser_predicts_x0_from_the_timestep(fitted, zoo):
    x = zoo.weights[:2]
    with torch.no_grad():
        out = [fitted.net(x, torch.tensor([t, t])) for t in (0, 250)]
    assert out[0].shape == x.shape
    assert not torch.allclose(out[0], out[1])  # the timestep token matters


def test_hyperdiffusion_is_unconditional(fitted):
    with pytest.raises(ValueError, match="unconditional"):
        fitted.sample(2, seed=0, target_loss=0.0)


def test_hyperdiffusion_rejects_a_bad_augmentation_factor():
    with pytest.raises(ValueError, match="permutation_augment"):
        HyperDiffusionConfig(permutation_augment=0)


def test_permutation_augmentation_preserves_the_occupancy_function():
    zoo = _occupancy_zoo(3, seed=1, frequencies=2, hidden=8, layers=3)
    augmented = permutation_augment(zoo.weights, zoo.layout, 4, torch.Generator().manual_seed(0))
    assert augmented.shape == (12, zoo.layout.size)
    assert torch.equal(augmented[:3], zoo.weights)
    points = torch.rand(500, 3) - 0.5
    original = fields.occupancy_logits(zoo.weights, zoo.layout, points).repeat(4, 1)
    permuted = fields.occupancy_logits(augmented, zoo.layout, points)
    # Same sums in another order: equal up to float32 rounding (measured worst case about 1e-7).
    torch.testing.assert_close(permuted, original, rtol=1e-5, atol=1e-5)
    moved = (augmented[3:] - zoo.weights.repeat(3, 1)).abs().amax(dim=1)
    assert bool((moved > 0).all())  # every copy is really permuted
    assert torch.equal(augmented[3:].sort(dim=1).values, zoo.weights.repeat(3, 1).sort(dim=1).values)


def test_hyperdiffusion_fit_with_permutation_augmentation(zoo, monkeypatch):
    sizes = []

    def spy(weights, permuter, factor, generator=None):
        out = permutation_augment(weights, permuter, factor, generator)
        sizes.append(out.shape[0])
        return out

    monkeypatch.setattr(hyperdiffusion, "permutation_augment", spy)
    generator = HyperDiffusion().fit(zoo, TINY, progress=False, permutation_augment=2, optim={"steps": 2})
    assert sizes == [2 * len(zoo)]
    assert generator.sample(2, seed=0).shape == (2, zoo.layout.size)


@pytest.mark.slow
def test_hyperdiffusion_demo_samples_are_shapes_close_to_the_training_shapes():
    zoo = demo_zoo()
    assert {row["init"] for row in zoo.metadata} == {"first_weights"}
    generator = HyperDiffusion().fit(zoo, "demo", progress=False)
    samples = generator.sample(32, seed=0)
    clouds = fields.field_to_points(samples, zoo.layout, resolution=48, n_points=1024)
    assert float(clouds.ok.float().mean()) >= 0.75  # surfaces for most samples
    shapes = fields.make_shapes(DEMO_ZOO["family"], DEMO_ZOO["shapes"])
    reference = fields.normalize_clouds(fields.shape_points(shapes, resolution=64, n_points=1024).points)
    quality = wmf.nearest_shape(fields.normalize_clouds(clouds.points[clouds.ok]), reference)[0].mean()
    random = _occupancy_zoo(32, seed=1, **zoo.metadata[0]["arch_kwargs"])
    random_clouds = fields.field_to_points(random.weights, zoo.layout, resolution=48, n_points=1024)
    assert float(random_clouds.ok.float().mean()) < float(clouds.ok.float().mean())
    if random_clouds.ok.any():
        baseline = wmf.nearest_shape(fields.normalize_clouds(random_clouds.points[random_clouds.ok]), reference)[0]
        assert float(quality) < 0.5 * float(baseline.mean())


def test_hyperdiffusion_regularisers_of_the_ablation(zoo, check_regularisers):
    x = zoo.weights[:3]

    def denoiser(p):
        net = HyperDiffusionDenoiser(Tokenizer.per_tensor(zoo.layout), width=16, depth=2, heads=2, dropout=p)
        return net, (x, torch.tensor([1, 5, 9]))

    config = TINY.replace(weight_noise=0.3, optim={"steps": 2})
    check_regularisers(hyperdiffusion, lambda: HyperDiffusion().fit(zoo, config, progress=False),
                       0.3 * float(zoo.weights.std()), denoiser)
    for bad in ({"dropout": 1.0}, {"weight_noise": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TINY.replace(**bad)
