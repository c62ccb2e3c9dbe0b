"""Permutation-aligned distances between one-hidden-layer MLPs (issue 9; study_spec §2.3), exact and batched.

For MLPs ``x -> W2 act(W1 x + b1) + b2`` with H hidden units, hidden unit h of a model is the neuron group
``g_h = [W1[h, :], b1[h], W2[:, h]]``; permuting the units permutes the groups and leaves the function unchanged.
The aligned distance of a query q to a reference r is

    d(q, r)^2 = min over permutations pi of  sum_i ||g_i(q) - g_pi(i)(r)||^2  +  ||b2(q) - b2(r)||^2,

a linear assignment problem on the H x H cost matrix C[i, j] = ||g_i(q) - g_j(r)||^2. It equals the minimum over
permutations of the plain L2 distance, exactly, because there is only one hidden layer.

How ``aligned_nearest`` stays exact and avoids most assignments:

- **Lower bound (pruning).** ||g_i(q) - g_j(r)|| >= | ||g_i(q)|| - ||g_j(r)|| | (triangle inequality), so every
  assignment costs at least sum_i (||g_i(q)|| - ||g_pi(i)(r)||)^2, and by the rearrangement inequality the
  cheapest pairing of two lists of norms matches them in sorted order. Hence
  ``LB(q, r)^2 = sum_h (sorted norms of q - sorted norms of r)_h^2 + ||b2(q) - b2(r)||^2 <= d(q, r)^2``. A reference
  whose LB exceeds the query's k-th best distance so far cannot be among its k nearest and is never solved. The
  bound is computed from GEMM terms in float64 and lowered by a margin far above their rounding error, so it stays
  a bound.
- **Screening.** Cost matrices come out of one GEMM per block in the inputs' dtype (float32 for float32 weights):
  augmented groups [g, ||g||^2, 1] . [-2h, 1, ||h||^2] = ||g - h||^2, and ``linear_assignment`` solves them in
  batches. With u the unit roundoff, a cost is off by at most (gamma_{G+2} + 4u)(||g|| + ||h||)^2 (the dot
  product's bound with sum |x_k y_k| <= (||g|| + ||h||)^2, the rounded norms and the rounded result), so a solved
  total is within S = (gamma_{G+2} + 4u) sum_i (||g_i(q)|| + max_j ||g_j(r)||)^2 of the pair's true optimum.
- **Row floor.** An assignment's total is at least the sum of every row's cheapest screened cost, so
  ``sum_i min_j C[i, j] + ||b2(q) - b2(r)||^2 - S`` is below the pair's true d^2 with no assignment solved. Per
  block, each query's pairs with the lowest floors are solved first; the other pairs are solved only if their
  floor can still beat the query's k-th best upper end. Where the sorted-norm bound prunes nothing (unrelated
  weights), this skips most assignments.
- **Exact ranking.** Every pair whose lower end can still beat its query's k-th best upper end is recomputed: costs
  by float64 direct differences, the assignment solved on those, and the k nearest taken from these exact values
  (ties to the lowest index). A near-duplicate (a permuted copy plus 1e-6 noise) therefore gets its true distance
  and the right neighbour, never a cancelled GEMM estimate.

Deeper MLPs and CNNs: ``method="weight_matching"`` aligns every (query, reference) pair with Git Re-Basin's weight
matching (``weight_matching.py``) and ranks the plain L2 distances after alignment. That is a heuristic: each
distance is an upper bound on the true aligned distance (any permutation gives one) and never above the unaligned
distance; for one-hidden-layer MLPs it equals the exact distance. No pruning applies, so it costs one coordinate
descent per pair.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from .. import _check
from ..layout import ParamLayout, ParamEntry
from ..ops.assign import linear_assignment
from . import _arguments
from .chain import ChainStructure
from .transforms import permute
from .weight_matching import weight_matching

# Query rows and reference rows per block: the float64 cross GEMM of a block is [Q * H, R * H].
_QUERY_BLOCK = 64
_REFERENCE_BLOCK = 256
# Relative margin that keeps the GEMM-computed lower bound below the true one (float64 rounding is ~1e-15 here).
_BOUND_MARGIN = 1e-9
# Pairs per query (beyond k) solved in a block before the row floors prune the rest: enough that the best of them
# is close to the query's nearest. Measured on 200 x 200 random 784-10-10 MLPs: it cuts the assignments solved from
# 65 % of the pairs (k alone) to 27 %.
_FIRST_PASS_EXTRA = 7
# Candidate pairs whose costs are recomputed by direct differences at once.
_EXACT_PAIRS = 4096
# Weight matching: pairs per block such that pairs x D float64 values (one aligned copy) stay near 32 MiB.
_MATCHED_VALUES = 1 << 22
_METHODS = ("exact", "weight_matching")


@dataclasses.dataclass(frozen=True)
class HiddenUnits:
    """Where a one-hidden-layer MLP's neuron groups sit in its flat layout.

    Attributes:
        w1, b1, w2, b2: the layout entries of the first weight [H, I], its bias [H] (or None), the second weight
            [O, H] and its bias [O] (or None).
        hidden: H.
    """

    w1: ParamEntry
    b1: ParamEntry | None
    w2: ParamEntry
    b2: ParamEntry | None

    @property
    def hidden(self) -> int:
        return self.w1.shape[0]

    @classmethod
    def of(cls, layout: ParamLayout) -> "HiddenUnits":
        """The hidden units of ``layout``.

        Raises:
            ValueError: the layout is not two Linear layers (weight [H, I], optional bias [H], weight [O, H],
                optional bias [O], in that order); the message lists its tensors.
        """
        if not isinstance(layout, ParamLayout):
            raise TypeError(f"layout must be a ParamLayout; got {type(layout).__name__}")
        entries = list(layout.entries)
        shapes = [(e.name, tuple(e.shape)) for e in entries]
        problem = ValueError(
            f"aligned distances need a one-hidden-layer MLP layout (Linear(I, H) -> activation -> Linear(H, O): "
            f"weight [H, I], optional bias [H], weight [O, H], optional bias [O]); got {shapes}. Deeper networks "
            "and CNNs: use aligned_nearest(..., method='weight_matching') (Git Re-Basin weight matching, a "
            "heuristic upper bound)")
        it = iter(entries)
        w1 = next(it, None)
        if w1 is None or len(w1.shape) != 2:
            raise problem
        b1 = entries[1] if len(entries) > 1 and tuple(entries[1].shape) == (w1.shape[0],) else None
        rest = entries[2:] if b1 is not None else entries[1:]
        if not rest or len(rest[0].shape) != 2 or rest[0].shape[1] != w1.shape[0]:
            raise problem
        w2 = rest[0]
        b2 = rest[1] if len(rest) == 2 and tuple(rest[1].shape) == (w2.shape[0],) else None
        if len(rest) != (2 if b2 is not None else 1):
            raise problem
        return cls(w1, b1, w2, b2)

    def groups(self, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(neuron groups [N, H, I + 1 + O] (I + O without b1), the permutation-invariant rest [N, O] or [N, 0])."""
        n, h = weights.shape[0], self.hidden
        parts = [_view(weights, self.w1)]
        if self.b1 is not None:
            parts.append(_view(weights, self.b1)[:, :, None])
        parts.append(_view(weights, self.w2).transpose(1, 2))
        rest = _view(weights, self.b2) if self.b2 is not None else weights.new_zeros(n, 0)
        return torch.cat(parts, dim=2).reshape(n, h, -1), rest


