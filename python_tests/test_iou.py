"""Bit packing, IoU matrices and max-IoU search against numpy oracles and the torch twins (issue 4).

IoU is exact (integer counts, one float64 division, one rounding to float32), so every comparison here is
``torch.equal``, never a tolerance; the one exception is the study's own float32 method.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import weightmem_fast as wmf
from weightmem_fast import reference as twins
from weightmem_fast.reference import iou as iou_twins

# Sample counts S around the 64-bit word boundary.
BOUNDARY_S = [1, 2, 63, 64, 65, 127, 128, 129, 200]

# The device fixture returns a string, so sharing it across hypothesis examples is safe.
FIXTURE_OK = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- numpy oracles: independent of torch and of the twins ---------------------------------------------------


def oracle_words(masks: np.ndarray) -> np.ndarray:
    """[N, W] int64 words via numpy's little-endian bit order: sample t is bit t % 8 of byte t // 8, and eight
    bytes make a little-endian word, so it is bit t % 64 of word t // 64."""
    n, s = masks.shape
    padded = np.zeros((n, -(-s // 64) * 64), dtype=bool)
    padded[:, :s] = masks
    return np.packbits(padded, axis=1, bitorder="little").view("<i8")


def oracle_counts(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(intersection [N, M], union [N, M]) int64, from an integer product of 0/1 matrices."""
    a, b = a.astype(np.int64), b.astype(np.int64)
    inter = a @ b.T
    return inter, a.sum(1)[:, None] + b.sum(1)[None, :] - inter


def oracle_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, M] float32: the float64 quotient of exact counts rounded once, 0 for an empty union."""
    inter, union = oracle_counts(a, b)
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0).astype(np.float32)


def oracle_max_iou(a: np.ndarray, b: np.ndarray, k: int, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    """Top k by exact rational IoU (Fraction), ties to the lowest index: (values [N, k] float32, indices [N, k])."""
    inter, union = oracle_counts(a, b)
    values, indices = [], []
    for i in range(a.shape[0]):
        scored = [
            (Fraction(int(inter[i, j]), int(union[i, j])) if union[i, j] else Fraction(0), j)
            for j in range(b.shape[0])
            if not (exclude_self and i == j)
        ]
        top = sorted(scored, key=lambda pair: (-pair[0], pair[1]))[:k]
        values.append([float(f) for f, _ in top])
        indices.append([j for _, j in top])
    return np.array(values, dtype=np.float32), np.array(indices, dtype=np.int64)


def mask_rows(rng: np.random.Generator, n: int, s: int, pool: np.ndarray | None = None) -> np.ndarray:
    """[n, s] bool: random rows of random density, mixed with empty rows, full rows and copies of rows of
    ``pool`` (or of earlier rows), the cases where IoU has edge values (0/0, 1, exact duplicates)."""
    out = rng.random((n, s)) < rng.uniform(0, 1, (n, 1))
    for i, kind in enumerate(rng.choice(["random", "empty", "full", "copy"], n, p=[0.6, 0.1, 0.1, 0.2])):
        if kind == "empty":
            out[i] = False
        elif kind == "full":
            out[i] = True
        elif kind == "copy" and pool is not None:
            out[i] = pool[rng.integers(len(pool))]
        elif kind == "copy" and i > 0:
            out[i] = out[rng.integers(i)]
    return out


def on(device: str, *arrays: np.ndarray) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(x).to(device) for x in arrays)


# --- packing -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("s", BOUNDARY_S + [10_000, 60_000])  # and the study's test-set sizes
@pytest.mark.parametrize("n", [1, 7])
def test_pack_masks_matches_numpy_bit_order(device, n, s):
    masks = np.random.default_rng(s).random((n, s)) < 0.3
    (tensor,) = on(device, masks)
    packed = wmf.pack_masks(tensor)
    assert isinstance(packed, wmf.PackedMasks)
    assert packed.n_bits == s and packed.shape == (n, s) and packed.words.device == tensor.device
    assert np.array_equal(packed.words.cpu().numpy(), oracle_words(masks))
    assert torch.equal(packed.words, twins.pack_masks(tensor).words)


@pytest.mark.parametrize("s", BOUNDARY_S)
def test_pack_unpack_round_trip_keeps_padding_zero(device, s):
    masks = torch.rand(5, s, device=device) < 0.5
    masks[0] = True  # a full row sets every bit it may set, so any padding leak shows
    packed = wmf.pack_masks(masks)
    assert torch.equal(wmf.unpack_masks(packed), masks)
    padding = packed.words.shape[1] * 64 - s
    if padding:
        # The padding is the top bits of the last word; the arithmetic shift leaves exactly those (sign included).
        assert torch.all(packed.words[:, -1] >> (64 - padding) == 0)
    assert torch.equal(wmf.unpack_masks(twins.pack_masks(masks)), masks)


def test_pack_masks_sets_bit_63(device):
    masks = torch.zeros(3, 64, dtype=torch.bool, device=device)
    masks[0, 63] = True
    masks[1] = True
    masks[2, 0] = True
    words = wmf.pack_masks(masks).words.cpu().flatten().tolist()
    assert words == [-(2**63), -1, 1]  # int64 views of 1 << 63, all ones and 1


def test_pack_masks_accepts_strided_and_transposed_masks(device):
    wide = torch.rand(9, 300, device=device) < 0.5
    transposed = (torch.rand(130, 6, device=device) < 0.5).t()
    for masks in (wide[:, 7:137], wide[::2], transposed):
        assert torch.equal(wmf.pack_masks(masks).words, wmf.pack_masks(masks.contiguous()).words)


def test_packed_masks_rows_can_be_selected(device):
    masks = torch.rand(6, 70, device=device) < 0.5
    packed = wmf.pack_masks(masks)
    assert torch.equal(wmf.unpack_masks(packed[2:5]), masks[2:5])
    assert torch.equal(wmf.unpack_masks(packed[torch.tensor([4, 0], device=device)]), masks[[4, 0]])


# --- error masks ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.uint8])
@pytest.mark.parametrize("s", [1, 64, 65, 1000])
def test_error_masks_equal_packed_mismatches(device, dtype, s):
    labels = torch.randint(0, 10, (s,), device=device).to(dtype)
    predictions = torch.randint(0, 10, (8, s), device=device).to(dtype)
    predictions[0] = labels  # a perfect model: an empty error set
    predictions[1] = (labels + 1) % 10  # every answer wrong: a full error set
    errors = wmf.error_masks(predictions, labels)
    assert errors.n_bits == s
    assert torch.equal(errors.words, wmf.pack_masks(predictions != labels).words)
    assert torch.equal(errors.words, twins.error_masks(predictions, labels).words)
    assert np.array_equal(errors.words.cpu().numpy(), oracle_words((predictions != labels).cpu().numpy()))


def test_error_masks_accepts_strided_predictions(device):
    labels = torch.randint(0, 3, (100,), device=device)
    predictions = torch.randint(0, 3, (100, 12), device=device).t()
    expected = wmf.error_masks(predictions.contiguous(), labels)
    assert torch.equal(wmf.error_masks(predictions, labels).words, expected.words)


# --- IoU matrix ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("s", BOUNDARY_S + [10_000])
@pytest.mark.parametrize("n,m", [(1, 1), (1, 9), (9, 1), (17, 23)])
def test_iou_matrix_matches_oracle_and_twin(device, n, m, s):
    rng = np.random.default_rng(n * 1000 + m + s)
    a = mask_rows(rng, n, s)
    b = mask_rows(rng, m, s, pool=a)
    ta, tb = on(device, a, b)
    iou = wmf.iou_matrix(ta, tb)
    assert iou.dtype == torch.float32 and iou.shape == (n, m) and iou.device == ta.device
    assert np.array_equal(iou.cpu().numpy(), oracle_iou(a, b))
    assert torch.equal(iou, twins.iou_matrix(ta, tb))


def test_iou_of_two_empty_masks_is_zero(device):
    empty = torch.zeros(2, 65, dtype=torch.bool, device=device)
    assert torch.equal(wmf.iou_matrix(empty).cpu(), torch.zeros(2, 2))
    values, indices = wmf.max_iou(empty, empty, k=2)
    assert torch.all(values == 0) and indices.cpu().tolist() == [[0, 1], [0, 1]]


def test_iou_matrix_without_b_compares_a_with_itself(device):
    masks = torch.from_numpy(mask_rows(np.random.default_rng(3), 12, 77)).to(device)
    assert torch.equal(wmf.iou_matrix(masks), wmf.iou_matrix(masks, masks))
    packed = wmf.pack_masks(masks)
    assert torch.equal(wmf.iou_matrix(packed), wmf.iou_matrix(masks, masks))


def test_iou_matrix_known_values(device):
    a = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool, device=device)
    b = torch.tensor([[1, 1, 1, 0], [0, 0, 1, 1], [1, 1, 0, 0]], dtype=torch.bool, device=device)
    expected = torch.tensor([[2 / 3, 0.0, 1.0], [1 / 3, 0.0, 1 / 2], [0.0, 0.0, 0.0]], dtype=torch.float64)
    assert torch.equal(wmf.iou_matrix(a, b).cpu(), expected.float())


@settings(FIXTURE_OK, max_examples=60)
@given(
    n=st.integers(1, 20),
    s=st.one_of(st.integers(1, 200), st.sampled_from([63, 64, 65, 127, 128, 129])),
    seed=st.integers(0, 2**32 - 1),
)
def test_iou_matrix_is_symmetric_bounded_and_one_on_the_diagonal(device, n, s, seed):
    masks = mask_rows(np.random.default_rng(seed), n, s)
    (tensor,) = on(device, masks)
    iou = wmf.iou_matrix(tensor)
    assert torch.equal(iou, iou.T)
    assert torch.all((iou >= 0) & (iou <= 1))
    non_empty = tensor.any(dim=1)
    assert torch.all(iou.diagonal()[non_empty] == 1)
    assert torch.all(iou.diagonal()[~non_empty] == 0)  # the empty-union convention


@settings(FIXTURE_OK, max_examples=80)
@given(
    n=st.integers(1, 20),
    m=st.integers(1, 20),
    s=st.one_of(st.integers(1, 200), st.sampled_from([63, 64, 65, 127, 128, 129])),
    seed=st.integers(0, 2**32 - 1),
    packed_a=st.booleans(),
    packed_b=st.booleans(),
)
def test_iou_matrix_matches_oracle_on_random_masks(device, n, m, s, seed, packed_a, packed_b):
    rng = np.random.default_rng(seed)
    a = mask_rows(rng, n, s)
    b = mask_rows(rng, m, s, pool=a)
    ta, tb = on(device, a, b)
    arg_a = wmf.pack_masks(ta) if packed_a else ta
    arg_b = wmf.pack_masks(tb) if packed_b else tb
    iou = wmf.iou_matrix(arg_a, arg_b)
    assert np.array_equal(iou.cpu().numpy(), oracle_iou(a, b))
    assert torch.equal(iou, twins.iou_matrix(ta, tb))


def test_bool_and_packed_inputs_are_interchangeable(device):
    rng = np.random.default_rng(4)
    a, b = mask_rows(rng, 10, 150), mask_rows(rng, 14, 150)
    ta, tb = on(device, a, b)
    pa, pb = wmf.pack_masks(ta), wmf.pack_masks(tb)
    expected_iou = wmf.iou_matrix(ta, tb)
    expected_top = wmf.max_iou(ta, tb, k=3)
    for x, y in [(pa, pb), (pa, tb), (ta, pb)]:
        assert torch.equal(wmf.iou_matrix(x, y), expected_iou)
        values, indices = wmf.max_iou(x, y, k=3)
        assert torch.equal(values, expected_top[0]) and torch.equal(indices, expected_top[1])


# --- max IoU -------------------------------------------------------------------------------------------------


@settings(FIXTURE_OK, max_examples=80)
@given(
    n=st.integers(1, 20),
    m=st.integers(2, 20),
    s=st.one_of(st.integers(1, 200), st.sampled_from([63, 64, 65, 127, 128, 129])),
    exclude_self=st.booleans(),
    packed=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_max_iou_matches_oracle_on_random_masks(device, n, m, s, exclude_self, packed, seed, data):
    rng = np.random.default_rng(seed)
    reference = mask_rows(rng, m, s)
    query = reference if exclude_self else mask_rows(rng, n, s, pool=reference)
    k = data.draw(st.integers(1, m - int(exclude_self)), label="k")
    tq, tr = on(device, query, reference)
    args = (wmf.pack_masks(tq), wmf.pack_masks(tr)) if packed else (tq, tr)
    values, indices = wmf.max_iou(*args, k=k, exclude_self=exclude_self)
    expected_values, expected_indices = oracle_max_iou(query, reference, k, exclude_self)
    assert values.dtype == torch.float32 and indices.dtype == torch.int64
    assert np.array_equal(values.cpu().numpy(), expected_values)
    assert np.array_equal(indices.cpu().numpy(), expected_indices)
    twin_values, twin_indices = twins.max_iou(tq, tr, k=k, exclude_self=exclude_self)
    assert torch.equal(values, twin_values) and torch.equal(indices, twin_indices)


@pytest.mark.parametrize("s", [1, 63, 64, 65])
def test_max_iou_exclude_self_keeps_exact_duplicates(device, s):
    masks = torch.rand(6, s, device=device) < 0.5
    masks[:, 0] = False
    masks[1, 0] = True  # non-empty (so its copy has IoU 1, not the empty-union 0) and unlike every other row
    masks[4] = masks[1]  # an exact copy elsewhere in the set: the memorisation signal
    values, indices = wmf.max_iou(masks, masks, exclude_self=True)
    assert indices[1, 0] == 4 and indices[4, 0] == 1
    assert values[1, 0] == 1 and values[4, 0] == 1
    values, indices = wmf.max_iou(masks, masks)
    assert indices[4, 0] == 1 and values[4, 0] == 1  # without exclusion the lowest index among equals wins
    assert indices[1, 0] == 1


def test_max_iou_exclude_self_is_by_index_not_by_value(device):
    masks = torch.zeros(3, 10, dtype=torch.bool, device=device)
    masks[:, :5] = True  # three identical rows
    values, indices = wmf.max_iou(masks, masks, k=2, exclude_self=True)
    assert indices.cpu().tolist() == [[1, 2], [0, 2], [0, 1]]
    assert torch.all(values == 1)


def test_max_iou_ties_go_to_the_lowest_index(device):
    base = torch.rand(3, 100, device=device) < 0.5
    reference = base.repeat(4, 1)  # rows i, i + 3, i + 6, i + 9 are identical
    query = reference[[2, 0]].clone()
    query[:, :5] = ~query[:, :5]  # no longer identical to any row, so the tied value is below 1
    values, indices = wmf.max_iou(query, reference, k=4)
    assert indices.cpu().tolist() == [[2, 5, 8, 11], [0, 3, 6, 9]]
    assert torch.all(values == values[:, :1]) and torch.all(values < 1)


def test_max_iou_equal_fractions_from_different_counts_tie(device):
    # IoU 1/2 from counts 1/2 and from 2/4: equal values, so the lower index comes first whatever the counts.
    query = torch.tensor([[1, 1, 0, 0, 0, 0]], dtype=torch.bool, device=device)
    reference = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],  # 1/2
            [1, 1, 1, 1, 0, 0],  # 2/4
            [0, 0, 0, 0, 0, 1],  # 0/3
            [1, 1, 1, 0, 0, 0],  # 2/3
            [0, 0, 0, 0, 0, 0],  # 0/2
        ],
        dtype=torch.bool,
        device=device,
    )
    values, indices = wmf.max_iou(query, reference, k=5)
    assert indices.cpu().tolist() == [[3, 0, 1, 2, 4]]
    assert values.cpu().tolist() == [[np.float32(2 / 3), 0.5, 0.5, 0.0, 0.0]]


