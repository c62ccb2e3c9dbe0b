"""Hyper-Representations' augmentations of flat weights (study_spec §3.2, §2.9): additive Gaussian noise and random
erasing, batched over rows; the third, random function-preserving neuron permutations, is
``weightmem_fast.symmetry.permutation_index``.
"""
from __future__ import annotations

import torch


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
