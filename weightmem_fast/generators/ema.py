"""Exponential moving average of a module's parameters (issue 7; G.pt samples with EMA weights, decay 0.9999).

    ema = EMA(model, decay=0.999)
    ...after every optimiser step: ema.update()      (train_loop does this when given ema=)
    with ema.applied():                              # the module holds the averaged weights inside the block
        samples = diffusion.ddpm_sample(model, ...)

Only floating-point parameters are averaged; buffers (BatchNorm statistics) are the live module's.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import torch
from torch import nn


class EMA:
    """Shadow copies ``s`` of a module's floating parameters ``p``, updated as ``s <- decay * s + (1 - decay) * p``.

    With ``warmup=True`` update k (1-based) uses ``min(decay, (1 + k) / (10 + k))`` instead, so that short runs
    (demo configs) are not dominated by the initial weights.

    Args:
        module: the trained module; the shadow starts as a copy of its parameters.
        decay: in [0, 1); 0 makes the shadow a copy of the last weights.
        warmup: use the warm-up rule above.

    Raises:
        ValueError: ``decay`` outside [0, 1).
    """

    def __init__(self, module: nn.Module, decay: float = 0.9999, warmup: bool = False) -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
            raise ValueError(f"decay must be a number in [0, 1); got {decay!r}")
        self.module, self.decay, self.warmup = module, float(decay), warmup
        self.updates = 0
        self.shadow = {name: p.detach().clone() for name, p in self._params()}

    def _params(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((name, p) for name, p in self.module.named_parameters() if p.is_floating_point())

    def current_decay(self) -> float:
        """The decay the next ``update`` uses."""
        if not self.warmup:
            return self.decay
        k = self.updates + 1
        return min(self.decay, (1 + k) / (10 + k))

    @torch.no_grad()
    def update(self) -> None:
        """Moves the shadow towards the module's current parameters."""
        weight = 1.0 - self.current_decay()
        for name, p in self._params():
            self.shadow[name].lerp_(p.detach(), weight)
        self.updates += 1

    @contextlib.contextmanager
    def applied(self) -> Iterator[nn.Module]:
        """Inside the block the module holds the averaged parameters; its own are restored on exit (also after an
        exception). Yields the module."""
        saved = {name: p.detach().clone() for name, p in self._params()}
        self.copy_to(self.module)
        try:
            yield self.module
        finally:
            self._load(self.module, saved)

    def copy_to(self, module: nn.Module) -> None:
        """Writes the averaged parameters into ``module`` (the tracked one, or another of the same structure)."""
        self._load(module, self.shadow)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The shadow parameters by name (for safetensors; the count of updates is ``self.updates``)."""
        return dict(self.shadow)

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Replaces the shadow by ``state`` (from ``state_dict``).

        Raises:
            ValueError: the names or shapes differ from the module's parameters.
        """
        if set(state) != set(self.shadow):
            raise ValueError(f"EMA state has parameters {sorted(state)}; the module has {sorted(self.shadow)}")
        for name, tensor in state.items():
            if tensor.shape != self.shadow[name].shape:
                raise ValueError(f"EMA state {name!r} has shape {tuple(tensor.shape)}; the module's is "
                                 f"{tuple(self.shadow[name].shape)}")
            self.shadow[name] = tensor.detach().to(self.shadow[name]).clone()

    @staticmethod
    @torch.no_grad()
    def _load(module: nn.Module, values: Mapping[str, torch.Tensor]) -> None:
        params = dict(module.named_parameters())
        missing = sorted(set(values) - set(params))
        if missing:
            raise ValueError(f"{type(module).__name__} lacks the averaged parameters {missing}; copy the EMA into a "
                             "module of the tracked module's structure")
        for name, value in values.items():
            params[name].copy_(value)