def test_max_iou_ranks_by_exact_value_below_float32_resolution(device):
    # 4140/4141 < 4141/4142 round to the same float32: the order must follow the exact values, and the tie
    # rule must not apply (4141 is the smallest q where (q - 1)/q and q/(q + 1) share a float32).
    q = 4141
    query = torch.zeros(1, q + 1, dtype=torch.bool, device=device)
    query[0, :q] = True
    reference = torch.zeros(2, q + 1, dtype=torch.bool, device=device)
    reference[0, : q - 1] = True  # IoU (q - 1)/q
    reference[1, :] = True  # IoU q/(q + 1), the larger
    values, indices = wmf.max_iou(query, reference, k=2)
    assert indices.cpu().tolist() == [[1, 0]]
    assert values[0, 0] == values[0, 1] == np.float32(q / (q + 1))


@pytest.mark.parametrize("exclude_self", [False, True])
def test_max_iou_k_is_the_sorted_top_of_the_iou_matrix(device, exclude_self):
    masks = torch.from_numpy(mask_rows(np.random.default_rng(5), 30, 130)).to(device)
    k = 7
    values, indices = wmf.max_iou(masks, masks, k=k, exclude_self=exclude_self)
    iou = wmf.iou_matrix(masks)
    assert torch.equal(values, torch.gather(iou, 1, indices))
    assert torch.all(values[:, 1:] <= values[:, :-1])  # sorted descending
    if exclude_self:
        assert not torch.any(indices == torch.arange(30, device=device)[:, None])
        iou.fill_diagonal_(-1)
    assert torch.equal(values, iou.sort(dim=1, descending=True).values[:, :k])


