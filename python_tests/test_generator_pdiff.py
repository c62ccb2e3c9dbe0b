"""P-diff (issue 7, study_spec §6): latent DDPM over consecutive checkpoints of a cnn_bn's last BatchNorm layers."""
from __future__ import annotations

import copy

import pytest
import torch

import weightmem_fast as wmf
from weightmem_fast.generators import GaussianDiffusion, Optim, Standardizer, get
from weightmem_fast.generators.pdiff import PDiff, PDiffConfig
from weightmem_fast.generators.pdiff_nets import OneDimAE, OneDimUNet
from weightmem_fast.generators.pdiff_zoo import pdiff_zoo
from weightmem_fast.zoo import consecutive_checkpoints, digits, make_model, model_from_zoo, pdiff_subset, train_zoo

# Seconds on 2 cores: a width-2 cnn_bn (subset of 16 values), 24 checkpoints, 50 diffusion steps.
TINY = PDiffConfig(ae_channels=(4, 4), latent_dim=8, ae_batch_size=8, ae_optim=Optim(steps=30, lr=1e-3),
                   unet_channels=(4, 8), unet_bottleneck=8, time_dim=8, diffusion_steps=50, ddpm_batch_size=8,
                   ddpm_optim=Optim(steps=30, lr=1e-3))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    return digits()


@pytest.fixture(scope="module")
def base_zoo(data):
    """The base model as a one-row train_zoo zoo (its metadata rebuilds the architecture)."""
    return train_zoo("cnn_bn", data, 1, 1, width=2, progress=False)


@pytest.fixture(scope="module")
def zoo(data, base_zoo):
    subset = pdiff_subset(model_from_zoo(base_zoo, 0))  # layer2.1.bn1, layer2.1.bn2: 16 values at width 2
    return consecutive_checkpoints(base_zoo, data, subset, 24, batch_size=8, progress=False)


@pytest.fixture(scope="module")
def fitted(zoo, base_zoo):
    return PDiff().fit(zoo, TINY, base=base_zoo, progress=False)


def test_pdiff_registered_with_demo_and_paper_configs():
    assert get("pdiff") is PDiff
    assert {"demo", "paper"} <= set(PDiff.configs)
    paper = PDiff.configs["paper"]  # study_spec §6.2
    assert (paper.ae_channels, paper.latent_dim, paper.kernel_size) == ((64, 128, 256, 256, 32), 128, 7)
    assert (paper.input_noise, paper.latent_noise) == (0.001, 0.1)
    assert (paper.diffusion_steps, paper.beta_start, paper.beta_end) == (1000, 1e-4, 2e-2)


def test_pdiff_paper_networks_have_the_published_sizes():
    # study_spec §6.2 infers about 2.5M (denoiser) and 2.2M (VAE) parameters from the layer shapes; our AE lacks
    # only the unused log-variance head (128 x 128 + 128 = 16,512 values).
    cfg = PDiff.configs["paper"]
    ae = OneDimAE(2048, cfg.ae_channels, cfg.latent_dim, cfg.kernel_size)
    unet = OneDimUNet(cfg.latent_dim, cfg.unet_channels, cfg.unet_bottleneck, cfg.time_dim, cfg.kernel_size)
    assert ae.reduced == 64  # 2048 halved five times, as P-diff's encoder
    assert 2.1e6 < sum(p.numel() for p in ae.parameters()) < 2.3e6
    assert 2.4e6 < sum(p.numel() for p in unet.parameters()) < 2.6e6
    assert [layer[0].out_channels for layer in unet.down] == [64, 128, 256, 512, 256]
    assert [layer[0].out_channels for layer in unet.up[:-1]] + [unet.up[-1].out_channels] == [128, 64, 1]
    with torch.no_grad():  # the skip additions and the time embedding fit these widths and lengths
        assert ae.eval().decode(ae.encode(torch.randn(2, 2048))).shape == (2, 2048)
        assert unet.eval()(torch.randn(2, 1, 128), torch.tensor([0, 999])).shape == (2, 1, 128)


def test_pdiff_follows_the_generator_contract(fitted, zoo, base_zoo, check_generator_contract):
    refits = []

    def refit():
        refits.append(PDiff().fit(zoo, TINY, base=base_zoo, progress=False))
        return refits[-1]

    loaded = check_generator_contract(fitted, zoo.layout, refit)
    assert refits[0].ae_losses == fitted.ae_losses and refits[0].ddpm_losses == fitted.ddpm_losses
    rebuilt, original = loaded.base_model().state_dict(), fitted.base_model().state_dict()
    assert rebuilt.keys() == original.keys()
    assert all(torch.equal(rebuilt[key], original[key]) for key in original)


def test_pdiff_base_given_as_module_needs_a_template_after_load(zoo, base_zoo, tmp_path):
    module = model_from_zoo(base_zoo, 0)
    generator = PDiff().fit(zoo, TINY, base=module, progress=False, ae_optim={"steps": 2},
                            ddpm_optim={"steps": 2})
    loaded = PDiff.load(generator.save(tmp_path / "g"))
    with pytest.raises(RuntimeError, match="template="):
        loaded.base_model()
    template = make_model("cnn_bn", (1, 8, 8), 10, seed=123, width=2)
    rebuilt = loaded.base_model(template)
    assert all(torch.equal(rebuilt.state_dict()[k], v) for k, v in module.state_dict().items())


