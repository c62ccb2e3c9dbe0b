"""GEMM tiles with rigorous error bounds: the fast half of the exact distance ops (issue 3).

Distances come from the expansion ||a||^2 + ||b||^2 - 2 a.b with the GEMM done by torch (MKL / cuBLAS), tile by
tile, so no N x M matrix is needed. The kernels never trust a GEMM value blindly: they bracket every squared
distance with the error model below and recompute exactly (float64 direct differences) wherever the bracket is
too wide to decide. This module prepares the operands and the model; the kernels apply it
(csrc/distances/gram_bounds.h).

The bracket must stay tight so that few pairs need the exact path. On CUDA the GEMM runs in float64 (operands
converted tile by tile; Hopper's float64 tensor cores match its float32 SIMT rate), whose error bound is
negligible. On the CPU, where float64 GEMMs cost twice as much, float32 GEMMs run over slices of at most SPLIT_K
columns summed in float64 (the bound grows with the slice length, not with D), and sets whose rows sit close
together relative to their norms are centred first (L2 is translation-invariant).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch

from .. import _check, _ext

METRICS = ("l2", "sqeuclidean", "cosine")
# csrc/distances/gram_bounds.h DistanceOutput: how a squared distance becomes the reported value.
DISTANCE_OUTPUT = {"sqeuclidean": 0, "l2": 1, "cosine": 2}

# Scratch per call on the CPU: operand copies and one GEMM tile; 5% of the inputs when that is more (the issue
# allows 10%). On a GPU the float64 operand copies want room and large tiles keep the GPU full: up to four times
# the inputs (whole float64 copies of both sets), at least CUDA_WORKSPACE_BYTES, at most half the free memory.
WORKSPACE_BYTES = 64 << 20
CUDA_WORKSPACE_BYTES = 2 << 30
# Columns per float32 GEMM slice. gamma_K for K = 4096 is 2.4e-4: tight enough that a far pair is decided by its
# estimate, long enough that MKL and cuBLAS run near peak. Summing the slices in float64 costs one pass over the
# tile per slice.
SPLIT_K = 4096
# Centre the operands when that shrinks the product of their norms (and so the error bound) at least this much.
_CENTRE_GAIN = 4.0
_F32_UNIT = 2.0**-24
_F64_UNIT = 2.0**-53


@dataclass(frozen=True)
class Side:
    """One input set: rows in the compute dtype, float64 squared norms and norms, 1/norm for cosine (else None).

    Its values are checked by the InputCheck it was registered with (at once on the CPU, after the work on a GPU).
    """

    rows: torch.Tensor
    sqnorm: torch.Tensor
    norm: torch.Tensor
    scale: torch.Tensor | None


def compute_rows(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 are computed as float32 (an exact conversion); rows must be unit-stride for the kernels."""
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if x.stride(1) != 1:
        x = x.contiguous()
    return x


