"""``train_zoo``: many independent models trained in stacked batches, the zoos HR and the audits compare against
(issue 5, study_spec §3.1)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from ..io import Zoo
from .data import Dataset
from .loop import check_dataset, check_float, check_int, steps_per_epoch, train_runs
from .runs import RunConfig, plan_runs


def train_zoo(
    arch: str,
    data: Dataset,
    n_models: int,
    epochs: int,
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
    """Trains ``n_models`` independent models of family ``arch`` (Adam, cross-entropy), ``chunk`` at a time in one
    stacked forward and backward pass.

    Model i has seed ``seed + i`` for its initialisation (``make_model``) and its own data order. Its result does
    not depend on which other models share its batch, nor on ``chunk``, up to float rounding (see ``zoo.loop``).

    Args:
        arch: "mlp", "cnn" or "cnn_bn" (``ARCHITECTURES``); MLPs get flattened inputs.
        data: the task (e.g. ``digits()``).
        n_models: N >= 1.
        epochs: passes over the training set.
        seed: model 0's seed.
        lr: Adam's learning rate.
        batch_size: samples per step and model.
        chunk: models trained together at most (memory grows with chunk * batch_size * activation size).
        init: weight initialisation, one of ``INITS``.
        vary: optional per-model variation as in model-zoo papers: lists for "lr", "activation" and/or "init",
            from which each model draws with its seed (``runs.plan_runs``), e.g. ``{"lr": [1e-3, 1e-2],
            "activation": ["relu", "tanh"]}``. Models train in batches of equal settings.
        progress: show a tqdm bar (model-steps).
        **arch_kwargs: the family's options, e.g. ``hidden=10``, ``activation="tanh"``, ``width=8``.

    Returns:
        Zoo of N rows in ``zoo_layout`` (parameters, plus BatchNorm running statistics for "cnn_bn"), in model
        order. Metadata per row: arch, arch_kwargs, input_shape, classes (enough for ``model_from_zoo``), seed,
        lr, init, epochs, steps, and after training train_accuracy, train_loss, test_accuracy, test_loss (eval mode,
        full sets).

    Raises:
        ValueError: a non-positive count or rate, an unknown arch, init, activation or vary key.
        TypeError: ``data`` is not a Dataset.
    """
    data = check_dataset(data)
    n_models, epochs = check_int("n_models", n_models), check_int("epochs", epochs)
    batch_size, chunk = check_int("batch_size", batch_size), check_int("chunk", chunk)
    runs = plan_runs(n_models, check_int("seed", seed, 0), check_float("lr", lr), init, arch_kwargs, vary)
    steps = epochs * steps_per_epoch(data.train_x.shape[0], batch_size)
    with tqdm(total=n_models * steps, unit="model-step", disable=not progress, desc=f"training {arch} zoo") as bar:
        layout, checkpoints = train_runs(arch, data, runs, steps, [steps], batch_size=batch_size, chunk=chunk,
                                         on_step=bar.update)
    weights = torch.stack([run[-1].weights for run in checkpoints])
    metadata = [run_metadata(arch, data, config) | {"epochs": epochs, "steps": steps} | run[-1].metrics
                for config, run in zip(runs, checkpoints)]
    return Zoo(weights, layout, metadata)


def run_metadata(arch: str, data: Dataset, config: RunConfig) -> dict[str, Any]:
    """The metadata that identifies a run and rebuilds its architecture (``model_from_zoo``)."""
    return {"arch": arch, "arch_kwargs": dict(config.arch_kwargs), "input_shape": list(data.input_shape),
            "classes": data.num_classes, "seed": config.seed, "lr": config.lr, "init": config.init}


def train_mlp_zoo(
    data: Dataset,
    n_models: int,
    *,
    hidden: int = 10,
    activation: str = "relu",
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 0.01,
    seed: int = 0,
    chunk: int = 256,
    progress: bool = True,
) -> Zoo:
    """G.pt's MLP family zoo: ``train_zoo("mlp", data, n_models, epochs, hidden=hidden, activation=activation,
    ...)`` with this function's defaults (30 epochs)."""
    return train_zoo("mlp", data, n_models, epochs, seed=seed, lr=lr, batch_size=batch_size, chunk=chunk,
                     progress=progress, hidden=hidden, activation=activation)
