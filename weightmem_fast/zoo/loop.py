"""The training loop every zoo builder shares: stacked models, per-model data order, checkpoints at chosen steps
(issue 5).

Training is cross-entropy with mini-batches; model b reshuffles the training set every epoch with a generator
seeded by its own seed (the last batch of an epoch is smaller when ``batch_size`` does not divide the set). Nothing
in a model's run depends on the other models of its batch. Measurements run in eval mode (BatchNorm uses each
model's running statistics) on the full train and test sets.

Independence holds in exact arithmetic; in float32, oneDNN may order a convolution's sums differently for another
number of stacked models (as it does for another thread count), so a CNN trained in another batch can differ by
rounding (about 1e-6 after an epoch on digits). Training amplifies rounding, BatchNorm CNNs under Adam most: after
three epochs of ``cnn_bn`` a weight may differ by 0.2 and test accuracy by a point. MLP runs have been bitwise equal
across batchings. The same ``chunk`` on the same machine and thread count reproduces a zoo bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..layout import ParamLayout
from .data import Dataset
from .models import make_model, zoo_layout
from .runs import RunConfig, batches
from .stacked import StackedModel, sample_dims

# Activation values (per model and sample) held at once while measuring; bounds the memory of big batches.
_MEASURE_ELEMENTS = 1 << 24


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an int >= ``minimum``, else ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}; got {value!r}")
    return value


def check_float(name: str, value: object, allow_zero: bool = False) -> float:
    """``value`` as a float if it is a finite number > 0 (>= 0 with ``allow_zero``), else ValueError naming the
    argument."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0; got {value!r}")
    return float(value)


def check_dataset(data: object) -> Dataset:
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a weightmem_fast.zoo.Dataset (e.g. zoo.digits()); got {type(data).__name__}")
    return data


def inputs_for(model: nn.Module, data: Dataset) -> Dataset:
    """The data as the model takes it: flattened samples for models that start with a Linear layer."""
    return data.flat() if sample_dims(model) == 1 else data


def steps_per_epoch(samples: int, batch_size: int) -> int:
    return math.ceil(samples / batch_size)


def train_steps(model: StackedModel, optimiser: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                seeds: Sequence[int], batch_size: int, steps: int) -> Iterator[torch.Tensor]:
    """Trains the B models for ``steps`` optimiser steps in train mode, yielding after each step.

    Args:
        model: B stacked models; ``optimiser`` holds (some of) its stacked tensors.
        x, y: [S, *sample] training inputs and [S] int64 labels.
        seeds: B seeds; model b's sample order comes from ``torch.Generator().manual_seed(seeds[b])``.

    Yields:
        [B] each model's mean cross-entropy on the batch it just trained on (before the step).
    """
    gens = [torch.Generator().manual_seed(seed) for seed in seeds]
    per_epoch = steps_per_epoch(x.shape[0], batch_size)
    model.train()
    for step in range(steps):
        position = step % per_epoch
        if position == 0:
            order = torch.stack([torch.randperm(x.shape[0], generator=gen) for gen in gens])
        rows = order[:, position * batch_size : (position + 1) * batch_size]  # [B, batch]
        logits = model(x[rows])
        losses = F.cross_entropy(logits.transpose(1, 2), y[rows], reduction="none").mean(dim=1)
        optimiser.zero_grad()
        # Summed over models: model b's gradient is that of its own mean loss.
        losses.sum().backward()
        optimiser.step()
        yield losses.detach()


def measure(model: StackedModel, x: torch.Tensor, y: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(accuracy [B], mean cross-entropy [B]) of the models on (x [S, ...], y [S]) in eval mode; the model's mode
    is restored. ``width`` is the largest activation per sample of one model (``activation_width``); samples go in
    chunks that keep B * chunk * width under about 16M values."""
    was_training = model.training
    model.eval()
    chunk = max(1, _MEASURE_ELEMENTS // (model.models * width))
    correct = torch.zeros(model.models, dtype=torch.float64)
    loss = torch.zeros(model.models, dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, x.shape[0], chunk):
            logits = model(x[start : start + chunk])
            target = y[start : start + chunk].expand(model.models, -1)
            correct += (logits.argmax(dim=2) == target).sum(dim=1)
            loss += F.cross_entropy(logits.transpose(1, 2), target, reduction="none").sum(dim=1, dtype=torch.float64)
    model.train(was_training)
    return (correct / x.shape[0]).float(), (loss / x.shape[0]).float()


def activation_width(model: nn.Module, sample: torch.Tensor) -> int:
    """The largest output (values per sample) of any leaf module of ``model`` on one ``sample`` [*sample]."""
    sizes: list[int] = []
    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel())) for m in leaves]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(sample.unsqueeze(0))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return max(sizes)


@dataclass(frozen=True)
class Checkpoint:
    """A model's weights at one step of its run and what they score."""

    step: int
    weights: torch.Tensor  # [D]
    metrics: dict[str, float]


def train_runs(arch: str, data: Dataset, runs: Sequence[RunConfig], steps: int, record_at: Sequence[int], *,
               batch_size: int, chunk: int,
               on_step: Callable[[int], None]) -> tuple[ParamLayout, list[list[Checkpoint]]]:
    """Trains every run with Adam for ``steps`` steps, ``chunk`` runs with equal settings at a time.

    Args:
        record_at: steps (0 = the initial weights) whose weights and train/test accuracy and loss are recorded.
        on_step: called with the number of runs of the batch after each step (progress).

    Returns:
        The layout of the rows (``zoo_layout``) and, per run in ``runs`` order, its checkpoints in step order.
    """
    shape, classes = data.input_shape, data.num_classes
    template = make_model(arch, shape, classes, seed=runs[0].seed, init=runs[0].init, **runs[0].arch_kwargs)
    layout, data = zoo_layout(template), inputs_for(template, data)
    width = activation_width(template, data.train_x[0])
    record = set(record_at)
    checkpoints: list[list[Checkpoint]] = [[] for _ in runs]
    for members in batches(runs, chunk):
        configs = [runs[i] for i in members]
        model = StackedModel([make_model(arch, shape, classes, seed=c.seed, init=c.init, **c.arch_kwargs)
                              for c in configs])
        optimiser = torch.optim.Adam(model.parameters(), lr=configs[0].lr)

        def keep(step: int) -> None:
            train_acc, train_loss = measure(model, data.train_x, data.train_y, width)
            test_acc, test_loss = measure(model, data.test_x, data.test_y, width)
            for b, (weights, i) in enumerate(zip(model.flat(layout), members)):
                metrics = {"train_accuracy": float(train_acc[b]), "train_loss": float(train_loss[b]),
                           "test_accuracy": float(test_acc[b]), "test_loss": float(test_loss[b])}
                checkpoints[i].append(Checkpoint(step, weights, metrics))

        if 0 in record:
            keep(0)
        seeds = [c.seed for c in configs]
        steps_done = train_steps(model, optimiser, data.train_x, data.train_y, seeds, batch_size, steps)
        for step, _ in enumerate(steps_done, start=1):
            on_step(len(members))
            if step in record:
                keep(step)
    return layout, checkpoints