def test_max_iou_at_the_study_scale(device):
    # S = 10,000 test inputs (G.pt's MNIST test set); error sets correlated as in perf_notes §2.6: generated
    # models are training models with 1% of their bits flipped.
    rng = np.random.default_rng(6)
    training = rng.random((40, 10_000)) < 0.14
    generated = training[rng.permutation(40)[:25]] ^ (rng.random((25, 10_000)) < 0.01)
    tg, tt = on(device, generated, training)
    for query, exclude_self in [(tg, False), (tt, True)]:
        values, indices = wmf.max_iou(query, tt, k=3, exclude_self=exclude_self)
        twin_values, twin_indices = twins.max_iou(query, tt, k=3, exclude_self=exclude_self)
        assert torch.equal(values, twin_values) and torch.equal(indices, twin_indices)
    # Predictions 0/1 against all-zero labels: the error sets are the generated masks, packed by error_masks.
    errors = wmf.error_masks(tg.long(), torch.zeros(10_000, dtype=torch.int64, device=device))
    values, indices = wmf.max_iou(errors, tt)
    expected_values, expected_indices = oracle_max_iou(generated, training, 1, False)
    assert np.array_equal(values.cpu().numpy(), expected_values)
    assert np.array_equal(indices.cpu().numpy(), expected_indices)


