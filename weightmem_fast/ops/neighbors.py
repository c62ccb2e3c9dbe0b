"""``nearest``: exact k-nearest training checkpoints without an N x M matrix (issue 3)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import _check, _dispatch, _ext
from .. import reference as twins
from ..reference.distances import output_dtype
from . import _gram

# Candidate list length per query beyond 2k: room for the answers plus near-ties. A list that overflows is
# scanned again from its final tau (float32 GEMMs only), and one that overflows again is re-ranked against every
# reference row: correct, and only reached when that many rows sit inside the error bound.
_SLACK_CANDIDATES = 64


def nearest(
    query: torch.Tensor,
    reference: torch.Tensor,
    k: int = 1,
    metric: str = "l2",
    exclude_self: bool = False,
    *,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` reference rows nearest to each query row, with exact distances.

    The study's "distance to training": ``nearest(generated, training)`` gives every generated model's closest
    training model; ``nearest(training, training, exclude_self=True)`` gives the training set's own spread.

    How: per tile, a torch GEMM gives every distance up to a rigorous error bound; each query keeps the rows that
    could still be among its k nearest (lower bound <= the k-th smallest upper bound so far) and those
    candidates are re-ranked with exact float64 direct differences. Memory is O((N + M) k + one tile), never
    N x M. On the CPU the inputs are not copied (except float16/bfloat16, computed as float32, rows whose
    elements are not contiguous, and tiles of tightly clustered sets, which are centred) and scratch stays
    within 5% of the inputs beyond 64 MiB. On a GPU the GEMM runs in float64 on converted tiles, which take up to
    four times the inputs (at least 2 GiB, at most half the free memory).

    Args:
        query: [N, D] float16/bfloat16/float32/float64 tensor, CPU or CUDA, any row stride; one model per row.
        reference: [M, D] tensor with the same dtype and device.
        k: neighbours per query, 1 <= k <= M (M - 1 with ``exclude_self``).
        metric: ``"l2"``, ``"sqeuclidean"`` or ``"cosine"`` (1 - cosine similarity).
        exclude_self: query and reference are the same set (N == M) and row i never returns index i. Exclusion
            is by index, so an exact duplicate of row i elsewhere in the set still returns distance 0: that is
            the memorisation signal.
        backend: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"torch"`` (the pure-PyTorch float64 reference).

    Returns:
        (distances [N, k], indices [N, k] int64), sorted ascending; ties go to the lowest index. Distances are
        float32 (float64 for float64 inputs) with relative error <= 1e-6 against a float64 oracle (1e-10 for
        float64 inputs), near-duplicates included; indices are the true nearest up to exact ties.

    Raises:
        TypeError: non-tensor input, non-floating dtype, dtypes that differ, non-int k.
        ValueError: not 2-D, empty, widths or devices that differ, NaN/Inf values, unknown metric, k out of
            range, ``exclude_self`` with sets of different sizes, all-zero rows with ``metric="cosine"``.

    Example:
        >>> import torch, weightmem_fast as wmf
        >>> training = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
        >>> generated = torch.tensor([[0.9, 0.1]])
        >>> dist, idx = wmf.nearest(generated, training, k=2)
        >>> idx
        tensor([[1, 0]])
        >>> dist, idx = wmf.nearest(training, training, exclude_self=True)
        >>> idx.flatten()
        tensor([1, 0, 1])
    """
    values, indices, _ = nearest_ranked(query, reference, k, metric, exclude_self, backend=backend)
    return values, indices


