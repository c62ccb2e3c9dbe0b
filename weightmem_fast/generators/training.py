"""Training helpers every generator shares (issue 7): seeding, AdamW with warm-up and cosine decay, gradient
clipping, EMA updates and a tqdm bar showing the loss, all in ``train_loop``; ``epoch_batches`` for minibatches.

A method's ``_fit`` typically reads::

    model = Denoiser(...).to(self.device)
    ema = EMA(model, cfg.ema_decay)
    batches = epoch_batches(len(x), cfg.batch_size, device=self.device)
    losses = train_loop(lambda step: diffusion.training_loss(model, x[next(batches)]), model.parameters(),
                        cfg.optim, ema=ema, progress=progress, desc="G.pt")

``Generator.fit`` already runs ``_fit`` under ``seeded(config.seed)``, so the global RNG draws above are
reproducible and the caller's RNG state is left untouched.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Callable, Iterable, Iterator, Literal

import torch
from tqdm.auto import tqdm

from .config import JsonDataclass
from .ema import EMA


@dataclasses.dataclass(frozen=True)
class Optim(JsonDataclass):
    """AdamW settings for one training stage (a method with two stages, such as P-diff, has two).

    Attributes:
        steps: optimiser steps.
        lr: peak learning rate.
        weight_decay: AdamW's decoupled weight decay.
        betas: AdamW's (beta1, beta2).
        warmup_steps: linear warm-up from 0 to ``lr`` over this many steps.
        schedule: "constant" keeps ``lr`` after warm-up; "cosine" decays it to ``min_lr`` at the last step.
        min_lr: the learning rate the cosine schedule ends at.
        grad_clip: clip the global gradient norm to this value (None: no clipping).
    """

    steps: int = 1000
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "cosine"
    min_lr: float = 0.0
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"Optim.steps must be a positive int; got {self.steps!r}")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"Optim.warmup_steps must be an int >= 0; got {self.warmup_steps!r}")
        if not self.lr > 0 or not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"Optim needs lr > 0 and 0 <= min_lr <= lr; got lr={self.lr!r}, min_lr={self.min_lr!r}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"Optim.schedule must be 'constant' or 'cosine'; got {self.schedule!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"Optim.grad_clip must be None or > 0; got {self.grad_clip!r}")

    def lr_at(self, step: int) -> float:
        """The learning rate of optimiser step ``step`` (0-based): linear warm-up, then constant or cosine."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return self.lr
        decay_steps = max(1, self.steps - self.warmup_steps - 1)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))


def add_noise(flat: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``flat + sigma * N(0, 1)``, a new tensor; ``sigma = 0`` returns ``flat`` itself and draws nothing, so a
    config without noise consumes no random numbers (HR's noise augmentation; every transformer generator's
    ``weight_noise``)."""
    if sigma == 0:
        return flat
    return flat + sigma * torch.randn(flat.shape, generator=generator, device=flat.device, dtype=flat.dtype)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Runs the block with torch's global RNG seeded by ``seed`` (CPU, and ``device`` when it is a CUDA device),
    then restores the caller's RNG state."""
    device = torch.device(device)
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def train_loop(loss_fn: Callable[[int], torch.Tensor], parameters: Iterable[torch.nn.Parameter], optim: Optim, *,
               ema: EMA | None = None, progress: bool = True, desc: str = "training") -> list[float]:
    """Minimises ``loss_fn`` with AdamW for ``optim.steps`` steps.

    Each step: zero the gradients, ``loss = loss_fn(step)`` (a scalar tensor; the function draws its own batch),
    backward, clip the gradient norm (``optim.grad_clip``), AdamW step with ``optim.lr_at(step)``, then
    ``ema.update()``. The tqdm bar (hidden with ``progress=False``) shows the loss. Put the modules in train mode
    before calling; this function does not change modes.

    Args:
        loss_fn: step index -> scalar loss tensor.
        parameters: the parameters to optimise.
        optim: the stage's settings.
        ema: an EMA to update after every step.
        progress: show the bar.
        desc: the bar's label.

    Returns:
        The loss of every step, as floats.

    Raises:
        FloatingPointError: a non-finite loss (names the step; lower ``optim.lr`` or set ``optim.grad_clip``).
        ValueError: ``parameters`` is empty.
    """
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise ValueError("train_loop needs at least one parameter with requires_grad=True; got none")
    optimizer = torch.optim.AdamW(params, lr=optim.lr_at(0), betas=optim.betas, weight_decay=optim.weight_decay)
    losses: list[float] = []
    with tqdm(range(optim.steps), desc=desc, disable=not progress) as bar:
        for step in bar:
            for group in optimizer.param_groups:
                group["lr"] = optim.lr_at(step)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(step)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"{desc}: the loss is {value} at step {step}; lower Optim.lr "
                                         f"(now {optim.lr}) or set Optim.grad_clip")
            loss.backward()
            if optim.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, optim.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update()
            losses.append(value)
            bar.set_postfix(loss=f"{value:.4g}", refresh=False)
    return losses


def epoch_batches(n: int, batch_size: int, *, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """An endless stream of minibatch row indices: each epoch is a fresh random permutation of ``range(n)`` cut
    into batches of ``min(batch_size, n)`` (the last batch of an epoch continues into the next permutation), so
    every row is used equally often.

    Returns:
        An iterator of int64 tensors [min(batch_size, n)] on ``device``.

    Raises:
        ValueError: ``n`` or ``batch_size`` is not a positive int.
    """
    for name, value in (("n", n), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")
    return _batches(n, min(batch_size, n), generator, device)


def _batches(n: int, size: int, generator: torch.Generator | None,
             device: torch.device | str) -> Iterator[torch.Tensor]:
    pending = torch.empty(0, dtype=torch.int64)
    while True:
        while pending.numel() < size:
            pending = torch.cat([pending, torch.randperm(n, generator=generator)])
        batch, pending = pending[:size], pending[size:]
        yield batch.to(device)