def test_pdiff_fit_needs_a_matching_base(zoo):
    with pytest.raises(ValueError, match="base="):
        PDiff().fit(zoo, TINY, progress=False)
    wider = make_model("cnn_bn", (1, 8, 8), 10, seed=0, width=4)
    with pytest.raises(ValueError, match="layer2.1.bn1.weight"):
        PDiff().fit(zoo, TINY, base=wider, progress=False)
    with pytest.raises(TypeError, match="nn.Module or a one-row Zoo"):
        PDiff().fit(zoo, TINY, base="resnet", progress=False)


def test_pdiff_samples_with_eps_prediction_ddpm_and_the_posterior_variance(fitted, monkeypatch):
    calls = []
    original = GaussianDiffusion.ddpm_sample

    def spy(self, model, shape, **kwargs):
        calls.append((self.prediction, self.schedule, self.steps, kwargs["variance"], tuple(shape)))
        return original(self, model, shape, **kwargs)

    monkeypatch.setattr(GaussianDiffusion, "ddpm_sample", spy)
    fitted.sample(2, seed=0)
    assert calls == [("eps", "linear", TINY.diffusion_steps, "posterior", (2, 1, TINY.latent_dim))]


def test_pdiff_is_unconditional(fitted):
    with pytest.raises(ValueError, match="unconditional"):
        fitted.sample(2, seed=0, target_loss=0.0)


def test_pdiff_standardises_each_tensor_with_per_model_statistics(fitted, zoo):
    expected = Standardizer.fit(zoo.weights, zoo.layout, granularity="tensor", statistics="per_model")
    assert torch.equal(fitted.standardizer.shift, expected.shift)
    assert torch.equal(fitted.standardizer.scale, expected.scale)


def test_pdiff_noise_is_applied_only_in_training():
    torch.manual_seed(0)
    x = torch.randn(6, 40)
    ae = OneDimAE(40, (4, 4), 8, input_noise=0.1, latent_noise=0.5)
    ae.eval()
    assert torch.equal(ae(x), ae(x))
    assert torch.equal(ae(x), ae.decode(ae.encode(x)))
    ae.train()
    assert not torch.allclose(ae(x), ae(x))
    quiet = OneDimAE(40, (4, 4), 8, input_noise=0.0, latent_noise=0.0)
    quiet.train()
    assert torch.equal(quiet(x), quiet(x))  # so the difference above is the noise, not BatchNorm


def test_pdiff_autoencoder_pads_any_length():
    ae = OneDimAE(37, (4, 4, 4), 8).eval()  # 37 is padded to 40 = 5 x 2^3
    assert ae.length == 40
    assert ae.decode(ae.encode(torch.randn(3, 37))).shape == (3, 37)


def test_pdiff_autoencoder_reconstructs_training_checkpoints(zoo, base_zoo):
    generator = PDiff().fit(zoo, TINY, base=base_zoo, progress=False, ae_optim={"steps": 400, "lr": 3e-3},
                            ddpm_optim={"steps": 1})
    x = generator.standardizer.normalize(zoo.weights)
    with torch.no_grad():
        error = (generator.autoencoder(x) - x).pow(2).mean()
        spread = (x - x.mean(dim=0)).pow(2).mean()  # what predicting the mean checkpoint would cost
    assert generator.ae_losses[-1] < 0.2 * generator.ae_losses[0]
    assert error < 0.1 * spread  # measured: 0.01 vs 0.6 after 400 steps; above the spread after 30


def test_pdiff_decode_batchnorm_quirk_uses_per_sample_statistics(fitted):
    quirky = copy.deepcopy(fitted)
    quirky.config = fitted.config.replace(decode_batchnorm_quirk=True)
    running = [buffer.clone() for buffer in quirky.autoencoder.buffers()]
    samples = quirky.sample(3, seed=0)
    assert bool(torch.isfinite(samples).all())
    assert not torch.allclose(samples, fitted.sample(3, seed=0))  # same latents, other BatchNorm statistics
    assert all(torch.equal(a, b) for a, b in zip(running, quirky.autoencoder.buffers()))  # running stats kept
    assert not any(module.training for module in quirky.autoencoder.modules())  # modes restored


@pytest.mark.slow
def test_pdiff_demo_samples_are_as_accurate_as_the_training_checkpoints(data):
    base, zoo = pdiff_zoo(progress=False)
    generator = PDiff().fit(zoo, "demo", base=base, progress=False)
    samples = generator.sample(50, seed=0)
    scores = wmf.evaluate(generator.base_model(), samples, data.test_x, data.test_y, layout=zoo.layout)
    training = torch.tensor([row["test_accuracy"] for row in zoo.metadata])
    assert float(scores.accuracy.mean()) > 0.9  # chance is 0.1
    assert float(scores.accuracy.mean()) > float(training.mean()) - 0.02
    assert float(scores.accuracy.min()) > float(training.min()) - 0.05
