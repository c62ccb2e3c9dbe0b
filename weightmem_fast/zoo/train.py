"""Batched training of model zoos: many independent models in one forward and backward pass (issue 5).

Each model has its own seed (initialisation and data order), and its parameters are slices of stacked tensors, so
the summed loss gives every model exactly its own gradient and an elementwise optimiser (Adam) keeps the runs
independent. One batched matrix product per layer replaces a Python loop over models.
"""
from __future__ import annotations

import math
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..io import Zoo
from ..layout import ParamLayout
from .architectures import activation_function, mlp
from .data import Dataset


class _StackedMLP:
    """B MLPs as stacked tensors: w1 [B, H, I], b1 [B, H], w2 [B, C, H], b2 [B, C]."""

    def __init__(self, seeds: list[int], in_features: int, hidden: int, classes: int, activation: str) -> None:
        self.act = activation_function(activation)
        tensors = [self._init(seed, in_features, hidden, classes) for seed in seeds]
        self.params = [torch.stack(parts).requires_grad_() for parts in zip(*tensors)]

    @staticmethod
    def _init(seed: int, in_features: int, hidden: int, classes: int) -> list[torch.Tensor]:
        """nn.Linear's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from the model's own seed."""
        gen = torch.Generator().manual_seed(seed)

        def uniform(*shape: int, fan_in: int) -> torch.Tensor:
            bound = 1.0 / math.sqrt(fan_in)
            return (torch.rand(*shape, generator=gen) * 2 - 1) * bound

        return [uniform(hidden, in_features, fan_in=in_features), uniform(hidden, fan_in=in_features),
                uniform(classes, hidden, fan_in=hidden), uniform(classes, fan_in=hidden)]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, S, I] (each model its own samples) or [S, I] (shared) -> [B, S, C]."""
        w1, b1, w2, b2 = self.params
        if x.dim() == 2:
            x = x.expand(w1.shape[0], -1, -1)
        hidden = self.act(torch.baddbmm(b1.unsqueeze(1), x, w1.transpose(1, 2)))
        return torch.baddbmm(b2.unsqueeze(1), hidden, w2.transpose(1, 2))

    def flat(self) -> torch.Tensor:
        return torch.cat([p.detach().flatten(1) for p in self.params], dim=1)


def _accuracy_and_loss(model: _StackedMLP, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        logits = model.logits(x)
        loss = F.cross_entropy(logits.transpose(1, 2), y.expand(logits.shape[0], -1), reduction="none").mean(1)
        return (logits.argmax(-1) == y).float().mean(1), loss


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
    """Trains ``n_models`` independent MLPs (Adam, cross-entropy), ``chunk`` models per batched pass.

    Model i uses seed ``seed + i`` for its initialisation and its own shuffling of the training set.

    Args:
        data: the task; inputs are flattened.
        n_models: N >= 1.
        hidden, activation: the MLP family (``architectures.mlp``).
        epochs, batch_size, lr: the training run of every model.
        seed: the first model's seed.
        chunk: models trained together (memory grows with chunk * batch_size * inputs).
        progress: show a tqdm bar over chunks and epochs.

    Returns:
        Zoo with weights [N, D] in the layout of ``mlp(I, hidden, C, activation)`` and, per model, its seed,
        train_accuracy, test_accuracy, test_loss and epochs.
    """
    for name, value in (("n_models", n_models), ("epochs", epochs), ("batch_size", batch_size), ("chunk", chunk)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")
    flat = data.flat()
    in_features, classes = flat.train_x.shape[1], data.num_classes
    layout = ParamLayout.from_module(mlp(in_features, hidden, classes, activation))
    n_train = flat.train_x.shape[0]
    steps = math.ceil(n_train / batch_size)
    weights, metadata = [], []
    bar = tqdm(total=n_models * epochs, unit="model-epoch", disable=not progress, desc="training MLP zoo")
    for start in range(0, n_models, chunk):
        seeds = list(range(seed + start, seed + min(n_models, start + chunk)))
        model = _StackedMLP(seeds, in_features, hidden, classes, activation)
        optimiser = torch.optim.Adam(model.params, lr=lr)
        # Each model shuffles with its own generator, so a model's run does not depend on which chunk it is in.
        order_gens = [torch.Generator().manual_seed(s) for s in seeds]
        for _ in range(epochs):
            order = torch.stack([torch.randperm(n_train, generator=g) for g in order_gens])
            for step in range(steps):
                rows = order[:, step * batch_size : (step + 1) * batch_size]
                logits = model.logits(flat.train_x[rows])
                # Summed over models, mean over each model's batch: model i's gradient is its own loss's.
                loss = F.cross_entropy(logits.transpose(1, 2), flat.train_y[rows], reduction="none").mean(1).sum()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            bar.update(len(seeds))
        train_acc, _ = _accuracy_and_loss(model, flat.train_x, flat.train_y)
        test_acc, test_loss = _accuracy_and_loss(model, flat.test_x, flat.test_y)
        weights.append(model.flat())
        metadata += [{"seed": s, "train_accuracy": float(a), "test_accuracy": float(t), "test_loss": float(l),
                      "epochs": epochs} for s, a, t, l in zip(seeds, train_acc, test_acc, test_loss)]
    bar.close()
    return Zoo(torch.cat(weights), layout, metadata)
