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
