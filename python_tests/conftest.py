"""Shared fixtures: seeding, full-precision references, and the CPU/CUDA device matrix (STYLE §6).

The GPU is probed only inside fixtures, never at import or collection time; CUDA cases are collected everywhere
and show up as skipped (with the reason) under -ra on machines without a GPU.
"""
from __future__ import annotations

import pytest
import torch

import weightmem_fast as wmf


@pytest.fixture(autouse=True)
def _seed_and_full_precision():
    torch.manual_seed(0)
    # References must not run in TF32 (as KeOps' tests); the ops themselves bound whatever mode is set.
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """Runs a module on one torch thread, restoring the count after: tiny models on the shared 2-core machine only
    gain contention from a second intra-op thread. Module scope, so module-scoped fixtures (trained generators)
    are built under it too; modules take it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cuda_device() -> str:
    if not wmf.cuda_available():
        pytest.skip("needs a GPU and the CUDA kernels")
    return "cuda"


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request) -> str:
    if request.param == "cuda":
        return request.getfixturevalue("cuda_device")
    return "cpu"


@pytest.fixture
def check_generator_contract(tmp_path):
    """``check(fitted, layout, refit)``: the common ``Generator`` interface (issue 7) that every method's test module
    runs on its tiny fitted generator. Samples are float32 [n, D] in ``layout``, finite, equal for equal seeds and
    different for other seeds (and within a call); ``refit()`` (a second fit with the same config) samples the same;
    a ``save`` / ``Generator.load`` round trip keeps the class and config and samples the same. Returns the loaded
    generator for method-specific checks."""
    from weightmem_fast.generators import Generator

    def check(fitted, layout, refit):
        samples = fitted.sample(4, seed=3)
        assert samples.shape == (4, layout.size) and samples.dtype == torch.float32 and fitted.layout == layout
        assert bool(torch.isfinite(samples).all())
        assert torch.equal(samples, fitted.sample(4, seed=3))
        assert not torch.allclose(samples, fitted.sample(4, seed=4))
        assert not torch.allclose(samples[0], samples[1])  # distinct samples within a call
        assert torch.equal(refit().sample(3, seed=0), fitted.sample(3, seed=0))
        loaded = Generator.load(fitted.save(tmp_path / "generator"))
        assert type(loaded) is type(fitted) and loaded.config == fitted.config
        assert torch.equal(loaded.sample(4, seed=7), fitted.sample(4, seed=7))
        return loaded

    return check


@pytest.fixture
def check_regularisers(monkeypatch):
    """``check(module, fit, noise_std, dropout_net=None)``, for the transformer generators' ablation regularisers
    (issue 11). ``fit()`` must fit with ``weight_noise > 0``; spying on ``module.add_noise`` shows that the training
    weights got Gaussian noise of std ``noise_std`` (the config's weight_noise in the method's training space).
    ``dropout_net(p)``, when given, builds the method's denoiser with dropout ``p``: every dropout layer then has
    ``p``, a train-mode forward pass is random and an eval-mode one is not."""
    def check(module, fit, noise_std, dropout_net=None):
        calls = []
        real = module.add_noise

        def spy(flat, sigma, generator=None):
            out = real(flat, sigma, generator)
            calls.append((sigma, float((out - flat).std()) if sigma else 0.0))
            return out

        monkeypatch.setattr(module, "add_noise", spy)
        fit()
        deviations = [deviation for sigma, deviation in calls if sigma == pytest.approx(noise_std, rel=1e-4)]
        assert deviations, f"no add_noise call with sigma {noise_std}; calls (sigma, deviation std): {calls[:5]}"
        assert all(deviation == pytest.approx(noise_std, rel=0.2) for deviation in deviations)
        if dropout_net is not None:
            net, inputs = dropout_net(0.25)
            rates = [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)] + \
                [m.dropout for m in net.modules() if isinstance(m, torch.nn.MultiheadAttention)]
            assert len(rates) >= 3 and all(rate == 0.25 for rate in rates)
            with torch.no_grad():
                net.train()
                assert not torch.equal(net(*inputs), net(*inputs))
                net.eval()
                assert torch.equal(net(*inputs), net(*inputs))

    return check
