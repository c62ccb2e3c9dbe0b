"""Bad inputs: every public op raises a clear error naming the argument (issue 3, STYLE §6)."""
from __future__ import annotations

import pytest
import torch

import weightmem_fast as wmf

X = torch.randn(4, 3)
Y = torch.randn(5, 3)
NAN = torch.tensor([[0.0, float("nan"), 1.0], [1.0, 2.0, 3.0]])
INF = torch.tensor([[1.0, 2.0, 3.0], [0.0, float("inf"), 1.0]])

CASES = [
    # (op, args, kwargs, exception, message fragment)
    (wmf.nearest, ([1.0, 2.0], Y), {}, TypeError, "query must be a torch.Tensor"),
    (wmf.nearest, (torch.randn(3), Y), {}, ValueError, r"query must be a 2-D tensor .*got shape \(3,\)"),
    (wmf.nearest, (X, torch.randn(2, 2, 3)), {}, ValueError, "reference must be a 2-D tensor"),
    (wmf.nearest, (X.int(), Y), {}, TypeError, "query must be a floating tensor.*torch.int32"),
    (wmf.nearest, (X, Y.bool()), {}, TypeError, "reference must be a floating tensor.*torch.bool"),
    (wmf.nearest, (X.to(torch.complex64), Y), {}, TypeError, "complex64"),
    (wmf.nearest, (X, torch.randn(5, 4)), {}, ValueError, "reference and query must have the same width D; got 4 and 3"),
    (wmf.nearest, (X, Y.double()), {}, TypeError, "same dtype; got torch.float64 and torch.float32"),
    (wmf.nearest, (torch.empty(0, 3), Y), {}, ValueError, "query must be non-empty"),
    (wmf.nearest, (X, torch.empty(5, 0)), {}, ValueError, "reference must be non-empty"),
    (wmf.nearest, (X, Y), {"k": 0}, ValueError, "k must be between 1 and 5; got 0"),
    (wmf.nearest, (X, Y), {"k": 6}, ValueError, "k must be between 1 and 5; got 6"),
    (wmf.nearest, (X, X), {"k": 4, "exclude_self": True}, ValueError, "k must be between 1 and 3"),
    (wmf.nearest, (X, Y), {"k": 1.0}, TypeError, "k must be an int; got float"),
    (wmf.nearest, (X, Y), {"k": True}, TypeError, "k must be an int; got bool"),
    (wmf.nearest, (X, Y), {"exclude_self": True}, ValueError, "same number of rows; got 4 and 5"),
    (wmf.nearest, (X, Y), {"exclude_self": 1}, TypeError, "exclude_self must be a bool"),
    (wmf.nearest, (X, Y), {"metric": "manhattan"}, ValueError, r"metric must be one of \('l2', 'sqeuclidean', 'cosine'\)"),
    (wmf.nearest, (NAN, Y[:, :3]), {}, ValueError, "query contains NaN or Inf .* first at row 0"),
    (wmf.nearest, (X, INF), {}, ValueError, "reference contains NaN or Inf .* first at row 1"),
    (wmf.nearest, (torch.zeros(2, 3), Y), {"metric": "cosine"}, ValueError, "undefined for all-zero rows; query has 2"),
    (wmf.nearest, (X, Y), {"backend": "gpu"}, ValueError, "backend must be one of"),
    (wmf.nearest, (X, Y), {"backend": "cuda"}, ValueError, "backend='cuda' needs CUDA tensors"),
    (wmf.nearest, (X, Y.to("meta")), {}, ValueError, "reference and query must be on the same device; got meta and cpu"),
    (wmf.pairwise_distance, ("x",), {}, TypeError, "x must be a torch.Tensor"),
    (wmf.pairwise_distance, (X, torch.randn(5, 2)), {}, ValueError, "same width D; got 2 and 3"),
    (wmf.pairwise_distance, (X.long(),), {}, TypeError, "x must be a floating tensor.*torch.int64"),
    (wmf.pairwise_distance, (torch.empty(0, 3),), {}, ValueError, "x must be non-empty"),
    (wmf.pairwise_distance, (X, NAN), {}, ValueError, "y contains NaN or Inf"),
    (wmf.pairwise_distance, (X,), {"metric": "hamming"}, ValueError, "metric must be one of"),
    (wmf.pairwise_distance, (X, Y.half()), {}, TypeError, "same dtype"),
]


@pytest.mark.parametrize("op,args,kwargs,exc,fragment", CASES)
def test_bad_input_is_rejected_with_a_clear_message(op, args, kwargs, exc, fragment):
    with pytest.raises(exc, match=fragment):
        op(*args, **kwargs)


@pytest.mark.parametrize("op", [wmf.nearest, wmf.pairwise_distance])
def test_twin_backend_validates_too(op):
    with pytest.raises(ValueError, match="NaN or Inf"):
        op(NAN, NAN, backend="torch")


@pytest.mark.parametrize("op", [wmf.nearest, wmf.pairwise_distance])
def test_bad_values_are_reported_on_every_device(op, device):
    # On a GPU the check runs after the kernels, with one synchronisation; the error must be the same.
    bad = INF.to(device)
    with pytest.raises(ValueError, match="contains NaN or Inf .* first at row 1"):
        op(bad, bad)
