"""Behavioural similarity (issue 4): bit-packed error sets, IoU matrices and max-IoU search.

A model's error set is the set of test samples it gets wrong; two models' similarity is the IoU of their error
sets (study_spec §2.4). Masks are packed 64 samples per int64 word (``weightmem_fast.PackedMasks``), so an IoU
is two popcounts over S / 64 words, and every count is an exact integer: results are exact.

IoU convention: |a & b| / |a | b|, and 0 when both sets are empty (the study divides by union + 1e-8, which gives
the same 0). Values are float32, computed as float(double(inter) / double(union)) on every backend.
"""
from __future__ import annotations

import torch

from .. import _check, _dispatch, _ext
from .. import reference as twins
from ..packed_masks import PackedMasks, words_for

MaskInput = torch.Tensor | PackedMasks


def pack_masks(masks: torch.Tensor, *, backend: str = "auto") -> PackedMasks:
    """Packs bool masks, 64 samples per int64 word (bit t % 64 of word t // 64 is sample t; padding bits 0).

    Args:
        masks: [N, S] bool tensor, CPU or CUDA, any row stride.
        backend: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"torch"``.

    Returns:
        PackedMasks with words [N, ceil(S / 64)] int64 on the masks' device.

    Example:
        >>> import torch, weightmem_fast as wmf
        >>> packed = wmf.pack_masks(torch.tensor([[True, False, True]]))
        >>> packed.words, packed.n_bits
        (tensor([[5]]), 3)
    """
    masks = _check.bool_masks("masks", masks)
    impl = _dispatch.choose("pack_masks", masks.device.type, backend)
    if impl == "torch":
        return twins.pack_masks(masks)
    if masks.stride(1) != 1:
        masks = masks.contiguous()
    words = torch.empty(masks.shape[0], words_for(masks.shape[1]), dtype=torch.int64, device=masks.device)
    _ext.call(impl, "pack_masks", masks.view(torch.uint8), words)
    return PackedMasks(words, masks.shape[1])


def unpack_masks(packed: PackedMasks) -> torch.Tensor:
    """The bool masks [N, S] that ``pack_masks`` packed: a pure-torch inverse (not a hot path, so no kernel and
    no ``backend`` argument)."""
    if not isinstance(packed, PackedMasks):
        raise TypeError(f"packed must be PackedMasks; got {type(packed).__name__}")
    return twins.unpack_masks(packed)


def error_masks(predictions: torch.Tensor, labels: torch.Tensor, *, backend: str = "auto") -> PackedMasks:
    """Error sets of many models, packed: bit t of row i is set when predictions[i, t] != labels[t].

    The comparison is fused with the packing, so no [N, S] bool tensor is made.

    Args:
        predictions: [N, S] integer tensor of predicted classes, one model per row (int32 and int64 are read
            directly; other integer dtypes are converted to int64 first).
        labels: [S] integer tensor of true classes, same device.
        backend: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"torch"``.

    Returns:
        PackedMasks [N, ceil(S / 64)] on the inputs' device.
    """
    predictions = _check.integer_matrix("predictions", predictions, 2)
    labels = _check.integer_matrix("labels", labels, 1)
    if labels.shape[0] != predictions.shape[1]:
        raise ValueError(
            f"labels must have one entry per sample: predictions is [N, S] = {tuple(predictions.shape)}, labels has "
            f"{labels.shape[0]} entries"
        )
    _check.same_device("predictions", predictions, "labels", labels)
    impl = _dispatch.choose("error_masks", predictions.device.type, backend)
    if impl == "torch":
        return twins.error_masks(predictions, labels)
    dtype = predictions.dtype if predictions.dtype in (torch.int32, torch.int64) else torch.int64
    predictions = predictions.to(dtype)
    if predictions.stride(1) != 1:
        predictions = predictions.contiguous()
    labels = labels.to(dtype).contiguous()
    words = torch.empty(predictions.shape[0], words_for(predictions.shape[1]), dtype=torch.int64,
                        device=predictions.device)
    _ext.call(impl, "error_masks", predictions, labels, words)
    return PackedMasks(words, predictions.shape[1])


def _packed(name: str, masks: MaskInput, impl: str, backend: str) -> PackedMasks:
    """PackedMasks as given (validated) or packed from a bool tensor."""
    if isinstance(masks, PackedMasks):
        if len(masks) == 0:
            raise ValueError(f"{name} must hold at least one mask; got 0")
        _check_padding(name, masks)
        return masks
    _check.bool_masks(name, masks, packed_ok=True)
    return pack_masks(masks, backend="torch" if impl == "torch" else backend)


def _check_padding(name: str, masks: PackedMasks) -> None:
    """The kernels count every bit of the last word, so bits past n_bits must be 0 (pack functions ensure it)."""
    spare = masks.n_bits % 64
    if spare and bool(((masks.words[:, -1] >> spare) != 0).any()):  # arithmetic shift: bit 63 counts too
        raise ValueError(
            f"{name} has bits set past n_bits = {masks.n_bits} in its last word; PackedMasks padding bits must be 0 "
            "(build them with pack_masks or error_masks)"
        )


