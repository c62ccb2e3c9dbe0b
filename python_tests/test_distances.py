"""pairwise_distance against extended-precision oracles and its torch twin (issue 3)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import weightmem_fast as wmf
from weightmem_fast import _testing
from weightmem_fast.ops import _gram

# Contract: relative error <= 1e-6 for float32 output (measured worst case so far: 6e-8, the final rounding),
# <= 1e-10 for float64 output.
F32_RTOL = 1e-6
F64_RTOL = 1e-10


def oracle(x: torch.Tensor, y: torch.Tensor, metric: str) -> np.ndarray:
    """The metric from longdouble direct differences (of unit rows for cosine)."""
    if metric == "cosine":
        x64, y64 = x.double(), y.double()
        xn = x64.numpy().astype(np.longdouble)
        yn = y64.numpy().astype(np.longdouble)
        xn /= np.sqrt((xn * xn).sum(axis=1, keepdims=True))
        yn /= np.sqrt((yn * yn).sum(axis=1, keepdims=True))
        return ((xn[:, None, :] - yn[None, :, :]) ** 2).sum(axis=2) / 2
    sq = _testing.exact_sqdist(x, y)
    return np.sqrt(sq) if metric == "l2" else sq


@pytest.mark.parametrize("metric", ["l2", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("n,m,d", [(1, 1, 1), (1, 5, 31), (7, 1, 33), (13, 9, 257), (5, 4, 2464), (3, 3, 7960),
                                   (2, 3, 36737), (4, 6, 2048)])
def test_pairwise_matches_oracle_on_edge_shapes(device, metric, n, m, d):
    x, y = torch.randn(n, d), torch.randn(m, d)
    out = wmf.pairwise_distance(x.to(device), y.to(device), metric)
    assert out.shape == (n, m) and out.dtype == torch.float32 and out.device.type == device
    assert _testing.relative_error(out, oracle(x, y, metric)).max() <= F32_RTOL


@pytest.mark.parametrize("eps", [1e-7, 1e-6, 1e-5, 1e-4, 1e-3])
@pytest.mark.parametrize("d", [10, 2048, 36737])
def test_pairwise_exact_for_near_duplicates(device, eps, d):
    training, generated, _ = _testing.near_duplicates(12, d, eps, seed=3)
    out = wmf.pairwise_distance(generated.to(device), training.to(device))
    err = _testing.relative_error(out, np.sqrt(_testing.exact_sqdist(generated, training)))
    assert err.max() <= F32_RTOL


def test_pairwise_of_a_set_with_itself_has_exact_zero_diagonal(device):
    x = _testing.scaled_rows(40, 300, seed=1).to(device)
    out = wmf.pairwise_distance(x)
    assert torch.all(out.diagonal() == 0)
    assert _testing.relative_error(out, np.sqrt(_testing.exact_sqdist(x.cpu(), x.cpu()))).max() <= F32_RTOL


def test_pairwise_float64_keeps_float64_accuracy(device):
    training, generated, _ = _testing.near_duplicates(10, 500, 1e-9, seed=4, dtype=torch.float64)
    out = wmf.pairwise_distance(generated.to(device), training.to(device))
    assert out.dtype == torch.float64
    assert _testing.relative_error(out, np.sqrt(_testing.exact_sqdist(generated, training))).max() <= F64_RTOL


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_pairwise_half_inputs_are_computed_as_float32(device, dtype):
    x, y = torch.randn(6, 100).to(dtype), torch.randn(5, 100).to(dtype)
    out = wmf.pairwise_distance(x.to(device), y.to(device))
    assert out.dtype == torch.float32
    expected = wmf.pairwise_distance(x.float().to(device), y.float().to(device))
    assert torch.equal(out, expected)


def test_pairwise_accepts_strided_and_transposed_inputs(device):
    wide = torch.randn(9, 80, device=device)
    rows_view = wide[:, 10:60]  # row stride 80
    columns = torch.randn(50, 7, device=device).t()  # column stride 7
    out = wmf.pairwise_distance(rows_view, columns)
    assert torch.equal(out, wmf.pairwise_distance(rows_view.contiguous(), columns.contiguous()))


def test_pairwise_agrees_with_torch_twin(device):
    x, y = torch.randn(30, 70), torch.randn(20, 70)
    for metric in ("l2", "sqeuclidean", "cosine"):
        ours = wmf.pairwise_distance(x.to(device), y.to(device), metric).cpu()
        twin = wmf.reference.pairwise_distance(x, y, metric)
        torch.testing.assert_close(ours, twin, rtol=F32_RTOL, atol=0)


def test_pairwise_cosine_keeps_digits_for_near_parallel_rows(device):
    base = torch.randn(4, 1000, dtype=torch.float64)
    # 1 - cos ~ 1e-12: far below float32 resolution of cos itself, yet exact here.
    partner = (base * 3.0 + 1e-6 * torch.randn(4, 1000, dtype=torch.float64)).float()
    base = base.float()
    out = wmf.pairwise_distance(base.to(device), partner.to(device), "cosine")
    assert _testing.relative_error(out, oracle(base, partner, "cosine")).max() <= F32_RTOL


def test_pairwise_tiles_and_gemm_slices_cover_every_pair(monkeypatch, device):
    # Tiny workspace and slice length force many query blocks, reference tiles and float64-summed slices.
    monkeypatch.setattr(_gram, "WORKSPACE_BYTES", 4096)
    monkeypatch.setattr(_gram, "SPLIT_K", 16)
    x, y = torch.randn(37, 90), torch.randn(29, 90)
    out = wmf.pairwise_distance(x.to(device), y.to(device))
    assert _testing.relative_error(out, oracle(x, y, "l2")).max() <= F32_RTOL


def test_gemm_error_bound_covers_observed_float32_error():
    a = _testing.scaled_rows(64, 4096, seed=5)
    b = _testing.scaled_rows(64, 4096, seed=6)
    observed = (torch.mm(a, b.t()).double() - torch.mm(a.double(), b.double().t())).abs()
    bound = _gram.gemm_relative_error(4096, torch.float32, "cpu") * torch.outer(a.double().norm(dim=1),
                                                                                b.double().norm(dim=1))
    assert torch.all(observed <= bound)
    # ...and is not vacuous: gamma_4096 for float32 is about 2.4e-4.
    assert _gram.gemm_relative_error(4096, torch.float32, "cpu") < 3e-4


def test_gemm_error_bound_grows_with_reduced_precision_modes(monkeypatch):
    exact = _gram.gemm_relative_error(2048, torch.float32, "cpu")
    monkeypatch.setattr(_gram, "_matmul_input_rounding", lambda device_type: 2.0**-10)
    assert _gram.gemm_relative_error(2048, torch.float32, "cpu") > exact + 2 * 2.0**-10 * 0.99
    assert _gram.gemm_relative_error(2048, torch.float64, "cpu") < 1e-12  # float64 GEMMs are never reduced
    assert math.isinf(_gram._gamma(2**24, 2.0**-24))  # beyond D u >= 1/2 every pair is decided exactly


def test_matmul_input_rounding_follows_torch_precision_settings():
    assert _gram._matmul_input_rounding("cuda") == 0.0  # conftest sets "ieee"
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    assert _gram._matmul_input_rounding("cuda") == 2.0**-10
