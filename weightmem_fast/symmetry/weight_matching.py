"""Weight matching (Git Re-Basin: Ainsworth, Hayase and Srinivasa 2023, §3.2 and Algorithm 1): aligning the hidden
units of deeper MLPs and CNNs, batched over pairs of models (issue 9, study_spec §2.3).

Aligning a reference r to a query q means finding permutations P_k of every hidden layer that minimise
||q - P(r)||. Norms do not change under permutation, so that is the same as maximising the inner product
<q, P(r)>, a sum of one term per layer weight. With every permutation but P_k fixed, the terms that depend on P_k are
the inner products of the weights touching layer k's units: for unit u of q and unit v of r,

    S_k[u, v] = <incoming_u(q), incoming_v(r)> + <outgoing_u(q), outgoing_v(r)>,

incoming = the unit's row of W_k (its input columns under P_{k-1}), its bias and per-unit (BatchNorm) tensors;
outgoing = its column of W_{k+1} (a block of H * W columns after a conv's flatten; rows under P_{k+1}). The best
P_k is the linear assignment maximising sum_u S_k[u, P_k(u)]. Coordinate descent solves these one layer at a time,
in a seeded random order per sweep, until no layer improves.

Contract:
- Upper bound. Descent starts from the identity and accepts a layer's new permutation only when it raises the
  inner product by more than ``_ACCEPT`` times its Cauchy-Schwarz scale (a gain that float64 rounding cannot
  fake), so every accepted step strictly lowers the distance: ||q - P(r)|| <= ||q - r||, and, as for any
  permutation, >= the true aligned distance. It is a heuristic (a local optimum), not the minimum.
- Exact for one hidden layer: S_0 then depends on no other permutation, so one assignment solves it, with the same
  argmin as the exact method's costs ||g_u(q) - g_v(r)||^2 = ||g_u(q)||^2 + ||g_v(r)||^2 - 2 S_0[u, v].
- Per pair. A layer is re-solved only when a neighbouring layer's permutation changed since its last solve (else
  the assignment would be the same), so a pair stops at a fixed point, and its result depends only on the pair,
  ``iterations`` and ``seed``, not on the other pairs in the batch.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import _check
from ..layout import ParamEntry, ParamLayout
from ..ops.assign import linear_assignment
from . import _arguments
from .chain import ChainStructure

# A step must gain more than this times ||features(q)|| ||features(r)|| (which bounds the inner products it
# compares); float64 rounding of those sums is ~1e-16 relative, so smaller gains may be noise and are refused.
_ACCEPT = 1e-12


def weight_matching(query: torch.Tensor, reference: torch.Tensor, layout: ParamLayout | ChainStructure,
                    template: nn.Module | None = None, *,
                    pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
                    iterations: int = 100, seed: int = 0) -> list[torch.Tensor]:
    """Permutations of the hidden units that align each reference model to its query model (module docstring).

    Args:
        query: [N, D] floating flat weights in ``layout``.
        reference: [M, D], same dtype and device. Without ``pairs``, M == N and row n is paired with query row n.
        layout: the flat layout (analysed with ``template``), or a ChainStructure from ``analyze``; it needs at least
            one hidden layer.
        template: the network; optional for plain chains of Linear / Conv layers, needed with BatchNorm.
        pairs: optional (query rows, reference rows), two int64 tensors [P] on the weights' device: pair p aligns
            ``reference[pairs[1][p]]`` to ``query[pairs[0][p]]`` (no rows are copied for repeated models).
        iterations: most sweeps over the hidden layers, >= 1 (Git Re-Basin's default, 100, is rarely reached).
        seed: seeds the random layer order of each sweep; equal seeds give equal results.

    Returns:
        One int64 tensor [P, H_k] per hidden layer (P = N without ``pairs``), on the weights' device:
        ``symmetry.permute(reference rows, layout, perms)`` (new unit u takes old unit ``perms[k][p, u]``) is the
        aligned reference, at plain L2 distance <= the unaligned one from its query.

    Raises:
        TypeError / ValueError: weights not [rows, D] floating tensors of the layout's size with one dtype and
            device, non-finite weights; a layout with no hidden layer or not a supported chain; pairs that are not
            two int64 [P] tensors of in-range rows; rows differing without pairs; iterations < 1; seed not an int.
    """
    chain = _arguments.structure(layout, template)
    query = _check.matrix("query", query)
    reference = _check.matrix("reference", reference, like=query, like_name="query")
    if query.shape[1] != chain.size:
        raise ValueError(f"query must be [N, {chain.size}] for this layout; got {tuple(query.shape)}")
    for name, x in (("query", query), ("reference", reference)):
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} holds NaN or Inf weights; weight matching needs finite ones")
    rows, refs = _pairing(pairs, query, reference)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an int >= 1 (sweeps over the hidden layers); got {iterations!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int; got {type(seed).__name__}")

    count, layers, device = rows.shape[0], len(chain.hidden), query.device
    perms = [torch.arange(units, device=device).repeat(count, 1) for units in chain.hidden]
    # stale[p, k]: layer k's assignment for pair p may have changed since it was last solved.
    stale = torch.ones(count, layers, dtype=torch.bool, device=device)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(iterations):
        if not stale.any():
            break
        for k in torch.randperm(layers, generator=generator).tolist():
            todo = stale[:, k].nonzero().squeeze(1)
            if todo.numel() == 0:
                continue
            stale[todo, k] = False
            similarity, scale = _similarity(chain, k, query, reference, rows[todo], refs[todo], perms, todo)
            found, _ = linear_assignment(-similarity)
            current = perms[k][todo]
            gain = similarity.gather(2, found[:, :, None]).sum((1, 2)) - \
                similarity.gather(2, current[:, :, None]).sum((1, 2))
            better = gain > _ACCEPT * scale
            moved = todo[better]
            perms[k][moved] = found[better]
            for neighbour in (k - 1, k + 1):
                if 0 <= neighbour < layers:
                    stale[moved, neighbour] = True
    return perms


def _pairing(pairs: object, query: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(query rows [P], reference rows [P]) int64, checked against the row counts."""
    n, m = query.shape[0], reference.shape[0]
    if pairs is None:
        if n != m:
            raise ValueError(f"query and reference must have the same number of rows when pairs is None (row n is "
                             f"aligned to row n); got {n} and {m}; pass pairs=(query_rows, reference_rows) otherwise")
        index = torch.arange(n, device=query.device)
        return index, index
    if not isinstance(pairs, (tuple, list)) or len(pairs) != 2 or \
            not all(isinstance(p, torch.Tensor) for p in pairs):
        raise TypeError(f"pairs must be a tuple (query_rows, reference_rows) of two int64 tensors [P]; got "
                        f"{type(pairs).__name__}")
    for name, index, size in (("pairs[0]", pairs[0], n), ("pairs[1]", pairs[1], m)):
        if index.dtype != torch.int64:
            raise TypeError(f"{name} must be an int64 tensor of row indices; got {index.dtype}")
        if index.dim() != 1 or index.shape != pairs[0].shape:
            raise ValueError(f"pairs[0] and pairs[1] must be 1-D tensors of one length P; got shapes "
                             f"{tuple(pairs[0].shape)} and {tuple(pairs[1].shape)}")
        if index.device != query.device:
            raise ValueError(f"{name} must be on {query.device} (with the weights); got {index.device}")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= size):
            raise ValueError(f"{name} must hold row indices in [0, {size}); got values from {int(index.min())} "
                             f"to {int(index.max())}")
    return pairs[0], pairs[1]