def aligned_distance(a: torch.Tensor, b: torch.Tensor, layout: ParamLayout) -> tuple[float, torch.Tensor]:
    """The aligned distance of two models and the permutation that attains it.

    Args:
        a, b: flat weights [D] (or [1, D]) in ``layout``.
        layout: a one-hidden-layer MLP layout (``HiddenUnits.of``).

    Returns:
        (distance, perm int64 [H]): ``symmetry.permute(b, layout, [perm])`` is ``b`` aligned to ``a``, and the
        plain L2 distance between ``a`` and that is ``distance``.
    """
    distances, _, perms = aligned_nearest(a.reshape(1, -1), b.reshape(1, -1), layout, k=1)
    return float(distances[0, 0]), perms[0, 0]


def aligned_nearest(query: torch.Tensor, reference: torch.Tensor, layout: ParamLayout, k: int = 1,
                    exclude_self: bool = False, *, method: str = "exact", template: nn.Module | None = None,
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | list[torch.Tensor]]:
    """The ``k`` reference models nearest to each query model after aligning hidden units (module docstring).

    Args:
        query: [N, D] float32/float64 flat weights in ``layout``.
        reference: [M, D], same dtype and device.
        layout: their layout.
        k: neighbours per query, 1 <= k <= M (M - 1 with ``exclude_self``).
        exclude_self: query and reference are the same set and query i never returns reference i (by index: an
            exact or permuted duplicate elsewhere still returns 0).
        method: "exact" (one-hidden-layer MLPs: the minimum over permutations, with pruning) or "weight_matching"
            (any chain of Linear / Conv2d layers, ``weight_matching.weight_matching`` per pair with its default
            iterations and seed: a heuristic, each distance an upper bound on the aligned distance and at most the
            plain L2 distance; equal to "exact" for one hidden layer).
        template: the network, for "weight_matching" on layouts with BatchNorm (as ``analyze``); "exact" reads
            the MLP from the layout and takes none.

    Returns:
        (distances [N, k] ascending, in the inputs' dtype; indices int64 [N, k], ties to the lowest index;
        perms). "exact": perms int64 [N, k, H]: reference ``indices[a, j]`` with its hidden units permuted by
        ``perms[a, j]`` (``symmetry.permute(reference[indices[a, j]], layout, [perms[a, j]])``: new unit i is old
        unit ``perms[a, j, i]``) is the copy closest to query a. "weight_matching": perms is a list with one int64
        [N, k, H_l] per hidden layer l, used the same way (``permute(reference[indices[a, j]], layout,
        [p[a, j] for p in perms])``), because the layers' widths differ.

    Raises:
        TypeError / ValueError: not [N, D] floating tensors of the layout's size, mismatched dtypes or devices, k
            out of range, non-finite weights, an unknown method; for "exact" a layout that is not a
            one-hidden-layer MLP (the message points to "weight_matching") or a template; for "weight_matching" a
            layout with no hidden layer or not a supported chain.
    """
    _check.choice("method", method, _METHODS)
    if method == "exact":
        units = HiddenUnits.of(layout)
        if template is not None:
            raise ValueError("template is used only by method='weight_matching'; method='exact' reads the "
                             "one-hidden-layer MLP from the layout, so pass template=None")
    else:
        if not isinstance(layout, ParamLayout):
            raise TypeError(f"layout must be a ParamLayout; got {type(layout).__name__}")
        chain = _arguments.structure(layout, template)
    query = _check.matrix("query", query)
    reference = _check.matrix("reference", reference, like=query, like_name="query")
    if query.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"query must be float32 or float64; got {query.dtype}")
    if query.shape[1] != layout.size:
        raise ValueError(f"query must be [N, {layout.size}] for this layout; got {tuple(query.shape)}")
    if exclude_self:
        _check.same_set(query, reference)
    k = _check.neighbour_count(k, reference.shape[0] - int(exclude_self), exclude_self)
    for name, x in (("query", query), ("reference", reference)):
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} holds NaN or Inf weights; aligned distances need finite ones")
    if method == "weight_matching":
        return _matched_nearest(query, reference, chain, k, exclude_self)

    q_groups, q_rest = (t.double() for t in units.groups(query))
    r_groups, r_rest = (t.double() for t in units.groups(reference))
    q_sq, r_sq = q_groups.square().sum(2), r_groups.square().sum(2)  # [N, H], [M, H]
    q_norms, r_norms = q_sq.sqrt(), r_sq.sqrt()
    q_sorted, r_sorted = q_norms.sort(dim=1).values, r_norms.sort(dim=1).values
    # The GEMM operands (module docstring, "Screening"), in the inputs' dtype.
    q_aug = torch.cat([q_groups, q_sq[..., None], torch.ones_like(q_sq)[..., None]], 2).to(query.dtype)
    r_aug = torch.cat([-2 * r_groups, torch.ones_like(r_sq)[..., None], r_sq[..., None]], 2).to(query.dtype)
    unit = 2.0 ** -24 if query.dtype == torch.float32 else 2.0 ** -53
    width = q_aug.shape[2]
    factor = width * unit / (1 - width * unit) + 4 * unit
    r_max = r_norms.max(1).values
    n, m = query.shape[0], reference.shape[0]
    kth_upper = torch.full((n, k), math.inf, dtype=torch.float64, device=query.device)  # k best upper ends
    candidates: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (query, reference, lower end)
    for q0 in range(0, n, _QUERY_BLOCK):
        qs = slice(q0, min(n, q0 + _QUERY_BLOCK))
        bound = _lower_bound(q_sorted[qs], r_sorted, q_rest[qs], r_rest)  # [Q, M] squared
        if exclude_self:
            bound[torch.arange(qs.stop - q0), torch.arange(q0, qs.stop)] = math.inf
        # Blocks of references, those with the smallest bounds for this query block first.
        order = bound.min(dim=0).values.argsort()
        for r0 in range(0, m, _REFERENCE_BLOCK):
            refs = order[r0:r0 + _REFERENCE_BLOCK]
            # Pairs that can still enter the top k (excluded pairs have an infinite bound).
            live = (bound[:, refs] <= kth_upper[qs, -1:]) & bound[:, refs].isfinite()
            if not live.any():
                continue
            qi, ri = live.nonzero(as_tuple=True)
            costs = _costs(q_aug[qs], r_aug[refs])[qi, ri]
            rest = (q_rest[qs][qi] - r_rest[refs][ri]).square().sum(1)
            slack = factor * (q_norms[qs][qi] + r_max[refs][ri][:, None]).square().sum(1)
            # Row floor (module docstring): every row of an assignment pays at least its cheapest cost.
            floor = costs.amin(2).double().sum(1) + rest - slack

            def solve(chosen: torch.Tensor) -> None:
                """Solves the chosen pairs' assignments: new upper ends for the k-th best, new candidates."""
                if not chosen.any():
                    return
                _, total = linear_assignment(costs[chosen])
                approx = total + rest[chosen]
                upper = torch.full(live.shape, math.inf, dtype=torch.float64, device=query.device)
                upper[qi[chosen], ri[chosen]] = approx + slack[chosen]
                kth_upper[qs] = torch.cat([kth_upper[qs], upper], 1).sort(dim=1).values[:, :k]
                candidates.append((qs.start + qi[chosen], refs[ri[chosen]], approx - slack[chosen]))

            # Each query's lowest floors first: their upper ends let the floors prune the other pairs.
            first = _lowest_per_row(qi, floor, k + _FIRST_PASS_EXTRA)
            solve(first)
            solve(~first & (floor <= kth_upper[qs.start + qi, -1]))
            candidates = [_still_possible(c, kth_upper[:, -1]) for c in candidates]
    cand_q, cand_r, _ = (torch.cat(parts) for parts in zip(*candidates))
    exact, perms = _exact(q_groups, q_rest, r_groups, r_rest, cand_q, cand_r)
    values, index, perm = _per_query(n, cand_q, exact, cand_r, perms)
    distances, index, perms = _top_k(values, index, perm, k)
    return distances.sqrt().to(query.dtype), index, perms


