"""GEMM tiles with rigorous error bounds: the fast half of the exact distance ops (issue 3).

Distances come from the expansion ||a||^2 + ||b||^2 - 2 a.b with the GEMM done by torch (MKL / cuBLAS), tile by
tile, so no N x M matrix is needed. The kernels never trust a GEMM value blindly: they bracket every squared
distance with the error model below and recompute exactly (float64 direct differences) wherever the bracket is
too wide to decide. This module prepares the operands and the model; the kernels apply it
(csrc/distances/gram_bounds.h).

Two things keep the bracket tight, so few pairs need the exact path: float32 GEMMs run over slices of at most
SPLIT_K columns whose results are summed in float64 (the error bound grows with the slice length, not with D),
and sets whose rows sit close together relative to their norms are centred first (L2 is translation-invariant).
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

# Scratch per call: operand copies and one GEMM tile. Raised for large inputs (see _workspace_bytes).
WORKSPACE_BYTES = 64 << 20
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
    """One input set, validated: rows in the compute dtype, float64 squared norms and norms, cosine scales."""

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


def row_sqnorms(impl: str, rows: torch.Tensor) -> torch.Tensor:
    """[R] float64 squared norms of the rows (float64 accumulation)."""
    if impl == "torch":
        from ..reference.distances import row_sqnorms as twin

        return twin(rows)
    out = torch.empty(rows.shape[0], dtype=torch.float64, device=rows.device)
    _ext.call(impl, "row_sqnorms", rows, out)
    return out


def prepare_side(impl: str, name: str, x: torch.Tensor, metric: str) -> Side:
    """Validates values (NaN/Inf; all-zero rows for cosine) and computes what the kernels need."""
    rows = compute_rows(x)
    sqnorm = row_sqnorms(impl, rows)
    _check.finite_rows(name, sqnorm)
    scale = None
    if metric == "cosine":
        _check.nonzero_rows(name, sqnorm)
        scale = torch.rsqrt(sqnorm)
    return Side(rows, sqnorm, sqnorm.sqrt(), scale)


def prepare_pair(impl: str, query: torch.Tensor, reference: torch.Tensor, metric: str) -> tuple[Side, Side]:
    q = prepare_side(impl, "query", query, metric)
    r = q if reference is query else prepare_side(impl, "reference", reference, metric)
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


def gemm_relative_error(width: int, dtype: torch.dtype, device_type: str) -> float:
    """gemm_rel such that |g - a.b| <= gemm_rel ||a|| ||b|| for the tile value g that GramPlan.tiles computes.

    Each slice of K columns is a GEMM with error gamma_K sum|a_i b_i| over its columns; reduced-precision matmul
    modes first round the inputs (2 u_in + u_in^2 per product); the float64 sum of the slices adds
    gamma_slices(2^-53) of the slice magnitudes. Cauchy-Schwarz bounds every sum |a_i b_i| by ||a|| ||b||.
    Returns inf when K u >= 1/2 (D beyond 8M in one float32 slice): every pair is then decided exactly.
    """
    k = split_k(width, dtype)
    unit = _F32_UNIT if dtype == torch.float32 else _F64_UNIT
    u_in = _matmul_input_rounding(device_type) if dtype == torch.float32 else 0.0
    per_slice = (2.0 * u_in + u_in * u_in) + _gamma(k, unit) * (1.0 + u_in) ** 2
    slices = -(-width // k)
    return per_slice + _gamma(slices, _F64_UNIT) * (1.0 + per_slice)


# Rows sampled to decide on centring: the choice only affects speed, never correctness.
_CENTRE_SAMPLE = 64


def _sample_moments(side: Side) -> tuple[torch.Tensor, float]:
    """Mean row (float64 [D]) and mean squared norm of up to _CENTRE_SAMPLE evenly spaced rows."""
    n = side.rows.shape[0]
    pick = torch.linspace(0, n - 1, min(n, _CENTRE_SAMPLE), device=side.rows.device).long()
    return side.rows[pick].to(torch.float64).mean(dim=0), float(side.sqnorm[pick].mean())


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

    gram is float64 when float32 slices were summed, else the compute dtype; its strides depend on ref_major.
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
        self.centre = None if metric == "cosine" else choose_centre(q, r)
        unit = _F32_UNIT if dtype == torch.float32 else _F64_UNIT
        # Centred operands are rounded copies: each row moves by at most unit * (1 + 2 unit) of its norm.
        operand_rel = unit * (1.0 + 2.0 * unit) if self.centre is not None else 0.0
        if metric == "cosine":
            operand_rel += 8.0 * _F64_UNIT  # 1/||row|| is itself rounded
        self.gemm_rel = gemm_relative_error(width, dtype, q.rows.device.type)
        self.operand_rel = operand_rel
        self.split = split_k(width, dtype)
        self.q_block, self.r_block = self._block_rows(width, dtype.itemsize)

    def _block_rows(self, width: int, itemsize: int) -> tuple[int, int]:
        n, m = self.q.rows.shape[0], self.r.rows.shape[0]
        budget = max(WORKSPACE_BYTES, (n + m) * width * itemsize // 20)  # <= 5% of the inputs beyond 64 MiB
        if self.centre is not None:  # centred copies of a query block and a reference tile
            q_block = min(n, max(16, budget // 4 // (width * itemsize)))
            r_block = min(m, max(16, budget // 4 // (width * itemsize)))
        else:
            q_block, r_block = min(n, 4096), m
        # The tile itself, float64 when slices are summed.
        r_block = max(1, min(r_block, budget // 4 // (q_block * 8)))
        return q_block, r_block

    def _operand(self, side: Side, select: slice | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = side.rows[select]
        if self.centre is None:
            return rows, side.sqnorm[select], side.norm[select]
        shifted = rows - self.centre
        sqnorm = row_sqnorms(self.impl, shifted)
        return shifted, sqnorm, sqnorm.sqrt()

    def _product(self, a: torch.Tensor, b: torch.Tensor, ref_major: bool, buffers: "_TileBuffers") -> torch.Tensor:
        """a @ b.T ([Qb, Rt]) in the reused buffers; ref_major computes b @ a.T and returns its transpose view."""
        left, right = (b, a) if ref_major else (a, b)
        width = a.shape[1]
        if self.split >= width:
            return buffers.product(left, right, ref_major)
        acc = buffers.accumulator(left.shape[0], right.shape[0])
        for c0 in range(0, width, self.split):
            part = buffers.product(left[:, c0 : c0 + self.split], right[:, c0 : c0 + self.split], False)
            if c0 == 0:
                acc.copy_(part)
            else:
                acc += part
        return acc.t() if ref_major else acc

    def query_blocks(self) -> Iterator[tuple[int, int]]:
        n = self.q.rows.shape[0]
        for q0 in range(0, n, self.q_block):
            yield q0, min(n, q0 + self.q_block)

    def tiles(self, select: slice | torch.Tensor, *, ref_major: bool) -> Iterator[Tile]:
        """GEMM tiles of the selected queries (a slice or an index tensor), in increasing reference order.

        ref_major lays the product out reference-major, so a CUDA thread per query reads consecutive memory
        across a warp. Tiles share one buffer: consume each tile before asking for the next.
        """
        a, a_sqnorm, a_norm = self._operand(self.q, select)
        m = self.r.rows.shape[0]
        buffers = _TileBuffers(a.shape[0] * min(m, self.r_block), a.dtype, a.device)
        for r0 in range(0, m, self.r_block):
            r1 = min(m, r0 + self.r_block)
            b, b_sqnorm, b_norm = self._operand(self.r, slice(r0, r1))
            yield Tile(r0, r1, self._product(a, b, ref_major, buffers), a_sqnorm, a_norm, b_sqnorm, b_norm)


class _TileBuffers:
    """Scratch reused by every tile of one query block: fresh allocations would pay page faults each time."""

    def __init__(self, elements: int, dtype: torch.dtype, device: torch.device) -> None:
        self._elements, self._dtype, self._device = elements, dtype, device
        self._product: torch.Tensor | None = None
        self._accumulator: torch.Tensor | None = None

    @staticmethod
    def _view(flat: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        return flat[: rows * cols].view(rows, cols)

    def product(self, left: torch.Tensor, right: torch.Tensor, transpose: bool) -> torch.Tensor:
        if self._product is None:
            self._product = torch.empty(self._elements, dtype=self._dtype, device=self._device)
        out = self._view(self._product, left.shape[0], right.shape[0])
        torch.mm(left, right.t(), out=out)
        return out.t() if transpose else out

    def accumulator(self, rows: int, cols: int) -> torch.Tensor:
        if self._accumulator is None:
            self._accumulator = torch.empty(self._elements, dtype=torch.float64, device=self._device)
        return self._view(self._accumulator, rows, cols)


def scale_of(side: Side, select: slice | torch.Tensor) -> torch.Tensor | None:
    return None if side.scale is None else side.scale[select]
