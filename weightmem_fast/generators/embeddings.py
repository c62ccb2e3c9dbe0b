"""Sinusoidal embeddings of scalars (issue 7): diffusion timesteps (DDPM/ADM, P-diff's denoiser) and G.pt's scalar
conditions (timestep, losses).

Two frequency ladders, one core:
- ``sinusoidal_embedding`` (DDPM): ``dim // 2`` frequencies ``max_period ** (-i / (dim // 2))``, from 1 down to
  almost ``1 / max_period``; suits inputs spanning ``[0, max_period)`` such as timesteps 0..999.
- ``frequency_embedding`` (G.pt): ``num_frequencies`` frequencies ``2 ** linspace(0, max_log2, num_frequencies)``,
  from 1 up to ``2 ** max_log2``, plus the raw value; suits small inputs such as losses (G.pt: 128 frequencies,
  ``max_log2 = 14``, 257 values).
"""
from __future__ import annotations

import math

import torch


def sinusoidal_embedding(x: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """DDPM's embedding: ``[cos(x f_0), ..., cos(x f_{h-1}), sin(x f_0), ..., sin(x f_{h-1})]`` with
    ``h = dim // 2`` and ``f_i = max_period ** (-i / h)``; an odd ``dim`` ends with one zero.

    Args:
        x: [...] scalars (any real dtype; integer timesteps too).
        dim: embedding size, >= 2.
        max_period: the longest period is close to ``2 pi max_period``.

    Returns:
        [..., dim] float32 (float64 for float64 input), on ``x``'s device.

    Raises:
        ValueError: ``dim`` < 2 or ``max_period`` <= 1.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"dim must be an int >= 2; got {dim!r}")
    if not max_period > 1:
        raise ValueError(f"max_period must be > 1; got {max_period!r}")
    half = dim // 2
    dtype = _float_dtype(x)
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=dtype, device=x.device) / half)
    out = _cos_sin(x.to(dtype), freqs)
    return torch.nn.functional.pad(out, (0, dim % 2))


def frequency_embedding(x: torch.Tensor, num_frequencies: int = 128, max_log2: float = 14.0,
                        include_input: bool = True) -> torch.Tensor:
    """G.pt's embedding: ``[x, sin(x f_0), ..., sin(x f_{F-1}), cos(x f_0), ..., cos(x f_{F-1})]`` with
    ``f_i = 2 ** (max_log2 * i / (F - 1))`` (``f_0 = 1``; a single frequency is 1).

    Args:
        x: [...] scalars.
        num_frequencies: F >= 1.
        max_log2: log2 of the highest frequency, >= 0.
        include_input: start with the raw value.

    Returns:
        [..., 2 F + 1] (or [..., 2 F] without the input), float32 (float64 for float64 input).

    Raises:
        ValueError: ``num_frequencies`` < 1 or ``max_log2`` < 0.
    """
    if isinstance(num_frequencies, bool) or not isinstance(num_frequencies, int) or num_frequencies < 1:
        raise ValueError(f"num_frequencies must be a positive int; got {num_frequencies!r}")
    if not max_log2 >= 0:
        raise ValueError(f"max_log2 must be >= 0; got {max_log2!r}")
    dtype = _float_dtype(x)
    freqs = 2.0 ** torch.linspace(0.0, max_log2, num_frequencies, dtype=dtype, device=x.device)
    x = x.to(dtype)
    sin_cos = _cos_sin(x, freqs).roll(num_frequencies, dims=-1)  # [sin..., cos...]
    return torch.cat([x.unsqueeze(-1), sin_cos], dim=-1) if include_input else sin_cos


def _float_dtype(x: torch.Tensor) -> torch.dtype:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of scalars [...]; got {type(x).__name__}")
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _cos_sin(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """[..., 2 F]: cosines then sines of ``x * freqs``."""
    args = x.unsqueeze(-1) * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