def _matched_nearest(query: torch.Tensor, reference: torch.Tensor, chain: ChainStructure, k: int,
                     exclude_self: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """``aligned_nearest`` with method="weight_matching" on validated inputs: every pair aligned, its distance by
    float64 direct differences, a running top k per block of queries (ties to the lowest index)."""
    n, m, device = query.shape[0], reference.shape[0], query.device
    pairs = max(1, _MATCHED_VALUES // chain.size)
    ref_block = min(m, pairs)
    query_block = max(1, pairs // ref_block)
    width = sum(chain.hidden)
    out_values, out_index, out_perms = [], [], []
    for q0 in range(0, n, query_block):
        queries = torch.arange(q0, min(n, q0 + query_block), device=device)
        # Running best: (inf, -1) slots sort last, so they leave as soon as k real candidates exist.
        values = torch.full((queries.shape[0], k), math.inf, dtype=torch.float64, device=device)
        index = torch.full((queries.shape[0], k), -1, dtype=torch.int64, device=device)
        perms = torch.zeros((queries.shape[0], k, width), dtype=torch.int64, device=device)
        for r0 in range(0, m, ref_block):
            refs = torch.arange(r0, min(m, r0 + ref_block), device=device)
            rows, cols = (t.reshape(-1) for t in torch.meshgrid(queries, refs, indexing="ij"))
            live = rows != cols if exclude_self else torch.ones_like(rows, dtype=torch.bool)
            if not live.any():
                continue
            found = weight_matching(query, reference, chain, pairs=(rows[live], cols[live]))
            aligned = permute(reference[cols[live]].double(), chain, found)
            block_values = torch.full(rows.shape, math.inf, dtype=torch.float64, device=device)
            block_values[live] = (query[rows[live]].double() - aligned).square().sum(1)
            block_perms = torch.zeros((rows.shape[0], width), dtype=torch.int64, device=device)
            block_perms[live] = torch.cat(found, 1)
            shape = (queries.shape[0], refs.shape[0])
            values, index, perms = _top_k(torch.cat([values, block_values.view(shape)], 1),
                                          torch.cat([index, torch.where(live, cols, -1).view(shape)], 1),
                                          torch.cat([perms, block_perms.view(*shape, width)], 1), k)
        out_values.append(values)
        out_index.append(index)
        out_perms.append(perms)
    perms = torch.cat(out_perms).split(list(chain.hidden), dim=2)
    return torch.cat(out_values).sqrt().to(query.dtype), torch.cat(out_index), [p.contiguous() for p in perms]


def _lowest_per_row(rows: torch.Tensor, values: torch.Tensor, k: int) -> torch.Tensor:
    """bool [P]: the k smallest ``values`` of every row id in ``rows`` (ties to the earlier position)."""
    order = values.argsort(stable=True)
    order = order[rows[order].argsort(stable=True)]  # by row, then by value
    ranked = rows[order]
    starts = torch.searchsorted(ranked, ranked, side="left")
    chosen = torch.zeros_like(rows, dtype=torch.bool)
    chosen[order] = torch.arange(rows.shape[0], device=rows.device) - starts < k
    return chosen


def _still_possible(candidates: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                    kth_upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The candidates whose lower end does not exceed their query's k-th best upper end."""
    rows, refs, lower = candidates
    keep = lower <= kth_upper[rows]
    return rows[keep], refs[keep], lower[keep]


def _exact(q_groups: torch.Tensor, q_rest: torch.Tensor, r_groups: torch.Tensor, r_rest: torch.Tensor,
           rows: torch.Tensor, refs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(exact squared aligned distances [P], permutations [P, H]) of the candidate pairs: costs by float64 direct
    differences, assignments solved on them."""
    totals, perms = [], []
    for part in torch.arange(rows.shape[0], device=rows.device).split(_EXACT_PAIRS):
        a, b = rows[part], refs[part]
        # torch.cdist without its GEMM path: coordinate differences, so no cancellation on near-duplicates.
        costs = torch.cdist(q_groups[a], r_groups[b], compute_mode="donot_use_mm_for_euclid_dist").square()
        perm, total = linear_assignment(costs)
        totals.append(total + (q_rest[a] - r_rest[b]).square().sum(1))
        perms.append(perm)
    return torch.cat(totals), torch.cat(perms)


def _per_query(n: int, rows: torch.Tensor, values: torch.Tensor, refs: torch.Tensor,
               perms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Candidates grouped by query into padded [n, C] arrays (padding: value inf, index -1)."""
    order = rows.argsort(stable=True)
    rows, values, refs, perms = rows[order], values[order], refs[order], perms[order]
    counts = torch.bincount(rows, minlength=n)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(rows.shape[0], device=rows.device) - starts[rows]
    width = int(counts.max())
    dense_values = torch.full((n, width), math.inf, dtype=values.dtype, device=values.device)
    dense_refs = torch.full((n, width), -1, dtype=torch.int64, device=values.device)
    dense_perms = torch.zeros((n, width, perms.shape[1]), dtype=torch.int64, device=values.device)
    dense_values[rows, slot], dense_refs[rows, slot], dense_perms[rows, slot] = values, refs, perms
    return dense_values, dense_refs, dense_perms


def _view(weights: torch.Tensor, entry: ParamEntry) -> torch.Tensor:
    return weights[:, entry.offset: entry.offset + entry.numel].reshape(weights.shape[0], *entry.shape)


def _lower_bound(q_sorted: torch.Tensor, r_sorted: torch.Tensor, q_rest: torch.Tensor,
                 r_rest: torch.Tensor) -> torch.Tensor:
    """LB^2 [Q, M] (module docstring), lowered by a margin relative to the terms it cancels."""
    left = torch.cat([q_sorted, q_rest], dim=1)
    right = torch.cat([r_sorted, r_rest], dim=1)
    scale = left.square().sum(1)[:, None] + right.square().sum(1)[None, :]
    estimate = scale - 2 * left @ right.T
    return (estimate - _BOUND_MARGIN * scale).clamp(min=0)


def _costs(q_aug: torch.Tensor, r_aug: torch.Tensor) -> torch.Tensor:
    """C[a, b, i, j] ~ ||g_i(q_a) - g_j(r_b)||^2 [Q, R, H, H] (a view) from one GEMM of the augmented groups."""
    qn, h, width = q_aug.shape
    rn = r_aug.shape[0]
    return (q_aug.reshape(qn * h, width) @ r_aug.reshape(rn * h, width).T).view(qn, h, rn, h).transpose(1, 2)


def _top_k(values: torch.Tensor, index: torch.Tensor, perms: torch.Tensor,
           k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row, the k smallest values, ties to the lowest index (empty slots: value inf, index -1, last)."""
    key = torch.where(index < 0, torch.iinfo(torch.int64).max, index)
    by_index = key.argsort(dim=1, stable=True)
    order = by_index.gather(1, values.gather(1, by_index).argsort(dim=1, stable=True))[:, :k]
    return values.gather(1, order), index.gather(1, order), perms.gather(1, order[:, :, None].expand(-1, -1,
                                                                                                   perms.shape[2]))
