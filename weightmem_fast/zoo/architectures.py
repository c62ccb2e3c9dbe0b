"""The study's network families, scaled to the data (issue 5, study_spec §1.1).

``mlp`` is G.pt's MNIST MLP (in -> 10 (activation) -> 10; 784 -> 10 -> 10 has 7,960 parameters, 64 -> 10 -> 10 on
digits has 760). Its flat layout is ``ParamLayout.from_module(mlp(...))``: 0.weight, 0.bias, 2.weight, 2.bias.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

# Elementwise activations by name: the module for templates, the function for batched training and evaluation.
ACTIVATIONS: dict[str, tuple[Callable[[], nn.Module], Callable[[torch.Tensor], torch.Tensor]]] = {
    "relu": (nn.ReLU, F.relu),
    "leaky_relu": (nn.LeakyReLU, F.leaky_relu),
    "tanh": (nn.Tanh, torch.tanh),
    "gelu": (nn.GELU, F.gelu),
    "sigmoid": (nn.Sigmoid, torch.sigmoid),
}


def activation_function(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The functional form of a named activation; ValueError lists the choices."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {name!r}")
    return ACTIVATIONS[name][1]


def mlp(in_features: int, hidden: int = 10, out_features: int = 10, activation: str = "relu") -> nn.Sequential:
    """Linear(in, hidden) -> activation -> Linear(hidden, out): G.pt's MLP family."""
    activation_function(activation)  # validates the name
    return nn.Sequential(nn.Linear(in_features, hidden), ACTIVATIONS[activation][0](), nn.Linear(hidden, out_features))
