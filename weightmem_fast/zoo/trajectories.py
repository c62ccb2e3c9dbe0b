"""Checkpoints along training: G.pt's trajectories (study_spec §4.1) and P-diff's consecutive checkpoints of one
model's last BatchNorm layers (study_spec §6.1) (issue 5)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..io import Zoo
from ..layout import ParamLayout, Selector
from .data import Dataset
from .loop import check_dataset, check_float, check_int, inputs_for, steps_per_epoch, train_runs, train_steps
from .models import model_from_zoo
from .runs import plan_runs
from .stacked import StackedModel
from .train import run_metadata


def trajectories(
    arch: str,
    data: Dataset,
    n_runs: int,
    epochs: int,
    checkpoints_per_epoch: int = 1,
    *,
    seed: int = 0,
    lr: float = 0.01,
    batch_size: int = 64,
    chunk: int = 256,
    init: str = "default",
    vary: Mapping[str, Sequence[Any]] | None = None,
    progress: bool = True,
    **arch_kwargs: Any,
) -> Zoo:
    """Training runs with their checkpoints along the way, what G.pt trains on: the initial weights, then
    ``checkpoints_per_epoch`` evenly spaced checkpoints in every epoch (the last at the epoch's end).

    The runs are ``train_zoo``'s (same seeds, optimiser, batching and options): run r of ``trajectories(...)``
    ends at the weights of model r of ``train_zoo(...)`` with the same arguments.

    Args:
        arch, data, epochs, seed, lr, batch_size, chunk, init, vary, progress, **arch_kwargs: as ``train_zoo``.
        n_runs: independent runs R >= 1.
        checkpoints_per_epoch: K, between 1 and the steps per epoch.

    Returns:
        Zoo of R * (1 + epochs * K) rows in ``zoo_layout``, run by run, each run's checkpoints in step order.
        Metadata per row: run (0..R-1), step (optimiser steps so far; 0 = initial weights), epoch (completed
        epochs, ``step // steps_per_epoch``), train_accuracy, train_loss, test_accuracy, test_loss of that
        checkpoint (eval mode, full sets), plus ``train_zoo``'s run metadata (arch, arch_kwargs, input_shape,
        classes, seed, lr, init).

    Raises:
        ValueError: as ``train_zoo``, or ``checkpoints_per_epoch`` out of range.
        TypeError: ``data`` is not a Dataset.
    """
    data = check_dataset(data)
    n_runs, epochs = check_int("n_runs", n_runs), check_int("epochs", epochs)
    batch_size, chunk = check_int("batch_size", batch_size), check_int("chunk", chunk)
    per_epoch = steps_per_epoch(data.train_x.shape[0], batch_size)
    per_checkpoint = check_int("checkpoints_per_epoch", checkpoints_per_epoch)
    if per_checkpoint > per_epoch:
        raise ValueError(f"checkpoints_per_epoch must be at most the {per_epoch} steps of an epoch (batch_size "
                         f"{batch_size}); got {per_checkpoint}")
    runs = plan_runs(n_runs, check_int("seed", seed, 0), check_float("lr", lr), init, arch_kwargs, vary)
    record = [0] + [epoch * per_epoch + round(k * per_epoch / per_checkpoint)
                    for epoch in range(epochs) for k in range(1, per_checkpoint + 1)]
    steps = epochs * per_epoch
    with tqdm(total=n_runs * steps, unit="model-step", disable=not progress, desc=f"{arch} trajectories") as bar:
        layout, checkpoints = train_runs(arch, data, runs, steps, record, batch_size=batch_size, chunk=chunk,
                                         on_step=bar.update)
    weights = torch.stack([point.weights for run in checkpoints for point in run])
    metadata = [run_metadata(arch, data, config) | {"run": r, "step": point.step, "epoch": point.step // per_epoch}
                | point.metrics for r, (config, run) in enumerate(zip(runs, checkpoints)) for point in run]
    return Zoo(weights, layout, metadata)


def consecutive_checkpoints(
    base: nn.Module | Zoo,
    data: Dataset,
    include: Selector,
    steps: int | None = None,
    *,
    template: nn.Module | None = None,
    lr: float = 0.03,
    weight_decay: float = 5e-4,
    batch_size: int = 64,
    seed: int = 40,
    progress: bool = True,
) -> Zoo:
    """P-diff's training checkpoints (study_spec §6.1): from one trained model, keep training only the ``include``
    tensors and save them after every step.

    As P-diff's ``finetune.py``: every other parameter is frozen; the whole model is in train mode (BatchNorm
    normalises with batch statistics and updates its running statistics, which are not saved); AdamW with a
    constant learning rate 0.03 and weight decay 5e-4; seed 40. Differences: float32 (P-diff uses bf16 autocast),
    and a checkpoint after every step from the first (P-diff starts at the 2nd: drop row 0 to match). ``base``
    is not modified.

    To rebuild checkpoint i as a full model: ``model_from_zoo(zoo, i, template=base)``, i.e. the base state_dict
    with the row's tensors loaded over it; its BatchNorm running statistics are the base model's, as P-diff
    evaluates (study_spec §11.4). ``weightmem_fast.evaluate(base, zoo.weights, x, y, layout=zoo.layout)`` does the
    same for every row at once.

    Args:
        base: the trained model, or a one-row zoo from ``train_zoo`` (rebuilt with ``model_from_zoo``).
        data: the task the base model was trained on.
        include: the generated subset, as ``ParamLayout.from_module``'s ``include`` (``pdiff_subset(base)``).
        steps: checkpoints T (one per step); default one epoch. More steps than an epoch go on into reshuffled
            epochs (P-diff's 300 checkpoints need a small ``batch_size`` on digits: 1,258 samples / 4 = 315 steps).
        template: for a zoo ``base`` whose rows lack the architecture metadata.
        lr, weight_decay, batch_size, seed: the extra training (seed: its data order).
        progress: show a tqdm bar over steps.

    Returns:
        Zoo of T rows in the subset layout. Metadata per row: step (1..T), batch_loss (the step's training batch,
        before the step), test_accuracy and test_loss of the rebuilt model (base BatchNorm statistics), lr, seed.

    Raises:
        ValueError: ``include`` matches no parameter, a non-positive count or rate, a negative weight decay, a zoo
            base with more than one row.
        TypeError: ``base`` or ``data`` of the wrong type.
    """
    from ..ops.eval import evaluate  # not at import: ops.eval imports zoo.architectures

    data = check_dataset(data)
    batch_size, seed = check_int("batch_size", batch_size), check_int("seed", seed, 0)
    lr, weight_decay = check_float("lr", lr), check_float("weight_decay", weight_decay, allow_zero=True)
    if isinstance(base, Zoo):
        if len(base) != 1:
            raise ValueError(f"base must be a model or a one-row zoo; got a zoo of {len(base)} rows (pass zoo[i])")
        base = model_from_zoo(base, 0, template)
    if not isinstance(base, nn.Module):
        raise TypeError(f"base must be an nn.Module or a one-row Zoo; got {type(base).__name__}")
    layout = ParamLayout.from_module(base, include)
    data = inputs_for(base, data)
    steps = steps_per_epoch(data.train_x.shape[0], batch_size) if steps is None else check_int("steps", steps)
    model = StackedModel([base])  # a copy: base stays as it is
    for tensor in model.parameters():
        tensor.requires_grad_(False)
    tensors = model.stacked_tensors()
    optimiser = torch.optim.AdamW([tensors[name].requires_grad_() for name in layout.names], lr=lr,
                                  weight_decay=weight_decay)
    rows, losses = [], []
    for loss in tqdm(train_steps(model, optimiser, data.train_x, data.train_y, [seed], batch_size, steps),
                     total=steps, unit="step", disable=not progress, desc="consecutive checkpoints"):
        rows.append(model.flat(layout)[0])
        losses.append(float(loss[0]))
    weights = torch.stack(rows)
    scores = evaluate(base, weights, data.test_x, data.test_y, layout=layout)
    metadata = [{"step": step, "batch_loss": loss, "test_accuracy": float(acc), "test_loss": float(test_loss),
                 "lr": lr, "seed": seed}
                for step, (loss, acc, test_loss) in enumerate(zip(losses, scores.accuracy, scores.loss), start=1)]
    return Zoo(weights, layout, metadata)
