"""Hyper-Representations' latent sampler (study_spec §3.2, §9 items 20-21): keep the best training models, fit a
1-D Gaussian KDE per latent dimension, draw.
"""
from __future__ import annotations

import torch


def top_quantile_rows(scores: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """Indices (ascending) of the rows whose score is >= the ``q``-quantile of ``scores`` (torch.quantile's linear
    interpolation, as the study's ``sample.py``); q = 0.7 keeps the top 30 %.

    Args:
        scores: [N] (e.g. test accuracies), N >= 1.
        q: in [0, 1].

    Raises:
        ValueError: ``scores`` is not a non-empty 1-D tensor, or ``q`` is outside [0, 1].
    """
    if scores.dim() != 1 or scores.numel() == 0:
        raise ValueError(f"scores must be a non-empty 1-D tensor [N]; got shape {tuple(scores.shape)}")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1]; got {q!r}")
    threshold = torch.quantile(scores.double(), q)
    return torch.nonzero(scores.double() >= threshold).flatten()


def kde_sample_per_dim(latents: torch.Tensor, n: int, bandwidth: float, generator: torch.Generator,
                       coupled: bool = False) -> torch.Tensor:
    """Draws ``n`` latents from per-dimension 1-D Gaussian KDEs of ``latents`` (kernel std ``bandwidth``).

    A draw from a 1-D Gaussian KDE is a uniformly chosen data point plus ``bandwidth * N(0, 1)``.
    ``coupled=False`` (the published method) draws each dimension independently: sample s, dimension d is
    ``latents[i_sd, d] + bandwidth * e_sd``. ``coupled=True`` reproduces the study's sklearn loop, which reseeds
    the sampler with the same ``random_state`` for every dimension, so all dimensions reuse one row and one normal
    draw: sample s is ``latents[i_s] + bandwidth * e_s`` for the whole vector, a copy of a training latent shifted
    by one constant in every coordinate (study_spec §3.2, §11).

    Args:
        latents: [N, L] the fitted points.
        n: samples to draw.
        bandwidth: kernel standard deviation, >= 0.
        generator: draws everything (its device is used).
        coupled: reproduce the study's sampling quirk.

    Returns:
        [n, L] in ``latents``' dtype and device.

    Raises:
        ValueError: ``latents`` is not [N, L] with N >= 1, or ``bandwidth`` < 0.
    """
    if latents.dim() != 2 or latents.shape[0] == 0:
        raise ValueError(f"latents must be [N, L] with N >= 1; got shape {tuple(latents.shape)}")
    if not bandwidth >= 0:
        raise ValueError(f"bandwidth must be >= 0; got {bandwidth!r}")
    count, dims = latents.shape
    shape = (n, 1) if coupled else (n, dims)
    rows = torch.randint(count, shape, generator=generator, device=latents.device)
    noise = torch.randn(shape, generator=generator, device=latents.device, dtype=latents.dtype)
    picked = latents.gather(0, rows.expand(n, dims))
    return picked + bandwidth * noise