def row_norms(
    impl: str, rows: torch.Tensor, *, require_nonzero: bool = False, unusable: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """([R] float64 squared norms, [R] norms) of the rows, float64 accumulation.

    ``unusable`` (one int32 on the rows' device) gains the number of rows whose squared norm is not finite (a
    row with NaN or Inf), or is 0 when ``require_nonzero``.
    """
    if impl == "torch":
        from ..reference.distances import row_sqnorms as twin

        sqnorm = twin(rows)
        if unusable is not None:
            bad = ~torch.isfinite(sqnorm) | ((sqnorm == 0) if require_nonzero else False)
            unusable += bad.sum(dtype=torch.int32)
        return sqnorm, sqnorm.sqrt()
    sqnorm = torch.empty(rows.shape[0], dtype=torch.float64, device=rows.device)
    norm = torch.empty_like(sqnorm)
    _ext.call(impl, "row_norms", rows, sqnorm, norm, require_nonzero, unusable)
    return sqnorm, norm


class InputCheck:
    """Validates an op's inputs (and its internal consistency) with at most one host synchronisation.

    Kernels count what is wrong into one small device tensor: unusable rows per input and queries that ended
    with too few neighbours. On the CPU the inputs are checked at once (reading a CPU tensor costs nothing, and
    a NaN row would make the search scan everything); on a GPU the count is read once, after the work.
    """

    def __init__(self, device: torch.device, names: tuple[str, str], metric: str) -> None:
        self.counts = torch.zeros(3, dtype=torch.int32, device=device)  # [bad first, bad second, short rows]
        self.names, self.metric = names, metric
        self._sides: list[tuple[str, "Side"]] = []

    def side_counter(self, which: int) -> torch.Tensor:
        return self.counts[which : which + 1]

    @property
    def short_rows(self) -> torch.Tensor:
        return self.counts[2:3]

    def register(self, which: int, side: "Side") -> None:
        self._sides.append((self.names[which], side))
        if side.rows.device.type == "cpu":
            self.raise_if_failed()

    def raise_if_failed(self) -> None:
        """ValueError naming the first bad row of an input; RuntimeError if a kernel lost neighbours."""
        bad_first, bad_second, short = self.counts.tolist()
        if bad_first or bad_second:
            for name, side in self._sides:
                _check.finite_rows(name, side.sqnorm)
                if self.metric == "cosine":
                    _check.nonzero_rows(name, side.sqnorm)
        if short:
            raise RuntimeError(f"internal error: {short} queries lost their candidates; please report this input")


def prepare_side(impl: str, x: torch.Tensor, metric: str, check: InputCheck, which: int) -> Side:
    """Rows in the compute dtype and what the kernels need of them, registered with ``check``."""
    rows = compute_rows(x)
    sqnorm, norm = row_norms(
        impl, rows, require_nonzero=(metric == "cosine"), unusable=check.side_counter(which)
    )
    side = Side(rows, sqnorm, norm, torch.reciprocal(norm) if metric == "cosine" else None)
    check.register(which, side)
    return side


def prepare_pair(
    impl: str, query: torch.Tensor, reference: torch.Tensor, metric: str, check: InputCheck
) -> tuple[Side, Side]:
    q = prepare_side(impl, query, metric, check, 0)
    r = q if reference is query else prepare_side(impl, reference, metric, check, 1)
    return q, r


def _matmul_input_rounding(device_type: str) -> float:
    """Unit roundoff of the operands inside torch's float32 matmul under the user's precision settings.

    0 for IEEE float32; TF32 (10 stored bits) or bfloat16 modes round the inputs first. Read through the
    fp32_precision API, which reflects both the legacy and the new setters; unknown answers count as bfloat16.
    """
    try:
        backend = torch.backends.cuda.matmul if device_type == "cuda" else torch.backends.mkldnn.matmul
        precision = backend.fp32_precision
        if precision == "none":
            precision = torch.backends.fp32_precision
    except (AttributeError, RuntimeError):
        legacy = torch.get_float32_matmul_precision()
        precision = {"highest": "ieee", "high": "tf32"}.get(legacy, "bf16")
    return {"none": 0.0, "ieee": 0.0, "tf32": 2.0**-10}.get(precision, 2.0**-8)


def _gamma(n: int, unit: float) -> float:
    """gamma_n = n u / (1 - n u): relative error of an n-term dot product in any summation order (Higham §3.1)."""
    nu = n * unit
    return math.inf if nu >= 0.5 else nu / (1.0 - nu)


def split_k(width: int, dtype: torch.dtype) -> int:
    """Columns per GEMM slice: float32 is sliced (see SPLIT_K); float64 is accurate enough in one piece."""
    return min(width, SPLIT_K) if dtype == torch.float32 else width


def float32_matmul_error(terms: int, device_type: str) -> float:
    """rel such that |g - sum_i a_i b_i| <= rel * sum_i |a_i b_i| for any float32 torch matmul entry g of ``terms``
    products (any summation order, FMA or not), under the user's precision settings: reduced-precision modes first
    round the inputs (2 u_in + u_in^2 per product), then the sum costs gamma_terms."""
    u_in = _matmul_input_rounding(device_type)
    return (2.0 * u_in + u_in * u_in) + _gamma(terms, _F32_UNIT) * (1.0 + u_in) ** 2


def gemm_relative_error(width: int, dtype: torch.dtype, device_type: str) -> float:
    """gemm_rel such that |g - a.b| <= gemm_rel ||a|| ||b|| for the tile value g that GramPlan.tiles computes.

    Each slice of K columns is a GEMM with error float32_matmul_error(K) (float64: gamma_K) of the sum of
    |a_i b_i| over its columns; the float64 sum of the slices adds gamma_slices(2^-53) of the slice magnitudes.
    Cauchy-Schwarz bounds every sum |a_i b_i| by ||a|| ||b||. Returns inf when K u >= 1/2 (D beyond 8M in one
    float32 slice): every pair is then decided exactly.
    """
    k = split_k(width, dtype)
    per_slice = float32_matmul_error(k, device_type) if dtype == torch.float32 else _gamma(k, _F64_UNIT)
    slices = -(-width // k)
    return per_slice + _gamma(slices, _F64_UNIT) * (1.0 + per_slice)


# Rows sampled to decide on centring: the choice only affects speed, never correctness.
_CENTRE_SAMPLE = 64


def _sample_moments(side: Side) -> tuple[torch.Tensor, float]:
    """Mean row (float64 [D]) and mean squared norm of up to _CENTRE_SAMPLE evenly spaced rows.

    Sampled rows are converted to float64 a few at a time: at D = 500,000 the whole sample would be 256 MB.
    """
    n, width = side.rows.shape
    pick = torch.linspace(0, n - 1, min(n, _CENTRE_SAMPLE), device=side.rows.device).long()
    step = max(1, (8 << 20) // (8 * width))
    total = torch.zeros(width, dtype=torch.float64, device=side.rows.device)
    for start in range(0, len(pick), step):
        total += side.rows[pick[start : start + step]].to(torch.float64).sum(dim=0)
    return total / len(pick), float(side.sqnorm[pick].mean())


def choose_centre(q: Side, r: Side) -> torch.Tensor | None:
    """A centre for both sets when subtracting it shrinks ||a|| ||b|| (so the error bound) by >= _CENTRE_GAIN.

    L2 is translation-invariant; clusters of near-identical checkpoints (one training run, fine-tuned zoos) have
    large norms but small spread, and centring them turns a bound that admits every row into a tight one. The
    centre is the mean of a sample of reference rows; any centre keeps results exact.
    """
    centre, r_sqnorm = _sample_moments(r)
    q_mean, q_sqnorm = (centre, r_sqnorm) if q is r else _sample_moments(q)
    c2 = float(centre @ centre)
    # mean ||x - c||^2 = mean ||x||^2 - 2 c . mean(x) + ||c||^2
    r_centred = max(0.0, r_sqnorm - c2)
    q_centred = max(0.0, q_sqnorm - 2.0 * float(centre @ q_mean) + c2)
    if q_centred * r_centred * _CENTRE_GAIN**2 > q_sqnorm * r_sqnorm:
        return None
    return centre.to(q.rows.dtype)


@dataclass(frozen=True)
class Tile:
    """gram[i, j] = a_i . b_j for the selected queries i and references r0 + j, with the operands' norms.

    gram is query-major; float64 when float32 slices were summed or the GEMM ran in float64.
    """

    r0: int
    r1: int
    gram: torch.Tensor
    q_sqnorm: torch.Tensor
    q_norm: torch.Tensor
    r_sqnorm: torch.Tensor
    r_norm: torch.Tensor


class GramPlan:
    """Operands, error model and tiling for one call comparing query rows with reference rows."""

    def __init__(self, impl: str, q: Side, r: Side, metric: str) -> None:
        self.impl = impl
        self.q, self.r = q, r
        width = q.rows.shape[1]
        dtype = q.rows.dtype
        device_type = q.rows.device.type
        self.gemm_dtype = torch.float64 if device_type == "cuda" else dtype
        fp32_gemm = self.gemm_dtype == torch.float32
        self.centre = choose_centre(q, r) if (fp32_gemm and metric != "cosine") else None
        # Centred float32 operands are rounded copies: each row moves by at most u (1 + 2u) of its norm. Float64
        # copies of float32 rows are exact.
        operand_rel = _F32_UNIT * (1.0 + 2.0 * _F32_UNIT) if self.centre is not None else 0.0
        if metric == "cosine":
            operand_rel += 8.0 * _F64_UNIT  # 1/||row|| is itself rounded
        self.gemm_rel = gemm_relative_error(width, self.gemm_dtype, device_type)
        self.operand_rel = operand_rel
        self.split = split_k(width, self.gemm_dtype)
        self.q_block, self.r_block = self._block_rows(width, dtype.itemsize, device_type)

    def _block_rows(self, width: int, itemsize: int, device_type: str) -> tuple[int, int]:
        n, m = self.q.rows.shape[0], self.r.rows.shape[0]
        input_bytes = (n + m) * width * itemsize
        if device_type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.q.rows.device)
            budget = max(CUDA_WORKSPACE_BYTES, min(free // 2, 4 * input_bytes))
        else:
            budget = max(WORKSPACE_BYTES, input_bytes // 20)
        copy_bytes = width * self.gemm_dtype.itemsize
        if self.centre is not None or self.gemm_dtype != self.q.rows.dtype:  # operand copies of both sides
            q_block = min(n, max(16, budget // 4 // copy_bytes))
            r_block = min(m, max(16, budget // 4 // copy_bytes))
        else:
            q_block, r_block = min(n, 4096), m
        # The tile itself: float64 when slices are summed or the GEMM is float64.
        r_block = max(1, min(r_block, budget // 4 // (q_block * 8)))
        return q_block, r_block

    def _operand(self, side: Side, select: slice | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = side.rows[select]
        if self.centre is not None:
            shifted = rows - self.centre
            sqnorm, norm = row_norms(self.impl, shifted)
            return shifted, sqnorm, norm
        return rows.to(self.gemm_dtype), side.sqnorm[select], side.norm[select]

    def _product(self, a: torch.Tensor, b: torch.Tensor, buffers: "_TileBuffers") -> torch.Tensor:
        """a @ b.T ([Qb, Rt]) in the reused buffers, float32 slices summed in float64 where split."""
        width = a.shape[1]
        if self.split >= width:
            return buffers.product(a, b)
        acc = buffers.accumulator(a.shape[0], b.shape[0])
        for c0 in range(0, width, self.split):
            part = buffers.product(a[:, c0 : c0 + self.split], b[:, c0 : c0 + self.split])
            if c0 == 0:
                acc.copy_(part)
            else:
                acc += part
        return acc

    def query_blocks(self) -> Iterator[tuple[int, int]]:
        n = self.q.rows.shape[0]
        for q0 in range(0, n, self.q_block):
            yield q0, min(n, q0 + self.q_block)

    def tiles(self, select: slice | torch.Tensor) -> Iterator[Tile]:
        """Query-major GEMM tiles of the selected queries (a slice or an index tensor), in increasing reference
        order. Tiles share one buffer: consume each tile before asking for the next."""
        a, a_sqnorm, a_norm = self._operand(self.q, select)
        m = self.r.rows.shape[0]
        buffers = _TileBuffers(a.shape[0] * min(m, self.r_block), a.dtype, a.device)
        for r0 in range(0, m, self.r_block):
            r1 = min(m, r0 + self.r_block)
            b, b_sqnorm, b_norm = self._operand(self.r, slice(r0, r1))
            yield Tile(r0, r1, self._product(a, b, buffers), a_sqnorm, a_norm, b_sqnorm, b_norm)


class _TileBuffers:
    """Scratch reused by every tile of one query block: fresh allocations would pay page faults each time."""

    def __init__(self, elements: int, dtype: torch.dtype, device: torch.device) -> None:
        self._elements, self._dtype, self._device = elements, dtype, device
        self._product: torch.Tensor | None = None
        self._accumulator: torch.Tensor | None = None

    @staticmethod
    def _view(flat: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        return flat[: rows * cols].view(rows, cols)

    def product(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """left @ right.T into the product buffer."""
        if self._product is None:
            self._product = torch.empty(self._elements, dtype=self._dtype, device=self._device)
        out = self._view(self._product, left.shape[0], right.shape[0])
        return torch.mm(left, right.t(), out=out)

    def accumulator(self, rows: int, cols: int) -> torch.Tensor:
        if self._accumulator is None:
            self._accumulator = torch.empty(self._elements, dtype=torch.float64, device=self._device)
        return self._view(self._accumulator, rows, cols)


def scale_of(side: Side, select: slice | torch.Tensor) -> torch.Tensor | None:
    return None if side.scale is None else side.scale[select]
