"""HyperDiffusion's occupancy network and the batched evaluation of many of them (issue 6; study_spec §1.1, §9
item 13).

The network maps a point p in [-0.5, 0.5]^3 to an occupancy logit (inside where the logit is positive). p first goes
through NeRF's positional encoding with F frequencies 2^0 .. 2^(F-1) (HyperDiffusion's ``Embedder``, no pi factor):

    [p, sin(2^0 p), cos(2^0 p), sin(2^1 p), cos(2^1 p), ..., sin(2^(F-1) p), cos(2^(F-1) p)]

each term a block of 3 coordinates, 3 + 6F features in all (27 for the study's F = 4). Then Linear layers with ReLU
between them: (3 + 6F) -> hidden -> ... -> hidden -> 1, ``layers`` hidden layers. The study's network (F = 4, hidden
128, layers 3) has 36,737 parameters; the default here (hidden 64) has 10,177, so a zoo trains on 2 cores.
"""
from __future__ import annotations

import torch
from torch import nn

from ..layout import ParamLayout
from ..ops.eval import _stacked_logits

# Hidden activations (models x points x hidden) held at once by occupancy_logits.
_CHUNK_ELEMENTS = 1 << 24


class PositionalEncoding(nn.Module):
    """NeRF's encoding of [..., 3] points into [..., 3 + 6F] features (module docstring); no parameters."""

    def __init__(self, frequencies: int = 4) -> None:
        super().__init__()
        if isinstance(frequencies, bool) or not isinstance(frequencies, int) or frequencies < 0:
            raise ValueError(f"frequencies must be an int >= 0; got {frequencies!r}")
        self.frequencies = frequencies

    @property
    def features(self) -> int:
        return 3 + 6 * self.frequencies

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        terms = [points]
        for k in range(self.frequencies):
            scaled = points * (2.0 ** k)
            terms += [torch.sin(scaled), torch.cos(scaled)]
        return torch.cat(terms, dim=-1)


class OccupancyMLP(nn.Module):
    """The occupancy network of HyperDiffusion (module docstring).

    Its parameters are those of ``net``, an ``nn.Sequential`` of Linear and ReLU modules, so
    ``ParamLayout.from_module(model)`` lists ``net.0.weight, net.0.bias, net.2.weight, ...`` in the study's order
    (study_spec §1.1: L0.W, L0.b, L1.W, ...).

    Args:
        frequencies: F, the encoding's frequencies 2^0 .. 2^(F-1) (4 in the study).
        hidden: width of every hidden layer (128 in the study; 64 by default to train zoos on a CPU).
        layers: number of hidden layers (3 in the study).

    Raises:
        ValueError: a negative frequency count or a non-positive width or layer count.
    """

    def __init__(self, frequencies: int = 4, hidden: int = 64, layers: int = 3) -> None:
        super().__init__()
        for name, value in (("hidden", hidden), ("layers", layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        self.encoding = PositionalEncoding(frequencies)
        widths = [self.encoding.features] + [hidden] * layers
        modules: list[nn.Module] = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            modules += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        modules.append(nn.Linear(hidden, 1))
        self.net = nn.Sequential(*modules)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Occupancy logits [...] of points [..., 3]."""
        return self.net(self.encoding(points)).squeeze(-1)

    def options(self) -> dict[str, int]:
        """The constructor's arguments: ``OccupancyMLP(**model.options())`` has this architecture."""
        return {"frequencies": self.encoding.frequencies, "hidden": self.net[0].out_features,
                "layers": len(self.net) // 2}

    @classmethod
    def from_layout(cls, layout: ParamLayout) -> "OccupancyMLP":
        """The (untrained) network whose ``ParamLayout.from_module`` is ``layout``.

        Raises:
            ValueError: ``layout`` is not an OccupancyMLP layout (the message shows what was expected).
        """
        if not isinstance(layout, ParamLayout):
            raise TypeError(f"layout must be a ParamLayout; got {type(layout).__name__}")
        first = layout.entries[0]
        options = None
        if first.name == "net.0.weight" and len(first.shape) == 2 and (first.shape[1] - 3) % 6 == 0:
            options = {"frequencies": (first.shape[1] - 3) // 6, "hidden": first.shape[0],
                       "layers": len(layout.entries) // 2 - 1}
        if options is None or options["layers"] < 1 or ParamLayout.from_module(cls(**options)) != layout:
            raise ValueError(f"layout is not that of an OccupancyMLP (tensors net.0.weight [hidden, 3 + 6F], "
                             f"net.0.bias, net.2.weight, ..., last [1, hidden] and [1]); got {layout.names} with "
                             f"shapes {[e.shape for e in layout.entries]}")
        return cls(**options)


def occupancy_logits(weights: torch.Tensor, layout: ParamLayout, points: torch.Tensor) -> torch.Tensor:
    """Occupancy logits of N networks at P shared points (study_spec §9 item 13), without autograd.

    The points are encoded once; the first layer of every model is one GEMM against the shared encoding and later
    layers are batched GEMMs (``weightmem_fast.evaluate``'s Linear-stack path), chunked over models and points so
    about 16M hidden activations are held at once.

    Args:
        weights: [N, D] float32 flat weights in ``layout`` (N may be 0).
        layout: an OccupancyMLP layout (``ParamLayout.from_module(OccupancyMLP(...))``).
        points: [P, 3] float32 points on the weights' device.

    Returns:
        [N, P] float32 logits. Models with NaN/Inf weights give NaN/Inf logits, not an error.

    Raises:
        TypeError / ValueError: weights not [N, layout.size] float32, points not [P, 3] float32 on that device,
            a layout that is not an OccupancyMLP's.
    """
    template = OccupancyMLP.from_layout(layout)
    weights = check_weights(weights, layout)
    template = template.to(weights.device)
    if not isinstance(points, torch.Tensor) or points.dim() != 2 or points.shape[1] != 3:
        got = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"points must be a tensor [P, 3]; got {got}")
    if points.dtype != torch.float32 or points.device != weights.device:
        raise ValueError(f"points must be float32 on the weights' device {weights.device}; got {points.dtype} on "
                         f"{points.device}")
    hidden = template.options()["hidden"]
    models = max(1, min(weights.shape[0], _CHUNK_ELEMENTS // (hidden * max(1, points.shape[0]))))
    span = max(1, _CHUNK_ELEMENTS // (hidden * models))
    out = torch.empty(weights.shape[0], points.shape[0], dtype=torch.float32, device=weights.device)
    layers = list(template.net)
    with torch.no_grad():
        for start in range(0, points.shape[0], span):
            encoded = template.encoding(points[start : start + span])
            for first in range(0, weights.shape[0], models):
                block = weights[first : first + models]
                out[first : first + models, start : start + span] = _stacked_logits(
                    layers, layout, block, encoded, template).squeeze(-1)
    return out


def check_weights(weights: object, layout: ParamLayout, name: str = "weights") -> torch.Tensor:
    """``weights`` if it is a float32 tensor [N, layout.size] (N may be 0), else TypeError / ValueError naming
    ``name``."""
    if not isinstance(weights, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [N, {layout.size}]; got {type(weights).__name__}")
    if weights.dim() != 2 or weights.shape[1] != layout.size:
        raise ValueError(f"{name} must be [N, {layout.size}] (one flat OccupancyMLP per row, D = layout.size); got "
                         f"shape {tuple(weights.shape)}")
    if weights.dtype != torch.float32:
        raise TypeError(f"{name} must be float32; got {weights.dtype}; convert with {name}.float()")
    return weights
