"""Argument checks shared by the transforms and samplers (STYLE §4): TypeError for types and dtypes, ValueError
for shapes and values, each naming the argument, what was expected and what was received. Nothing here casts or
moves data."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .. import _check
from ..layout import ParamLayout
from .analysis import analyze
from .chain import ChainStructure


def structure(layout: ParamLayout | ChainStructure, template: nn.Module | None) -> ChainStructure:
    """The chain to transform, with at least one hidden layer: ``layout`` analysed (with ``template``), or an
    already analysed ChainStructure (reused across calls)."""
    if isinstance(layout, ChainStructure):
        if template is not None:
            raise ValueError("template must be None when layout is a ChainStructure (analyze already read the "
                             "template); pass the ParamLayout instead to analyse another template")
        chain = layout
    else:
        chain = analyze(layout, template)
    chain.require_hidden()
    return chain


def scalable(chain: ChainStructure) -> None:
    """Raises ValueError naming the first hidden layer whose units cannot be scaled without changing the function."""
    for k, layer in enumerate(chain.layers[:-1]):
        if layer.scale_blocker is not None:
            raise ValueError(f"cannot scale hidden layer {k} ({layer.name!r}) without changing the function: "
                             f"{layer.scale_blocker}")


def weights(x: object, chain: ChainStructure) -> torch.Tensor:
    """Flat weights [N, D] with D = the layout's size."""
    x = _check.matrix("weights", x)
    if x.shape[1] != chain.size:
        raise ValueError(f"weights must be [N, {chain.size}] (one flat model per row in this layout); got "
                         f"{tuple(x.shape)}")
    return x


def count(name: str, n: object) -> int:
    """A positive int (how many rows to draw)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int; got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"{name} must be at least 1; got {n}")
    return n


def permutations(perms: object, chain: ChainStructure, rows: int | None,
                 device: torch.device | None) -> tuple[list[torch.Tensor], int]:
    """``perms`` as one int64 [B, H_k] tensor per hidden layer ([H_k] inputs broadcast to B rows), and B.

    Args:
        rows: the required B (the weights' N), or None to take it from the 2-D tensors (1 if all are 1-D).
        device: the required device, or None for the first tensor's.
    """
    tensors = _per_layer("perms", perms, chain, "int64 tensors [N, H_k] or [H_k]")
    for k, perm in enumerate(tensors):
        if perm.dtype != torch.int64:
            raise TypeError(f"perms[{k}] must be an int64 tensor (unit indices); got {perm.dtype}")
    rows, device = _rows_and_device("perms", tensors, chain, rows, device)
    out = []
    for k, (perm, units) in enumerate(zip(tensors, chain.hidden)):
        ordered = perm.sort(dim=-1).values
        bad = (ordered != torch.arange(units, device=device)).any(dim=-1).reshape(-1)
        if bool(bad.any()):
            row = int(bad.nonzero()[0])
            values = perm.reshape(-1, units)[row]
            if int(values.min()) < 0 or int(values.max()) >= units:
                why = f"has values outside [0, {units})"
            else:
                repeated = values.unique(return_counts=True)
                why = f"repeats unit(s) {repeated[0][repeated[1] > 1].tolist()}"
            raise ValueError(f"perms[{k}] must hold permutations of range({units}) (layer {chain.layers[k].name!r}); "
                             f"row {row} {why}: {values.tolist()}")
        out.append(perm.expand(rows, units))
    return out, rows


def factors(values: object, chain: ChainStructure, rows: int, device: torch.device) -> list[torch.Tensor]:
    """``values`` as one positive, finite floating [N, H_k] tensor per hidden layer ([H_k] broadcast)."""
    tensors = _per_layer("factors", values, chain, "positive floating tensors [N, H_k] or [H_k]")
    for k, f in enumerate(tensors):
        if not f.is_floating_point():
            raise TypeError(f"factors[{k}] must be a floating tensor of positive scale factors; got {f.dtype}")
    _rows_and_device("factors", tensors, chain, rows, device)
    out = []
    for k, (f, units) in enumerate(zip(tensors, chain.hidden)):
        bad = ~(torch.isfinite(f) & (f > 0))
        if bool(bad.any()):
            first = float(f.reshape(-1)[bad.reshape(-1)][0])
            raise ValueError(f"factors[{k}] must be finite and > 0 (a negative or zero factor flips or kills a unit, "
                             f"which changes the function); {int(bad.sum())} are not, e.g. {first}")
        out.append(f.expand(rows, units))
    return out


def _per_layer(name: str, values: object, chain: ChainStructure, what: str) -> list[torch.Tensor]:
    """A list or tuple of one tensor per hidden layer."""
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, torch.Tensor) for v in values):
        raise TypeError(f"{name} must be a list of {what}, one per hidden layer; got {type(values).__name__}")
    if len(values) != len(chain.hidden):
        names = [layer.name for layer in chain.layers[:-1]]
        raise ValueError(f"{name} must hold one tensor per hidden layer: {len(chain.hidden)} for layers {names} with "
                         f"H = {list(chain.hidden)}; got {len(values)}")
    return list(values)


def _rows_and_device(name: str, tensors: Sequence[torch.Tensor], chain: ChainStructure, rows: int | None,
                     device: torch.device | None) -> tuple[int, torch.device]:
    """Checks shapes [B, H_k] / [H_k] and devices; returns B and the device."""
    device = device if device is not None else tensors[0].device
    for k, (t, units) in enumerate(zip(tensors, chain.hidden)):
        if t.dim() not in (1, 2) or t.shape[-1] != units or (t.dim() == 2 and rows is not None and t.shape[0] != rows):
            want = f"[{rows}, {units}] or [{units}]" if rows is not None else f"[B, {units}] or [{units}]"
            raise ValueError(f"{name}[{k}] must be {want} for layer {chain.layers[k].name!r}; got {tuple(t.shape)}")
        if t.dim() == 2:
            rows = t.shape[0]
        if t.device != device:
            raise ValueError(f"{name}[{k}] must be on {device} (with the weights); got {t.device}")
    return (rows if rows is not None else 1), device


def log_range(low: object, high: object) -> tuple[float, float]:
    """0 < low <= high, both finite: the range of random scale factors."""
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a float; got {type(value).__name__}")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be finite and > 0 (scale factors are positive); got {value}")
    if low > high:
        raise ValueError(f"low must be <= high; got low={low}, high={high}")
    return float(low), float(high)