@pytest.mark.parametrize("backend", ["auto", "torch", "native"])
def test_backends_agree(device, backend):
    masks = torch.from_numpy(mask_rows(np.random.default_rng(8), 20, 100)).to(device)
    chosen = device if backend == "native" else backend  # "cpu" for CPU tensors, "cuda" for CUDA tensors
    packed = wmf.pack_masks(masks, backend=chosen)
    assert torch.equal(packed.words, twins.pack_masks(masks).words)
    assert torch.equal(wmf.unpack_masks(packed), masks)
    assert torch.equal(wmf.iou_matrix(packed, backend=chosen), twins.iou_matrix(masks))
    values, indices = wmf.max_iou(masks, packed, k=3, exclude_self=True, backend=chosen)
    twin_values, twin_indices = twins.max_iou(masks, masks, k=3, exclude_self=True)
    assert torch.equal(values, twin_values) and torch.equal(indices, twin_indices)
    labels = torch.zeros(100, dtype=torch.int64, device=device)
    assert torch.equal(wmf.error_masks(masks.long(), labels, backend=chosen).words, packed.words)


# --- the twins themselves (they are the fallback at real sizes) -----------------------------------------------


@pytest.mark.parametrize("exclude_self", [False, True])
def test_twin_chunking_is_invisible(monkeypatch, exclude_self):
    # A tiny chunk forces many query and reference blocks, with self-exclusion across block boundaries.
    monkeypatch.setattr(iou_twins, "_CHUNK_ELEMENTS", 100)
    rng = np.random.default_rng(9)
    masks = mask_rows(rng, 37, 150)
    tensor = torch.from_numpy(masks)
    packed = twins.pack_masks(tensor)
    assert np.array_equal(packed.words.numpy(), oracle_words(masks))
    assert torch.equal(twins.unpack_masks(packed), tensor)
    assert np.array_equal(twins.iou_matrix(packed, tensor).numpy(), oracle_iou(masks, masks))
    values, indices = twins.max_iou(tensor, packed, k=5, exclude_self=exclude_self)
    expected_values, expected_indices = oracle_max_iou(masks, masks, 5, exclude_self)
    assert np.array_equal(values.numpy(), expected_values)
    assert np.array_equal(indices.numpy(), expected_indices)