def nearest_ranked(
    query: torch.Tensor,
    reference: torch.Tensor,
    k: int = 1,
    metric: str = "l2",
    exclude_self: bool = False,
    *,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``nearest``, plus the float64 keys [N, k] it ranked by: exact squared distances (of the unit rows for
    ``metric="cosine"``), formed in a fixed order, so a pair gets the same key in any call. Results of calls on
    different parts of a reference set merge exactly by (key, index), as one call on the whole set ranks
    (``weightmem_fast.distributed``); their float32 distances alone can tie where the keys do not. The
    ``"torch"`` backend returns its distances in float64 as keys."""
    query = _check.matrix("query", query)
    reference = _check.matrix("reference", reference, like=query, like_name="query")
    metric = _check.choice("metric", metric, _gram.METRICS)
    if not isinstance(exclude_self, bool):
        raise TypeError(f"exclude_self must be a bool; got {type(exclude_self).__name__}")
    if exclude_self:
        _check.same_set(query, reference)
    k = _check.neighbour_count(k, reference.shape[0] - int(exclude_self), exclude_self)
    impl = _dispatch.choose("nearest", query.device.type, backend)
    check = _gram.InputCheck(query.device, ("query", "reference"), metric)
    q, r = _gram.prepare_pair(impl, query, reference, metric, check)
    if impl == "torch":
        check.raise_if_failed()
        values, indices = twins.nearest(q.rows, r.rows, k, metric, exclude_self)
        return values, indices, values.double()

    plan = _gram.GramPlan(impl, q, r, metric)
    n, m = q.rows.shape[0], r.rows.shape[0]
    sqdist = torch.empty(n, k, dtype=torch.float64, device=query.device)  # ranking keys
    indices = torch.empty(n, k, dtype=torch.int64, device=query.device)
    values = torch.empty(n, k, dtype=output_dtype(query), device=query.device)
    capacity = min(m, 2 * k + _SLACK_CANDIDATES)
    for q0, q1 in plan.query_blocks():
        q_index = torch.arange(q0, q1, device=query.device)
        state = _CandidateState.empty(q1 - q0, k, capacity, query.device)
        _scan(impl, plan, slice(q0, q1), q_index, exclude_self, state)
        # With a float32 GEMM's looser bound, a list can overflow merely because the true neighbour came late:
        # scan those queries again from their final tau (only what overflows again is re-ranked against every
        # row). A float64 GEMM's bound is so tight that an overflow means a real cluster of ties: skip the
        # host synchronisation.
        retry = plan.gemm_dtype == torch.float32
        overflowed = torch.nonzero(state.overflow).flatten() if retry else None
        if overflowed is not None and overflowed.numel() > 0:
            second = _CandidateState.seeded(state.bound_heap[overflowed, :1].expand(-1, k), capacity)
            _scan(impl, plan, overflowed + q0, q_index[overflowed], exclude_self, second)
            state.replace_rows(overflowed, second)
        _ext.call(
            impl,
            "nearest_rerank",
            q.rows[q0:q1],
            q.norm[q0:q1] if metric == "cosine" else None,
            r.rows,
            r.norm if metric == "cosine" else None,
            q_index,
            exclude_self,
            *state.tensors(),
            sqdist[q0:q1],
            indices[q0:q1],
            _gram.DISTANCE_OUTPUT[metric],
            values[q0:q1],
            check.short_rows,
        )
    check.raise_if_failed()
    return values, indices, sqdist


@dataclass
class _CandidateState:
    """The per-query search state of csrc/neighbors/candidate_state.h, allocated on the inputs' device."""

    bound_heap: torch.Tensor  # [Q, k] float64, +inf initially
    cand_index: torch.Tensor  # [Q, C] int64
    cand_lower: torch.Tensor  # [Q, C] float64
    cand_count: torch.Tensor  # [Q] int64
    overflow: torch.Tensor  # [Q] uint8

    @classmethod
    def seeded(cls, bound_heap: torch.Tensor, capacity: int) -> "_CandidateState":
        """Fresh lists under a heap of known upper bounds (each is >= the true k-th distance, so it stays valid)."""
        rows, device = bound_heap.shape[0], bound_heap.device
        return cls(
            bound_heap.contiguous(),
            torch.empty(rows, capacity, dtype=torch.int64, device=device),
            torch.empty(rows, capacity, dtype=torch.float64, device=device),
            torch.zeros(rows, dtype=torch.int64, device=device),
            torch.zeros(rows, dtype=torch.uint8, device=device),
        )

    @classmethod
    def empty(cls, rows: int, k: int, capacity: int, device: torch.device) -> "_CandidateState":
        return cls.seeded(torch.full((rows, k), torch.inf, dtype=torch.float64, device=device), capacity)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.bound_heap, self.cand_index, self.cand_lower, self.cand_count, self.overflow)

    def replace_rows(self, rows: torch.Tensor, other: "_CandidateState") -> None:
        for mine, theirs in zip(self.tensors(), other.tensors()):
            mine[rows] = theirs


def _scan(
    impl: str,
    plan: _gram.GramPlan,
    select: slice | torch.Tensor,
    q_index: torch.Tensor,
    exclude_self: bool,
    state: _CandidateState,
) -> None:
    """Runs the candidate step of the selected queries over every reference tile."""
    q_scale = _gram.scale_of(plan.q, select)
    for tile in plan.tiles(select):
        _ext.call(
            impl,
            "nearest_scan",
            tile.gram,
            tile.q_sqnorm,
            tile.q_norm,
            q_scale,
            tile.r_sqnorm,
            tile.r_norm,
            _gram.scale_of(plan.r, slice(tile.r0, tile.r1)),
            plan.gemm_rel,
            plan.operand_rel,
            q_index,
            tile.r0,
            exclude_self,
            *state.tensors(),
        )
