"""Hyper-Representations' random erasing of flat weights (study_spec §3.2), batched over rows. HR's other two
augmentations are shared with the other generators: additive Gaussian noise is ``training.add_noise`` and random
function-preserving neuron permutations are ``weightmem_fast.symmetry.permutation_index``.
"""
from __future__ import annotations

import torch


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
