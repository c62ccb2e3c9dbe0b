"""Function-preserving transforms of flat weights: neuron permutation and positive per-unit scaling, batched over
rows (issue 9, study_spec §2.3 item 6, §2.9).

Permutation: new unit u of hidden layer k takes old unit ``perms[k][u]``: the rows of layer k's weight, its bias
and per-unit (BatchNorm) tensors move, and so do the matching input columns of layer k + 1 (in blocks of H * W
after a conv's flatten). Any elementwise activation, per-channel pooling and BatchNorm commute with that, so the
network computes the same function. It is one gather over the flat vector with an index [N, D] built per call.

Scaling: unit u's incoming weights and bias are multiplied by f_u > 0 and layer k + 1's input weights from u are
divided by it. This preserves the function only through positively homogeneous activations (ReLU, LeakyReLU, none;
max-pooling commutes with it) and not through BatchNorm, so ``scale`` checks the template.
"""
from __future__ import annotations

import torch
from torch import nn

from ..layout import ParamEntry, ParamLayout
from . import _arguments
from .chain import ChainStructure


def permutation_index(layout: ParamLayout | ChainStructure, perms: list[torch.Tensor],
                      template: nn.Module | None = None) -> torch.Tensor:
    """The gather map that applies ``perms``: ``permuted = weights.gather(1, index)``.

    Args:
        layout: the flat layout (analysed with ``template``), or a ChainStructure from ``analyze``.
        perms: one int64 tensor [B, H_k] or [H_k] per hidden layer, each row a permutation of range(H_k); new unit
            u takes old unit ``perms[k][b, u]``. All 2-D tensors share B; 1-D ones are broadcast (B = 1 if all are).
        template: the network; optional for plain chains of Linear / Conv layers, needed with BatchNorm.

    Returns:
        int64 [B, D] on the perms' device; row b is a permutation of range(D).

    Raises:
        TypeError / ValueError: as ``permute``.
    """
    chain = _arguments.structure(layout, template)
    perms, rows = _arguments.permutations(perms, chain, None, None)
    return _index(chain, perms, rows)


def permute(weights: torch.Tensor, layout: ParamLayout | ChainStructure, perms: list[torch.Tensor],
            template: nn.Module | None = None) -> torch.Tensor:
    """Permutes the hidden units of every row of ``weights`` (function-preserving; study_spec §2.9).

    Args:
        weights: [N, D] floating flat weights in ``layout``.
        layout: the flat layout (analysed with ``template``), or a ChainStructure from ``analyze``.
        perms: one int64 tensor [N, H_k] (row n permutes model n) or [H_k] (all rows alike) per hidden layer, on the
            weights' device; new unit u takes old unit ``perms[k][n, u]``. Undo with ``perms[k].argsort(dim=-1)``.
        template: the network; optional for plain chains of Linear / Conv layers (read from the layout's module
            prefixes), needed with BatchNorm (whose tensors must then all be in the layout).

    Returns:
        [N, D], a new tensor of the weights' dtype and device; the same values, moved.

    Raises:
        TypeError: weights not a floating tensor, perms not a list of int64 tensors.
        ValueError: weights not [N, D]; a layout with no hidden layer; a template the layout does not match or
            that is not a supported chain; the wrong number of perms, a wrong shape or device, or a row that is not
            a permutation (duplicates or out-of-range units; the message gives the row).
    """
    chain = _arguments.structure(layout, template)
    weights = _arguments.weights(weights, chain)
    perms, rows = _arguments.permutations(perms, chain, weights.shape[0], weights.device)
    return weights.gather(1, _index(chain, perms, rows))


def scale(weights: torch.Tensor, layout: ParamLayout | ChainStructure, factors: list[torch.Tensor],
          template: nn.Module | None = None) -> torch.Tensor:
    """Scales every hidden unit by a positive factor, function-preserving through positively homogeneous
    activations (study_spec §2.9).

    Unit u of hidden layer k: its incoming weights and bias times ``factors[k][n, u]``, layer k + 1's input weights
    from u divided by it. Scaling by f then by 1 / f gives the weights back up to rounding.

    Args:
        weights: [N, D] floating flat weights in ``layout``.
        layout: the flat layout (analysed with ``template``), or a ChainStructure from ``analyze`` with one.
        factors: one floating tensor [N, H_k] or [H_k] per hidden layer of finite factors > 0, on the weights'
            device.
        template: the network, required: only it shows that every activation between layers is positively
            homogeneous (ReLU, LeakyReLU, none; pooling, Flatten and Dropout are fine) and that no BatchNorm follows
            a hidden layer.

    Returns:
        [N, D], a new tensor of the weights' dtype and device.

    Raises:
        TypeError: weights not a floating tensor, factors not a list of floating tensors.
        ValueError: no template; an activation that is not positively homogeneous (named) or a BatchNorm after a
            hidden layer; weights not [N, D]; a layout with no hidden layer; the wrong number of factor tensors,
            a wrong shape or device; a factor that is not finite and positive.
    """
    chain = _arguments.structure(layout, template)
    _arguments.scalable(chain)
    weights = _arguments.weights(weights, chain)
    rows = weights.shape[0]
    factors = _arguments.factors(factors, chain, rows, weights.device)
    out = weights.clone(memory_format=torch.contiguous_format)
    for layer, following, f in zip(chain.layers, chain.layers[1:], factors):
        _segment(out, layer.weight).view(rows, layer.units, -1).mul_(f[:, :, None])
        if layer.bias is not None:
            _segment(out, layer.bias).mul_(f)
        # The next layer's weight as [N, out, units, block * kernel]: a unit owns a block of input columns.
        _segment(out, following.weight).view(rows, following.units, layer.units, -1).div_(f[:, None, :, None])
    return out


def _segment(flat: torch.Tensor, entry: ParamEntry) -> torch.Tensor:
    """The columns of one tensor in [N, D] flat weights (a view)."""
    return flat[:, entry.offset : entry.offset + entry.numel]


def _index(chain: ChainStructure, perms: list[torch.Tensor], rows: int) -> torch.Tensor:
    """The gather map [rows, D] for validated perms [rows, H_k] (all on one device)."""
    device = perms[0].device
    index = torch.arange(chain.size, device=device).repeat(rows, 1)
    in_perms = [None] + perms  # layer l's inputs move with hidden layer l - 1's units; layer 0's never do
    for layer, out_perm, in_perm in zip(chain.layers, perms + [None], in_perms):
        units, fan_in, kernel = layer.units, layer.fan_in, layer.kernel
        out_rows = out_perm if out_perm is not None else torch.arange(units, device=device).expand(rows, units)
        if in_perm is None:
            in_cols = torch.arange(fan_in, device=device).expand(rows, fan_in)
        else:  # unit v owns input columns [v * block, (v + 1) * block)
            block = layer.in_block
            in_cols = (in_perm[:, :, None] * block + torch.arange(block, device=device)).reshape(rows, fan_in)
        # New entry (u, c, r) of the weight [units, fan_in, kernel] reads old entry (out_rows[u], in_cols[c], r).
        source = (out_rows[:, :, None, None] * fan_in + in_cols[:, None, :, None]) * kernel + \
            torch.arange(kernel, device=device)
        _segment(index, layer.weight).copy_(layer.weight.offset + source.reshape(rows, -1))
        if out_perm is not None:
            for entry in (layer.bias, *layer.unit_tensors):
                if entry is not None:
                    _segment(index, entry).copy_(entry.offset + out_perm)
    return index