@pytest.mark.parametrize("exclude_self", [False, True])
def test_paper_method_agrees_with_max_iou(device, exclude_self):
    rng = np.random.default_rng(10)
    training = mask_rows(rng, 25, 130)
    target = training if exclude_self else mask_rows(rng, 18, 130, pool=training)
    tt, tg = on(device, target, training)
    paper, paper_index = twins.paper_max_similarity(tt, tg, exclude_self=exclude_self, block=8)
    values, indices = wmf.max_iou(tt, tg, exclude_self=exclude_self)
    # The study divides in float32 by union + 1e-8 (measured here: identical to ours on the CPU).
    torch.testing.assert_close(paper, values[:, 0], rtol=0, atol=1e-6)
    # Where the best IoU is 0 the study may return any row, its own zeroed diagonal included.
    found = values[:, 0] > 0
    assert torch.equal(paper_index[found], indices[found, 0])


def test_packed_masks_with_padding_bits_set_are_rejected(device):
    # Bits past n_bits would be counted by the kernels; the ops refuse them instead of returning a wrong IoU.
    bad = wmf.PackedMasks(torch.tensor([[-1], [7]], dtype=torch.int64, device=device), 3)
    with pytest.raises(ValueError, match="bits set past n_bits = 3"):
        wmf.iou_matrix(bad)
    with pytest.raises(ValueError, match="bits set past n_bits = 3"):
        wmf.max_iou(bad, bad, exclude_self=True)