def _rows(weights: torch.Tensor, rows: torch.Tensor, entry: ParamEntry) -> torch.Tensor:
    """One tensor of the given rows, float64 [P, numel] (only that segment is copied)."""
    return weights[:, entry.offset: entry.offset + entry.numel][rows].double()


def _similarity(chain: ChainStructure, k: int, query: torch.Tensor, reference: torch.Tensor, rows: torch.Tensor,
                refs: torch.Tensor, perms: list[torch.Tensor],
                todo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(S_k [P, H_k, H_k] float64 (module docstring), ||features(q)|| ||features(r)|| [P]) for the pairs ``todo``,
    under the current permutations of layers k - 1 and k + 1."""
    layer, following = chain.layers[k], chain.layers[k + 1]
    count, units = rows.shape[0], layer.units
    q_in = [_rows(query, rows, layer.weight).view(count, units, -1)]
    r_weight = _rows(reference, refs, layer.weight)
    if k > 0:  # input columns of r move in blocks with the previous layer's current permutation
        before = perms[k - 1][todo]
        r_weight = r_weight.view(count, units, before.shape[1], -1)
        r_weight = r_weight.gather(2, before[:, None, :, None].expand_as(r_weight))
    r_in = [r_weight.reshape(count, units, -1)]
    for entry in (layer.bias, *layer.unit_tensors):
        if entry is not None:
            q_in.append(_rows(query, rows, entry)[:, :, None])
            r_in.append(_rows(reference, refs, entry)[:, :, None])
    # W_{k+1} as [P, out units, H_k, columns per unit * kernel]; rows of r move with layer k + 1's permutation.
    q_out = _rows(query, rows, following.weight).view(count, following.units, units, -1)
    r_out = _rows(reference, refs, following.weight).view(count, following.units, units, -1)
    if k + 1 < len(perms):
        after = perms[k + 1][todo]
        r_out = r_out.gather(1, after[:, :, None, None].expand_as(r_out))
    q_features = torch.cat(q_in + [q_out.transpose(1, 2).reshape(count, units, -1)], 2)
    r_features = torch.cat(r_in + [r_out.transpose(1, 2).reshape(count, units, -1)], 2)
    scale = q_features.flatten(1).norm(dim=1) * r_features.flatten(1).norm(dim=1)
    return torch.bmm(q_features, r_features.transpose(1, 2)), scale
