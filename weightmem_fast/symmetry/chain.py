"""The chain of Linear / Conv2d layers behind a flat layout, as positions in the flat vector (issue 9,
study_spec §2.9): what ``analyze`` finds and ``permute`` / ``scale`` consume.

Every layer but the last is *hidden*: its output units (rows of its weight, entries of its bias and of any per-unit
tensor such as a BatchNorm's) can be permuted together with the matching input columns of the next layer. After a
flatten, each of a conv layer's channels owns ``in_block = H * W`` consecutive input columns of the next Linear
(channel-major order), so those move as blocks.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..layout import ParamEntry


@dataclass(frozen=True)
class ChainLayer:
    """One Linear / Conv2d layer of a chain, as positions in the flat vector.

    Attributes:
        name: the module prefix ("0" for "0.weight").
        weight: the weight entry [units, fan_in, *kernel].
        bias: the bias entry [units], or None (no bias; for the last layer also a bias outside the layout, which
            never moves).
        unit_tensors: further [units] entries that belong to this layer's output units (BatchNorm weight, bias,
            running_mean, running_var); they move with the units but are not scaled.
        in_block: input columns of this layer per unit of the previous layer (1 for Linear -> Linear and
            conv -> conv; H * W after a flatten of an H x W map); 1 for the first layer.
        scale_blocker: why scaling this layer's output units would change the function (an activation that is
            not positively homogeneous, a BatchNorm, an unknown activation), or None when scaling preserves it.
    """

    name: str
    weight: ParamEntry
    bias: ParamEntry | None
    unit_tensors: tuple[ParamEntry, ...]
    in_block: int
    scale_blocker: str | None

    @property
    def units(self) -> int:
        return self.weight.shape[0]

    @property
    def fan_in(self) -> int:
        return self.weight.shape[1]

    @property
    def kernel(self) -> int:
        """Weight entries per (unit, input column): the product of the kernel dims, 1 for Linear."""
        return self.weight.numel // (self.units * self.fan_in)


@dataclass(frozen=True)
class ChainStructure:
    """The layers of a chain in forward order, over a flat vector of ``size`` values.

    Attributes:
        size: D, the layout's length.
        layers: every Linear / Conv2d layer in forward order; all but the last are hidden.
    """

    size: int
    layers: tuple[ChainLayer, ...]

    @property
    def hidden(self) -> tuple[int, ...]:
        """H_k, the number of units of each hidden layer (empty when there is nothing to permute)."""
        return tuple(layer.units for layer in self.layers[:-1])

    def require_hidden(self) -> None:
        """Raises ValueError when the chain has no hidden layer (a single layer: its outputs are the network's)."""
        if not self.hidden:
            names = [layer.name for layer in self.layers]
            raise ValueError(f"layout has no hidden layer to permute or scale: its only Linear/Conv layer {names} "
                             "produces the network's outputs, whose order and scale the function depends on")