def _pair(
    names: tuple[str, str], a: MaskInput, b: MaskInput | None, op: str, backend: str
) -> tuple[str, PackedMasks, PackedMasks]:
    """Validated packed operands of a two-set op, and the implementation to run it with."""
    if not isinstance(a, (torch.Tensor, PackedMasks)):
        raise TypeError(f"{names[0]} must be a bool torch.Tensor [N, S] or PackedMasks; got {type(a).__name__}")
    impl = _dispatch.choose(op, a.device.type, backend)
    pa = _packed(names[0], a, impl, backend)
    if b is None:
        return impl, pa, pa
    if not isinstance(b, (torch.Tensor, PackedMasks)):
        raise TypeError(f"{names[1]} must be a bool torch.Tensor [M, S] or PackedMasks; got {type(b).__name__}")
    _check.same_device(names[1], b, names[0], a)
    pb = _packed(names[1], b, impl, backend)
    if pb.n_bits != pa.n_bits:
        raise ValueError(
            f"{names[0]} and {names[1]} must cover the same samples; got S = {pa.n_bits} and S = {pb.n_bits}"
        )
    return impl, pa, pb


def _counts(impl: str, packed: PackedMasks) -> torch.Tensor:
    counts = torch.empty(len(packed), dtype=torch.int64, device=packed.device)
    _ext.call(impl, "mask_counts", packed.words, counts)
    return counts


def iou_matrix(a: MaskInput, b: MaskInput | None = None, *, backend: str = "auto") -> torch.Tensor:
    """IoU of the error sets of every pair of models.

    Args:
        a: [N, S] bool tensor or PackedMasks, CPU or CUDA.
        b: [M, S] bool tensor or PackedMasks on the same device, or None to compare ``a`` with itself.
        backend: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"torch"``.

    Returns:
        [N, M] float32: |a_i & b_j| / |a_i | b_j|, 0 when both are empty. Exact (integer counts).

    Example:
        >>> import torch, weightmem_fast as wmf
        >>> errors = torch.tensor([[True, True, False, False], [True, False, True, False]])
        >>> wmf.iou_matrix(errors)
        tensor([[1.0000, 0.3333],
                [0.3333, 1.0000]])
    """
    impl, pa, pb = _pair(("a", "b"), a, b, "iou_matrix", backend)
    if impl == "torch":
        return twins.iou_matrix(pa, pb)
    out = torch.empty(len(pa), len(pb), dtype=torch.float32, device=pa.device)
    count_a = _counts(impl, pa)
    count_b = count_a if pb is pa else _counts(impl, pb)
    _ext.call(impl, "iou_matrix", pa.words.contiguous(), count_a, pb.words.contiguous(), count_b, out)
    return out


def max_iou(
    query: MaskInput,
    reference: MaskInput,
    k: int = 1,
    exclude_self: bool = False,
    *,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k reference models whose error sets overlap most (highest IoU) with each query model's.

    The study's "maximum similarity to training": ``max_iou(generated_errors, training_errors)``. Streams over
    the reference set: memory O(N k), never N x M.

    Args:
        query: [N, S] bool tensor or PackedMasks, CPU or CUDA.
        reference: [M, S] bool tensor or PackedMasks on the same device.
        k: neighbours per query, 1 <= k <= M (M - 1 with ``exclude_self``).
        exclude_self: query and reference are the same set (N == M); row i never returns index i (by index, so
            an identical error set elsewhere still scores 1).
        backend: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"torch"``.

    Returns:
        (values [N, k] float32, indices [N, k] int64), IoU descending; ties (equal as exact fractions) go to the
        lowest index. Empty-vs-empty IoU is 0.

    Raises:
        TypeError: masks that are neither bool tensors nor PackedMasks; non-int k.
        ValueError: different S or devices, empty sets, k out of range, exclude_self with different sizes.
    """
    if reference is None:  # _pair reads None as "compare with itself"; max_iou needs the set spelled out
        raise TypeError("reference must be a bool torch.Tensor [M, S] or PackedMasks; got NoneType")
    impl, pq, pr = _pair(("query", "reference"), query, reference, "max_iou", backend)
    if not isinstance(exclude_self, bool):
        raise TypeError(f"exclude_self must be a bool; got {type(exclude_self).__name__}")
    if exclude_self:
        _check.same_set(pq.words, pr.words)
    k = _check.neighbour_count(k, len(pr) - int(exclude_self), exclude_self)
    if impl == "torch":
        return twins.max_iou(pq, pr, k, exclude_self)
    n, device = len(pq), pq.device
    top_inter = torch.empty(n, k, dtype=torch.int64, device=device)
    top_union = torch.empty(n, k, dtype=torch.int64, device=device)
    values = torch.empty(n, k, dtype=torch.float32, device=device)
    indices = torch.empty(n, k, dtype=torch.int64, device=device)
    count_q = _counts(impl, pq)
    count_r = count_q if pr is pq else _counts(impl, pr)
    _ext.call(impl, "max_iou", pq.words.contiguous(), count_q, pr.words.contiguous(), count_r, exclude_self,
              top_inter, top_union, values, indices)
    return values, indices
