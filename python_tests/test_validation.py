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


# Masks for the issue 4 ops: N = 4 queries and M = 5 references of S = 64 samples (S = 63 fits the same single
# word, so only n_bits tells it apart).
Q = torch.zeros(4, 64, dtype=torch.bool)
R = torch.ones(5, 64, dtype=torch.bool)
R65 = torch.ones(5, 65, dtype=torch.bool)
PACKED63 = wmf.PackedMasks(torch.zeros(5, 1, dtype=torch.int64), 63)
NO_MASKS = wmf.PackedMasks(torch.zeros(0, 1, dtype=torch.int64), 64)
PRED = torch.zeros(3, 10, dtype=torch.int64)
LABELS = torch.zeros(10, dtype=torch.int64)

MASK_CASES = [
    # (op, args, kwargs, exception, message fragment)
    (wmf.pack_masks, ([[True]],), {}, TypeError, "masks must be a bool torch.Tensor"),
    (wmf.pack_masks, (Q.long(),), {}, TypeError, "masks must be a bool tensor.*got torch.int64"),
    (wmf.pack_masks, (Q.to(torch.uint8),), {}, TypeError, "masks must be a bool tensor.*got torch.uint8"),
    (wmf.pack_masks, (Q.float(),), {}, TypeError, "masks must be a bool tensor.*got torch.float32"),
    (wmf.pack_masks, (Q[0],), {}, ValueError, r"masks must be a 2-D .*got shape \(64,\)"),
    (wmf.pack_masks, (Q[None],), {}, ValueError, r"masks must be a 2-D .*got shape \(1, 4, 64\)"),
    (wmf.pack_masks, (Q[:0],), {}, ValueError, "masks must be non-empty"),
    (wmf.pack_masks, (Q[:, :0],), {}, ValueError, "masks must be non-empty"),
    (wmf.pack_masks, (Q,), {"backend": "gpu"}, ValueError, "backend must be one of"),
    (wmf.pack_masks, (Q,), {"backend": "cuda"}, ValueError, "backend='cuda' needs CUDA tensors"),
    (wmf.unpack_masks, (Q,), {}, TypeError, "packed must be PackedMasks; got Tensor"),
    (wmf.iou_matrix, ("a",), {}, TypeError, "a must be a bool torch.Tensor .*or PackedMasks; got str"),
    (wmf.iou_matrix, (Q.long(),), {}, TypeError, "a must be a bool tensor.*got torch.int64"),
    (wmf.iou_matrix, (Q, R.float()), {}, TypeError, "b must be a bool tensor.*got torch.float32"),
    (wmf.iou_matrix, (Q[0],), {}, ValueError, r"a must be a 2-D .*got shape \(64,\)"),
    (wmf.iou_matrix, (Q, R65), {}, ValueError, "a and b must cover the same samples; got S = 64 and S = 65"),
    (wmf.iou_matrix, (Q, PACKED63), {}, ValueError, "a and b must cover the same samples; got S = 64 and S = 63"),
    (wmf.iou_matrix, (Q[:0], R), {}, ValueError, "a must be non-empty"),
    (wmf.iou_matrix, (Q, NO_MASKS), {}, ValueError, "b must hold at least one mask; got 0"),
    (wmf.iou_matrix, (Q, R.to("meta")), {}, ValueError, "b and a must be on the same device; got meta and cpu"),
    (wmf.iou_matrix, (Q,), {"backend": "gpu"}, ValueError, "backend must be one of"),
    (wmf.max_iou, (Q.long(), R), {}, TypeError, "query must be a bool tensor.*got torch.int64"),
    (wmf.max_iou, (Q, None), {}, TypeError, "reference must be a bool torch.Tensor .*or PackedMasks; got NoneType"),
    (wmf.max_iou, (Q, R[None]), {}, ValueError, "reference must be a 2-D"),
    (wmf.max_iou, (Q, R65), {}, ValueError, "query and reference must cover the same samples; got S = 64 and S = 65"),
    (wmf.max_iou, (Q, PACKED63), {}, ValueError, "got S = 64 and S = 63"),
    (wmf.max_iou, (Q[:0], R), {}, ValueError, "query must be non-empty"),
    (wmf.max_iou, (Q, NO_MASKS), {}, ValueError, "reference must hold at least one mask; got 0"),
    (wmf.max_iou, (Q, R), {"k": 0}, ValueError, "k must be between 1 and 5; got 0"),
    (wmf.max_iou, (Q, R), {"k": 6}, ValueError, "k must be between 1 and 5; got 6"),
    (wmf.max_iou, (R, R), {"k": 5, "exclude_self": True}, ValueError, "k must be between 1 and 4 .*; got 5"),
    (wmf.max_iou, (Q, R), {"k": 1.0}, TypeError, "k must be an int; got float"),
    (wmf.max_iou, (Q, R), {"exclude_self": True}, ValueError, "same number of rows; got 4 and 5"),
    (wmf.max_iou, (Q, R), {"exclude_self": 1}, TypeError, "exclude_self must be a bool"),
    (wmf.max_iou, (Q, R.to("meta")), {}, ValueError, "reference and query must be on the same device; got meta"),
    (wmf.max_iou, (Q, R), {"backend": "gpu"}, ValueError, "backend must be one of"),
    (wmf.max_iou, (Q, R), {"backend": "cuda"}, ValueError, "backend='cuda' needs CUDA tensors"),
    (wmf.error_masks, ("p", LABELS), {}, TypeError, "predictions must be an integer torch.Tensor"),
    (wmf.error_masks, (PRED.float(), LABELS), {}, TypeError, "predictions must be an integer tensor.*torch.float32"),
    (wmf.error_masks, (Q, LABELS), {}, TypeError, "predictions must be an integer tensor.*torch.bool"),
    (wmf.error_masks, (PRED, LABELS.float()), {}, TypeError, "labels must be an integer tensor.*torch.float32"),
    (wmf.error_masks, (LABELS, LABELS), {}, ValueError, r"predictions must be a 2-D tensor .*got shape \(10,\)"),
    (wmf.error_masks, (PRED, LABELS[None]), {}, ValueError, r"labels must be a 1-D tensor .*got shape \(1, 10\)"),
    (wmf.error_masks, (PRED, LABELS[:9]), {}, ValueError, "labels must have one entry per sample.*labels has 9"),
    (wmf.error_masks, (PRED[:0], LABELS), {}, ValueError, "predictions must be non-empty"),
    (wmf.error_masks, (PRED[:, :0], LABELS[:0]), {}, ValueError, "predictions must be non-empty"),
    (wmf.error_masks, (PRED, LABELS.to("meta")), {}, ValueError, "predictions and labels must be on the same device"),
    (wmf.error_masks, (PRED, LABELS), {"backend": "gpu"}, ValueError, "backend must be one of"),
    (wmf.PackedMasks, (Q.int(), 64), {}, TypeError, "PackedMasks.words must be a 2-D int64 tensor"),
    (wmf.PackedMasks, (torch.zeros(4, 1, dtype=torch.int64), 0), {}, ValueError, "n_bits must be a positive int"),
    (wmf.PackedMasks, (torch.zeros(4, 2, dtype=torch.int64), 64), {}, ValueError, "2 words per row; 64 bits need 1"),
]


@pytest.mark.parametrize("op,args,kwargs,exc,fragment", MASK_CASES)
def test_bad_masks_are_rejected_with_a_clear_message(op, args, kwargs, exc, fragment):
    with pytest.raises(exc, match=fragment):
        op(*args, **kwargs)


@pytest.mark.parametrize(
    "op,args",
    [
        (wmf.pack_masks, (Q.long(),)),
        (wmf.iou_matrix, (Q, R65)),
        (wmf.max_iou, (Q, R65)),
        (wmf.error_masks, (Q, LABELS)),
    ],
)
def test_mask_ops_validate_on_the_torch_backend_too(op, args):
    with pytest.raises((TypeError, ValueError)):
        op(*args, backend="torch")
