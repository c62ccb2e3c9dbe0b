"""The build, the extension boundary and backend dispatch (STYLE §6 test_build)."""
from __future__ import annotations

import warnings

import pytest
import torch

import weightmem_fast as wmf
from weightmem_fast import _dispatch, _ext


def test_extension_version_matches_package():
    # A stale _C from an older build would report its own version here.
    assert wmf.build_info()["version"] == wmf.__version__


def test_build_info_reports_the_build():
    info = wmf.build_info()
    assert set(info) >= {"version", "compiler", "cuda", "cuda_runtime", "cuda_archs", "openmp"}
    assert isinstance(info["cuda"], bool)
    if info["cuda"]:
        assert info["cuda_runtime"] >= 12000 and info["cuda_archs"]
    else:
        assert info["cuda_runtime"] == -1 and info["cuda_archs"] == ""
    assert info["openmp"] is False or info["openmp"] >= 1


def test_cuda_available_is_consistent_with_build_and_torch():
    expected = wmf.build_info()["cuda"] and torch.cuda.is_available() and _ext.cuda_device_count()[0] > 0
    assert wmf.cuda_available() is bool(expected)


FACTS = {"extension_loaded": True, "cuda_built": True, "cuda_devices": 1}


@pytest.mark.parametrize(
    "device_type,backend,facts,expected",
    [
        ("cpu", "auto", FACTS, ("cpu", "")),
        ("cpu", "cpu", FACTS, ("cpu", "")),
        ("cpu", "torch", FACTS, ("torch", "")),
        ("cuda", "auto", FACTS, ("cuda", "")),
        ("cuda", "cuda", FACTS, ("cuda", "")),
        ("cuda", "torch", FACTS, ("torch", "")),
        ("cuda", "auto", {**FACTS, "cuda_built": False}, ("torch", "the extension was built without CUDA kernels")),
        ("cuda", "auto", {**FACTS, "cuda_devices": 0}, ("torch", "no usable CUDA device")),
        ("mps", "auto", FACTS, ("torch", "no kernel for device type 'mps'")),
        ("cpu", "auto", {**FACTS, "cuda_built": False, "cuda_devices": 0}, ("cpu", "")),
    ],
)
def test_dispatch_pick(device_type, backend, facts, expected):
    assert tuple(_dispatch.pick(device_type, backend, **facts)) == expected


def test_dispatch_env_forces_the_twins():
    assert _dispatch.pick("cpu", "auto", env_backend="torch", **FACTS).impl == "torch"
    with pytest.raises(ValueError, match="WEIGHTMEM_FAST_BACKEND may only be 'torch'"):
        _dispatch.pick("cpu", "auto", env_backend="cuda", **FACTS)


@pytest.mark.parametrize(
    "device_type,backend,facts,exc,fragment",
    [
        ("cuda", "cuda", {**FACTS, "cuda_built": False}, RuntimeError, "WEIGHTMEM_FAST_CUDA=ON pip install"),
        ("cuda", "cuda", {**FACTS, "cuda_devices": 0}, RuntimeError, "no usable CUDA device"),
        ("cpu", "cuda", FACTS, ValueError, "needs CUDA tensors"),
        ("cuda", "cpu", FACTS, ValueError, "needs CPU tensors"),
        ("cpu", "fast", FACTS, ValueError, "backend must be one of"),
    ],
)
def test_dispatch_rejects_impossible_backends(device_type, backend, facts, exc, fragment):
    with pytest.raises(exc, match=fragment):
        _dispatch.pick(device_type, backend, **facts)


def test_env_backend_routes_ops_to_the_twin(monkeypatch):
    calls = []
    original = wmf.reference.nearest

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(wmf.reference, "nearest", spy)
    monkeypatch.setenv("WEIGHTMEM_FAST_BACKEND", "torch")
    x = torch.randn(5, 4)
    dist, idx = wmf.nearest(x, x, exclude_self=True)
    assert len(calls) == 1 and idx.shape == (5, 1)


def test_auto_fallback_warns_once_per_op(monkeypatch):
    monkeypatch.setattr(_dispatch, "_warned_ops", set())
    monkeypatch.setattr(_ext, "cuda_device_count", lambda: (0, "no CUDA-capable device is detected"))
    with pytest.warns(RuntimeWarning, match="running the pure-PyTorch reference on cuda"):
        assert _dispatch.choose("probe", "cuda", "auto") == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _dispatch.choose("probe", "cuda", "auto") == "torch"


def test_missing_extension_raises_with_the_import_error_chained(monkeypatch):
    cause = ImportError("libfoo.so: cannot open shared object file")
    monkeypatch.setattr(_ext, "_C", None)
    monkeypatch.setattr(_ext, "_IMPORT_ERROR", cause)
    with pytest.raises(RuntimeError, match="could not be imported") as info:
        wmf.nearest(torch.randn(3, 2), torch.randn(3, 2))
    assert info.value.__cause__ is cause
    dist, _ = wmf.nearest(torch.ones(2, 2), torch.zeros(3, 2), backend="torch")  # the twins need no extension
    assert torch.allclose(dist, torch.full((2, 1), 2**0.5))
