"""Hyper-Representations' augmentations of flat weights (study_spec §3.2, §2.9): random neuron permutations
(function-preserving), additive Gaussian noise and random erasing, all batched over rows.

A permutation is a gather map: ``permuted = flat.gather(1, index)`` with ``index`` int64 [B, D] from
``ChainPermuter.random_index`` (or ``ChainPermuter.index`` for given permutations). It permutes the output units of
every hidden layer of a feed-forward chain (Linear / Conv layers in layout order, each a weight [units, fan_in, ...]
plus an optional bias [units]) and the matching input columns of the next layer; when the next layer's fan-in is a
multiple of the units (a flatten after the last conv layer: the HR CNN's 4 channels x 3 x 3 map entering fc1), the
columns move in channel-major blocks. The last layer's outputs (the classes) are never permuted, so the network
computes the same function.
"""
from __future__ import annotations

import torch

from ..layout import ParamEntry, ParamLayout
from .tokenize import layer_groups


class ChainPermuter:
    """Draws function-preserving neuron permutations of a feed-forward chain layout.

    Args:
        layout: a chain of layers (tensors grouped by module prefix, in order), each a weight [units, fan_in, ...]
            and optionally a bias [units]; layer l + 1's fan-in must be a multiple of layer l's units.

    Raises:
        ValueError: the layout is not such a chain (the message names the offending layer); use a layout of
            Linear / Conv layers without BatchNorm or skip connections (e.g. the ``cnn`` or ``mlp`` zoo).
    """

    def __init__(self, layout: ParamLayout) -> None:
        layers = list(layer_groups(layout).items())
        self.size = layout.size
        self._rows: list[torch.Tensor] = []     # per layer: flat positions of each unit's row [units, row]
        self._columns: list[torch.Tensor] = []  # per layer: its weight's positions as [out, fan_in, rest]
        for name, entries in layers:
            weight, bias = _split_layer(name, entries)
            positions = _positions(weight).view(weight.shape[0], weight.shape[1], -1)
            rows = positions.flatten(1) if bias is None else torch.cat([positions.flatten(1),
                                                                        _positions(bias)[:, None]], 1)
            self._rows.append(rows)
            self._columns.append(positions)
        self.units = [rows.shape[0] for rows in self._rows]
        for l in range(len(layers) - 1):
            out, fan_in, _ = self._columns[l + 1].shape
            if fan_in % self.units[l]:
                raise ValueError(f"layer {layers[l + 1][0]!r} has fan-in {fan_in}, not a multiple of the "
                                 f"{self.units[l]} units of layer {layers[l][0]!r}; ChainPermuter needs a "
                                 "feed-forward chain of Linear / Conv layers")
            # The next layer's input columns as [out, units, block * rest]: a flatten is channel-major.
            self._columns[l + 1] = self._columns[l + 1].reshape(out, self.units[l], -1)

    def index(self, perms: list[torch.Tensor]) -> torch.Tensor:
        """The gather map [B, D] that applies ``perms``: one int64 [B, units_l] per hidden layer l (all layers but
        the last), each row a permutation of range(units_l); new unit o of layer l is old unit ``perms[l][b, o]``.

        Raises:
            ValueError: the wrong number of permutations or a wrong shape.
        """
        hidden = self.units[:-1]
        if not perms or len(perms) != len(hidden) or \
                any(p.dim() != 2 or p.shape != perms[0].shape[:1] + (u,) for p, u in zip(perms, hidden)):
            got = [tuple(p.shape) for p in perms]
            raise ValueError(f"perms must be {len(hidden)} int64 tensors [B, units] with units {hidden} and one B; "
                             f"got {got}")
        device = perms[0].device
        identity = torch.arange(self.size, device=device).expand(perms[0].shape[0], -1)
        index = identity
        for l, perm in enumerate(perms):
            rows, columns = self._rows[l].to(device), self._columns[l + 1].to(device)
            # One map per layer: its rows and the next layer's columns move together (disjoint positions). Maps of
            # different layers touch the same tensor on different axes, so they commute; compose by gathering.
            step = identity.clone()
            step[:, rows.flatten()] = rows[perm].flatten(1)
            step[:, columns.flatten()] = columns[:, perm].transpose(0, 1).flatten(1)
            index = index.gather(1, step)
        return index

    def random_index(self, batch: int, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> torch.Tensor:
        """The gather map [batch, D] of independent uniformly random permutations of every hidden layer."""
        if len(self.units) < 2:  # a single layer has no hidden units
            return torch.arange(self.size, device=device).expand(batch, -1).clone()
        perms = [torch.rand(batch, units, generator=generator, device=device).argsort(dim=1)
                 for units in self.units[:-1]]
        return self.index(perms)


def add_noise(flat: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``flat + sigma * N(0, 1)`` (a new tensor; ``sigma = 0`` returns ``flat`` unchanged)."""
    if sigma == 0:
        return flat
    return flat + sigma * torch.randn(flat.shape, generator=generator, device=flat.device, dtype=flat.dtype)


def random_erase(flat: torch.Tensor, p: float, scale: tuple[float, float], value: float = 0.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """HR's vector random erasing ("block" mode): with probability ``p`` per row, one contiguous block of
    ``int(D * U(scale))`` entries is set to ``value``. The start is uniform over the positions where the block
    fits (the original draws up to 10 starts anywhere and skips erasing when none fits).

    Args:
        flat: [B, D] values (not modified).
        p: probability that a row is erased.
        scale: (low, high) fraction of D to erase, 0 <= low <= high <= 1.

    Returns:
        [B, D], a new tensor.
    """
    batch, d = flat.shape
    kw = {"generator": generator, "device": flat.device}
    erase = torch.rand(batch, **kw) < p
    length = (d * (scale[0] + (scale[1] - scale[0]) * torch.rand(batch, **kw))).long().clamp(max=d)
    start = (torch.rand(batch, **kw) * (d - length + 1)).long()
    position = torch.arange(d, device=flat.device)
    mask = erase[:, None] & (position >= start[:, None]) & (position < (start + length)[:, None])
    return flat.masked_fill(mask, value)


def _split_layer(name: str, entries: list[ParamEntry]) -> tuple[ParamEntry, ParamEntry | None]:
    weights = [e for e in entries if len(e.shape) >= 2]
    biases = [e for e in entries if len(e.shape) == 1]
    if len(weights) != 1 or len(biases) > 1 or len(entries) != len(weights) + len(biases) or \
            (biases and biases[0].shape[0] != weights[0].shape[0]):
        shapes = {e.name: e.shape for e in entries}
        raise ValueError(f"layer {name!r} must be one weight [units, fan_in, ...] and at most one bias [units] for "
                         f"neuron permutations; got {shapes}")
    return weights[0], biases[0] if biases else None


def _positions(entry: ParamEntry) -> torch.Tensor:
    return torch.arange(entry.offset, entry.offset + entry.numel).view(entry.shape)
