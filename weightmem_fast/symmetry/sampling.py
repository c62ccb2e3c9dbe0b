"""Random valid transforms for a layout: uniformly random neuron permutations and log-uniform positive scale
factors, drawn from a seeded ``torch.Generator``, and ``permutation_augment``, a training set enlarged by randomly
permuted copies (issue 9, study_spec §2.9: the HR invariance experiment and HyperDiffusion's permutation
augmentation)."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..layout import ParamLayout
from . import _arguments
from .chain import ChainStructure
from .transforms import permute


def random_permutations(layout: ParamLayout | ChainStructure, n: int, *, template: nn.Module | None = None,
                        generator: torch.Generator | None = None,
                        device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """Independent uniformly random permutations of every hidden layer, one per row, for ``permute``.

    Args:
        layout: the flat layout (analysed with ``template``), or a ChainStructure from ``analyze``.
        n: rows N >= 1.
        template: the network, as for ``permute``.
        generator: the random source (seed it for reproducible draws; it must live on ``device``).
        device: where the permutations are made.

    Returns:
        one int64 [N, H_k] per hidden layer.

    Raises:
        TypeError / ValueError: ``n`` not a positive int; a layout with no hidden layer or not a supported chain.
    """
    chain = _arguments.structure(layout, template)
    n = _arguments.count("n", n)
    return [torch.rand(n, units, generator=generator, device=device).argsort(dim=1) for units in chain.hidden]


def random_scales(layout: ParamLayout | ChainStructure, n: int, *, template: nn.Module | None = None,
                  low: float = 0.5, high: float = 2.0, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """Independent per-unit scale factors, log-uniform in [low, high], for ``scale``.

    Log-uniform makes f and 1 / f equally likely when low = 1 / high (the default 0.5 .. 2).

    Args:
        layout: the flat layout (analysed with ``template``), or a ChainStructure from ``analyze`` with one.
        n: rows N >= 1.
        template: the network, required as for ``scale`` (it must allow scaling).
        low, high: the factor range, 0 < low <= high.
        generator: the random source (it must live on ``device``).
        device, dtype: of the factors.

    Returns:
        one floating [N, H_k] per hidden layer.

    Raises:
        TypeError / ValueError: ``n`` not a positive int, a bad range, or a chain that cannot be scaled (as
            ``scale``).
    """
    chain = _arguments.structure(layout, template)
    _arguments.scalable(chain)
    n = _arguments.count("n", n)
    low, high = _arguments.log_range(low, high)
    span = math.log(high) - math.log(low)
    return [torch.exp(math.log(low) + span * torch.rand(n, units, generator=generator, device=device, dtype=dtype))
            for units in chain.hidden]


def permutation_augment(weights: torch.Tensor, layout: ParamLayout, factor: int,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """The training set of the study's symmetry experiment (study_spec §2.9): ``weights`` followed by
    ``factor - 1`` copies of it, each row with its own random permutation of every hidden layer's neurons.

    Args:
        weights: float [N, D] flat MLP weights in ``layout``.
        layout: their layout (a chain of Linear layers: ``permute``).
        factor: the size multiplier, >= 1.
        generator: draws the permutations.

    Returns:
        [factor * N, D]: the original rows first, then the permuted copies; every row computes its original's
        function.
    """
    copies = [weights]
    for _ in range(factor - 1):
        perms = random_permutations(layout, weights.shape[0], generator=generator, device=weights.device)
        copies.append(permute(weights, layout, perms))
    return torch.cat(copies)
