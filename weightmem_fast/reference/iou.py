"""Twin of ``weightmem_fast.ops.iou`` and the study's max-similarity method (study_spec §2.4, issue 4).

Masks are error sets: row i, sample t is True when model i gets test input t wrong. IoU(a, b) = |a ∧ b| / |a ∨ b|,
and 0 when both sets are empty (the study divides by union + 1e-8, which gives the same 0). Counts are exact
integers, so every IoU here is exact: one float64 division of exact counts, rounded once to float32, which is
what the compiled kernels compute too, so the two agree bit for bit.
"""
from __future__ import annotations

import torch

from ..packed_masks import WORD_BITS, PackedMasks, words_for

# Mask elements (rows x samples) handled per chunk: bounds the float64 0/1 blocks (and the [rows, W, 64] int64
# bit blocks of pack/unpack) at 32 MiB, so the twins run at real sizes (10,228 models x 60,000 samples).
_CHUNK_ELEMENTS = 1 << 22

Masks = torch.Tensor | PackedMasks


def _rows_per_chunk(n_samples: int) -> int:
    return max(1, _CHUNK_ELEMENTS // n_samples)


def _bit_weights(device: torch.device) -> torch.Tensor:
    """[64] int64, entry j the word whose only set bit is bit j: 2**j, and -2**63 for bit 63 (two's complement)."""
    weights = [1 << j for j in range(WORD_BITS - 1)] + [-(1 << (WORD_BITS - 1))]
    return torch.tensor(weights, dtype=torch.int64, device=device)


def pack_masks(masks: torch.Tensor) -> PackedMasks:
    """Packs boolean masks into 64-bit words. See ``weightmem_fast.pack_masks``.

    Bits are weighted by distinct powers of two and summed, so the sum equals the bitwise OR; int64 addition
    wraps, so bit 63 (weight -2**63) comes out right too.

    Args:
        masks: [N, S] bool tensor, S >= 1.

    Returns:
        PackedMasks with words [N, ceil(S / 64)] int64 on the same device, padding bits 0.
    """
    n, s = masks.shape
    w = words_for(s)
    words = torch.empty(n, w, dtype=torch.int64, device=masks.device)
    weights = _bit_weights(masks.device)
    step = _rows_per_chunk(w * WORD_BITS)
    with torch.no_grad():
        for start in range(0, n, step):
            block = masks[start : start + step]
            bits = torch.zeros(block.shape[0], w * WORD_BITS, dtype=torch.int64, device=masks.device)
            bits[:, :s] = block  # the padding stays 0
            words[start : start + block.shape[0]] = (bits.view(-1, w, WORD_BITS) * weights).sum(-1)
    return PackedMasks(words, s)


def unpack_masks(packed: PackedMasks) -> torch.Tensor:
    """Inverse of ``pack_masks``. See ``weightmem_fast.unpack_masks``.

    Args:
        packed: N masks of S samples.

    Returns:
        [N, S] bool tensor on the packed words' device.
    """
    n, s = packed.shape
    w = packed.words.shape[1]
    out = torch.empty(n, s, dtype=torch.bool, device=packed.device)
    shifts = torch.arange(WORD_BITS, device=packed.device)
    step = _rows_per_chunk(w * WORD_BITS)
    with torch.no_grad():
        for start in range(0, n, step):
            words = packed.words[start : start + step]
            # Arithmetic shift: bit 63 of a negative word shifts to -1, and "& 1" keeps just that bit.
            bits = (words.unsqueeze(-1) >> shifts) & 1
            out[start : start + words.shape[0]] = bits.view(words.shape[0], -1)[:, :s].bool()
    return out


def _query_rows_per_chunk(query: Masks, reference: Masks) -> int:
    """Query rows per chunk: bounds both their float64 0/1 rows [rows, S] and their IoUs [rows, M]."""
    return _rows_per_chunk(max(query.shape[1], reference.shape[0]))


def _rows_float64(x: Masks, start: int, stop: int) -> torch.Tensor:
    """Rows [start, stop) of ``x`` as a float64 0/1 matrix, unpacking only those rows."""
    rows = unpack_masks(x[start:stop]) if isinstance(x, PackedMasks) else x[start:stop]
    return rows.to(torch.float64)


def _iou_float64_rows(query: Masks, reference: Masks, start: int, stop: int) -> torch.Tensor:
    """Exact IoU of query rows [start, stop) against every reference row, in float64: [stop - start, M].

    Intersections come from a float64 product of 0/1 matrices: every partial sum is an integer <= S < 2**53,
    so it is exact in any summation order, and the counts are then held as int64.
    """
    m, s = reference.shape
    q = _rows_float64(query, start, stop)
    q_count = q.sum(1).long()
    out = torch.empty(q.shape[0], m, dtype=torch.float64, device=q.device)
    step = _rows_per_chunk(s)
    for r_start in range(0, m, step):
        r = _rows_float64(reference, r_start, r_start + step)
        inter = (q @ r.T).long()
        union = q_count[:, None] + r.sum(1).long()[None, :] - inter
        # An empty union means both sets are empty and inter is 0, so dividing by 1 gives the IoU convention 0.
        out[:, r_start : r_start + r.shape[0]] = inter.double() / union.clamp_min(1).double()
    return out


def iou_matrix(a: Masks, b: Masks | None = None) -> torch.Tensor:
    """IoU of every row of ``a`` with every row of ``b``, exact. See ``weightmem_fast.iou_matrix``.

    Args:
        a: [N, S] bool tensor or PackedMasks.
        b: [M, S] bool tensor or PackedMasks on the same device; None means ``a`` itself.

    Returns:
        [N, M] float32: (float)((double)|a_i ∧ b_j| / (double)|a_i ∨ b_j|), 0 where the union is empty.
    """
    b = a if b is None else b
    out = torch.empty(a.shape[0], b.shape[0], dtype=torch.float32, device=a.device)
    step = _query_rows_per_chunk(a, b)
    with torch.no_grad():
        for start in range(0, a.shape[0], step):
            out[start : start + step] = _iou_float64_rows(a, b, start, start + step).float()
    return out


def max_iou(
    query: Masks,
    reference: Masks,
    k: int = 1,
    exclude_self: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k reference rows most similar (by IoU) to each query row. See ``weightmem_fast.max_iou``.

    Ties: exactly equal IoUs go to the lowest index, by a stable sort of float64 values listed in index order.
    That is exact: a float64 IoU is one correctly rounded division of exact counts, and two different fractions
    with denominators <= S differ by at least 1/S**2, more than a float64 ulp below 1 for S < 2**26, so they never
    round to the same float64. (Float32 outputs can still round two different IoUs to one value; the order is
    the exact one.) ``exclude_self`` removes reference row i from query row i's candidates by index, so a
    duplicate elsewhere in the set still scores 1.

    Args:
        query: [N, S] bool tensor or PackedMasks.
        reference: [M, S] bool tensor or PackedMasks on the same device.
        k: results per query row, 1 <= k <= M (M - 1 with ``exclude_self``).
        exclude_self: query and reference are the same set (N == M).

    Returns:
        (values [N, k] float32, indices [N, k] int64), sorted by IoU descending.
    """
    values, indices = [], []
    step = _query_rows_per_chunk(query, reference)
    with torch.no_grad():
        for start in range(0, query.shape[0], step):
            iou = _iou_float64_rows(query, reference, start, start + step)
            if exclude_self:
                rows = torch.arange(iou.shape[0], device=iou.device)
                iou[rows, rows + start] = -1.0  # below every IoU, so never among the first M - 1
            order = torch.sort(-iou, dim=1, stable=True)
            values.append(-order.values[:, :k])
            indices.append(order.indices[:, :k])
    return torch.cat(values).float(), torch.cat(indices)


def error_masks(predictions: torch.Tensor, labels: torch.Tensor) -> PackedMasks:
    """Packed error sets: bit t of row i is set when ``predictions[i, t] != labels[t]``. See
    ``weightmem_fast.error_masks``.

    Args:
        predictions: [N, S] integer tensor, one model's predicted classes per row.
        labels: [S] integer tensor on the same device.

    Returns:
        PackedMasks of N masks of S samples.
    """
    return pack_masks(predictions != labels)


def paper_max_similarity(
    target_masks: torch.Tensor,
    train_masks: torch.Tensor,
    exclude_self: bool = False,
    block: int = 128,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The study's maximum error-set similarity to training (boyazeng/weight_memorization,
    visualization_util/plot_scatter_plot.py, ``max_similarity_to_training``; study_spec §2.4).

    For blocks of ``block`` training rows it broadcasts [block, 1, S] against [1, M, S], forms ``&`` and ``|``,
    sums over S and divides in float32 by (union + 1e-8); the blocks are concatenated into the full [N, M]
    float32 matrix, whose diagonal is set to 0 when a set is compared with itself, and the maximum is taken over
    the training axis. This is the benchmark baseline, kept as written. Its memory cost: per block two bool
    tensors of block * M * S bytes, and on the CPU ``torch.sum`` over bool materialises an int64 copy (8 bytes
    per element): measured 11 GB peak at N = M = 1000, S = 10,000, block 128 (perf_notes §1.6, §2.6).

    The "+ 1e-8" is our "0 for an empty union" convention: an empty union gives 0 / 1e-8 = 0, and for union >= 1
    the 1e-8 is below half a float32 ulp and vanishes, leaving float32(inter) / float32(union), correctly
    rounded, which equals our float64-then-float32 value for S < 2**24. The study decides "itself" with
    ``torch.equal(training, target)``, so a target set that merely equals the training set is also excluded;
    here the caller says so with ``exclude_self``.

    Args:
        target_masks: [M, S] bool tensor, one target model's error set per row.
        train_masks: [N, S] bool tensor on the same device (N == M with ``exclude_self``).
        exclude_self: zero the diagonal (target row j is training row j).
        block: training rows per broadcast block.

    Returns:
        (max_sim [M] float32, argmax [M] int64): for each target row, the maximum over training rows and the
        training row that attains it. With ``exclude_self`` a row whose every other similarity is 0 may return
        its own index (its zeroed diagonal), as the study's code would.
    """
    ratios = []
    with torch.no_grad():
        target = target_masks.unsqueeze(0)  # [1, M, S]
        for start in range(0, train_masks.shape[0], block):
            train = train_masks[start : start + block].unsqueeze(1)  # [block, 1, S]
            overlapped = torch.sum(train & target, dim=2)
            unique = torch.sum(train | target, dim=2)
            ratios.append(overlapped.float() / (unique.float() + 1e-8))
        full = torch.cat(ratios)  # [N, M]
        if exclude_self:
            full.fill_diagonal_(0)
        best = torch.max(full, dim=0)
    return best.values, best.indices
