"""Invertible normalisations of flat weights, fitted on a zoo (issue 7).

- ``Standardizer``: ``(w - shift) / scale`` with one (shift, scale) per tensor or per layer, stored expanded to
  [D] so normalising is one fused op. P-diff standardises each tensor (``granularity="tensor"``,
  ``statistics="per_model"``: the mean over checkpoints of each checkpoint's tensor mean and unbiased std,
  study_spec §6.2). Hyper-Representations' layer-wise loss normalisation divides each layer's squared error by
  that layer's weight variance over the zoo: that is the MSE of ``Standardizer.fit(..., granularity="layer")``
  outputs.
- ``ScalarNormalizer``: ``w * factor`` for all parameters; G.pt's "openai" scaling uses factor 4.185 on the MNIST
  MLPs (study_spec §4.2); ``ScalarNormalizer.fit`` picks the factor that gives a zoo a chosen standard deviation.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
from torch import nn

from .. import _check
from ..layout import ParamLayout
from ..layout import layer_groups

# A group whose values are (nearly) constant over the zoo gets scale 1 rather than a division by ~0.
_MIN_SCALE = 1e-8


class Standardizer(nn.Module):
    """``normalize(w) = (w - shift) / scale`` elementwise, with ``shift`` and ``scale`` [D] constant within each
    group (tensor or layer) of the layout; ``denormalize`` inverts it.

    Construct with ``Standardizer.fit``, or directly from saved buffers: ``Standardizer(shift, scale)``. The two
    buffers are its state_dict (persistent), so a generator's state tensors can include them.

    Args:
        shift: float32 [D].
        scale: float32 [D], all > 0.

    Raises:
        ValueError: shapes differ or a scale is not positive and finite.
    """

    def __init__(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        if shift.dim() != 1 or shift.shape != scale.shape:
            raise ValueError(f"shift and scale must both be [D]; got {tuple(shift.shape)} and {tuple(scale.shape)}")
        if not bool(torch.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("scale must be finite and > 0 everywhere")
        self.register_buffer("shift", shift.detach().float().clone())
        self.register_buffer("scale", scale.detach().float().clone())

    @classmethod
    def fit(cls, weights: torch.Tensor, layout: ParamLayout,
            granularity: Literal["tensor", "layer"] = "tensor",
            statistics: Literal["pooled", "per_model"] = "pooled") -> "Standardizer":
        """Fits one (shift, scale) per group on a zoo's weights.

        Args:
            weights: [N, D] the zoo (``zoo.weights``).
            layout: its layout (``zoo.layout``).
            granularity: "tensor" (each layout tensor) or "layer" (the tensors sharing a module prefix, e.g.
                "0.weight" and "0.bias").
            statistics: "pooled": mean and std (unbiased) of all N x |group| values; "per_model" (P-diff): shift =
                the same mean, scale = the mean over the N rows of each row's unbiased std over the group. A
                group of one value uses the pooled std over rows; a std below 1e-8 becomes 1.

        Returns:
            A Standardizer on ``weights``' device.

        Raises:
            ValueError: ``weights`` is not [N, layout.size], or an unknown option.
        """
        weights = _check.matrix("weights", weights)
        if weights.shape[1] != layout.size:
            raise ValueError(f"weights must be [N, {layout.size}] for this layout; got {tuple(weights.shape)}")
        _check.choice("granularity", granularity, ("tensor", "layer"))
        _check.choice("statistics", statistics, ("pooled", "per_model"))
        shift = torch.empty(layout.size, dtype=torch.float64, device=weights.device)
        scale = torch.empty_like(shift)
        for columns in _groups(layout, granularity):
            values = weights[:, columns].double()
            shift[columns] = values.mean()
            if statistics == "per_model" and values.shape[1] > 1:
                std = values.std(dim=1).mean()
            else:
                std = values.flatten().std() if values.numel() > 1 else values.new_tensor(0.0)
            scale[columns] = std if std > _MIN_SCALE else 1.0
        return cls(shift, scale)

    def normalize(self, flat: torch.Tensor) -> torch.Tensor:
        """[B, D] weights -> [B, D] standardised values."""
        return (flat - self.shift) / self.scale

    def denormalize(self, normalized: torch.Tensor) -> torch.Tensor:
        """[B, D] standardised values -> [B, D] weights (the inverse of ``normalize``)."""
        return normalized * self.scale + self.shift


@dataclasses.dataclass(frozen=True)
class ScalarNormalizer:
    """``normalize(w) = w * factor``; ``denormalize(x) = x / factor``. The factor is a float, so a generator keeps
    it in its JSON state (``dataclasses.asdict``) or config.

    Raises:
        ValueError: ``factor`` is not finite and > 0.
    """

    factor: float

    def __post_init__(self) -> None:
        if isinstance(self.factor, bool) or not isinstance(self.factor, (int, float)) or \
                not (math.isfinite(self.factor) and self.factor > 0):
            raise ValueError(f"factor must be a finite number > 0; got {self.factor!r}")

    @classmethod
    def fit(cls, weights: torch.Tensor, target_std: float = 1.0) -> "ScalarNormalizer":
        """The factor that gives the normalised zoo ``target_std``: ``target_std / std(all values of weights)``.

        Raises:
            ValueError: fewer than 2 values, or all values equal.
        """
        weights = _check.matrix("weights", weights)
        std = float(weights.double().std()) if weights.numel() > 1 else 0.0
        if not std > 0:
            raise ValueError(f"weights must have values with a non-zero spread to fit a scale; got std {std}")
        return cls(target_std / std)

    def normalize(self, flat: torch.Tensor) -> torch.Tensor:
        return flat * self.factor

    def denormalize(self, normalized: torch.Tensor) -> torch.Tensor:
        return normalized / self.factor


def _groups(layout: ParamLayout, granularity: str) -> list[torch.Tensor]:
    """Flat column indices of each group, in layout order."""
    groups = [[entry] for entry in layout.entries] if granularity == "tensor" else layer_groups(layout).values()
    return [torch.cat([torch.arange(e.offset, e.offset + e.numel) for e in entries]) for entries in groups]

