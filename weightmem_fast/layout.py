"""Flat weight vectors <-> state_dicts (issue 5, study_spec §1.1).

A checkpoint is a flat vector w in R^D; which tensors form it, in which order, is a ``ParamLayout``. Every set
compared by distance must share one layout, so the layout travels with the zoo (``to_json`` / ``from_json``).
``include`` selects a subset: P-diff generates only the affine parameters of the last two BatchNorm layers and
takes the rest of the model from a base state_dict.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

_FORMAT = "weightmem_fast.layout/1"

Selector = Iterable[str] | Callable[[str], bool] | None


@dataclass(frozen=True)
class ParamEntry:
    """One tensor of the flat vector: its state_dict key, shape and first position in the vector."""

    name: str
    shape: tuple[int, ...]
    offset: int

    @property
    def numel(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count


@dataclass(frozen=True)
class ParamLayout:
    """The tensors that form a flat weight vector, in order; each tensor is flattened row-major.

    Attributes:
        entries: one ParamEntry per tensor, offsets contiguous from 0.
    """

    entries: tuple[ParamEntry, ...]

    def __post_init__(self) -> None:
        if not self.entries:
            raise ValueError("a ParamLayout needs at least one tensor")
        offset, seen = 0, set()
        for entry in self.entries:
            if entry.name in seen:
                raise ValueError(f"tensor {entry.name!r} appears twice in the layout")
            if entry.offset != offset:
                raise ValueError(f"tensor {entry.name!r} starts at {entry.offset}; the layout is contiguous, expected {offset}")
            seen.add(entry.name)
            offset += entry.numel

    @classmethod
    def from_named_tensors(cls, named: Iterable[tuple[str, Sequence[int]]]) -> "ParamLayout":
        """A layout of the given (name, shape) pairs, in that order."""
        entries, offset = [], 0
        for name, shape in named:
            entry = ParamEntry(name, tuple(int(s) for s in shape), offset)
            entries.append(entry)
            offset += entry.numel
        return cls(tuple(entries))

    @classmethod
    def from_module(cls, module: nn.Module, include: Selector = None) -> "ParamLayout":
        """The module's parameters in ``named_parameters()`` order (= its state_dict order), optionally a subset.

        Args:
            module: the template network.
            include: None for every parameter; names or name prefixes ("layer4.1.bn1" selects
                "layer4.1.bn1.weight" and "layer4.1.bn1.bias"); or a predicate on names. Order stays the
                module's. Buffers (BatchNorm running statistics) are never part of the flat vector.

        Raises:
            ValueError: an ``include`` name that matches no parameter (the message lists the parameters), or an
                empty selection.
        """
        named = [(name, tuple(p.shape)) for name, p in module.named_parameters()]
        return cls.from_named_tensors(_select(named, include, type(module).__name__))

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], include: Selector = None) -> "ParamLayout":
        """Every floating-point tensor of ``state_dict`` in its order (optionally a subset, as ``from_module``)."""
        named = [(name, tuple(t.shape)) for name, t in state_dict.items() if torch.is_floating_point(t)]
        return cls.from_named_tensors(_select(named, include, "state_dict"))

    @property
    def size(self) -> int:
        """D, the length of the flat vector."""
        last = self.entries[-1]
        return last.offset + last.numel

    @property
    def names(self) -> list[str]:
        return [entry.name for entry in self.entries]

    def flatten(self, state_dicts: Mapping[str, torch.Tensor] | Sequence[Mapping[str, torch.Tensor]],
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Stacks checkpoints into [N, D] (a single state_dict gives [1, D]).

        Keys outside the layout are ignored (e.g. BatchNorm buffers); every layout key must be present with its
        shape. The result is on the first tensor's device.

        Raises:
            ValueError: a missing key or a wrong shape, naming the state_dict's position and the key.
        """
        dicts = [state_dicts] if isinstance(state_dicts, Mapping) else list(state_dicts)
        if not dicts:
            raise ValueError("flatten needs at least one state_dict")
        device = dicts[0][self.entries[0].name].device if self.entries[0].name in dicts[0] else "cpu"
        out = torch.empty(len(dicts), self.size, dtype=dtype, device=device)
        for row, state in enumerate(dicts):
            for entry in self.entries:
                if entry.name not in state:
                    raise ValueError(f"state_dict {row} has no tensor {entry.name!r} (the layout needs {self.names})")
                tensor = state[entry.name]
                if tuple(tensor.shape) != entry.shape:
                    raise ValueError(
                        f"state_dict {row}: {entry.name!r} has shape {tuple(tensor.shape)}; the layout expects "
                        f"{entry.shape}"
                    )
                out[row, entry.offset : entry.offset + entry.numel] = tensor.detach().reshape(-1)
        return out

    def unflatten(self, flat: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """state_dicts of the layout's tensors from flat weights [N, D] or [D]; the tensors are views of ``flat``.

        Raises:
            ValueError: ``flat`` is not [N, D] or [D] with D = ``self.size``.
        """
        if not isinstance(flat, torch.Tensor):
            raise TypeError(f"flat must be a torch.Tensor [N, D]; got {type(flat).__name__}")
        rows = flat.unsqueeze(0) if flat.dim() == 1 else flat
        if rows.dim() != 2 or rows.shape[1] != self.size:
            raise ValueError(f"flat must be [N, {self.size}] or [{self.size}] for this layout; got {tuple(flat.shape)}")
        return [
            {entry.name: row[entry.offset : entry.offset + entry.numel].view(entry.shape) for entry in self.entries}
            for row in rows
        ]

    def to_json(self) -> str:
        return json.dumps({"format": _FORMAT, "tensors": [[e.name, list(e.shape)] for e in self.entries]})

    @classmethod
    def from_json(cls, text: str) -> "ParamLayout":
        """Reads ``to_json`` output.

        Raises:
            ValueError: not a weightmem_fast layout, or a malformed one.
        """
        try:
            data = json.loads(text)
            if data.get("format") != _FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, expected {_FORMAT!r}")
            return cls.from_named_tensors((str(name), [int(s) for s in shape]) for name, shape in data["tensors"])
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a valid ParamLayout JSON: {err}") from err


def layer_groups(layout: ParamLayout) -> dict[str, list[ParamEntry]]:
    """The layout's tensors grouped by layer (module prefix: ``"0"`` for ``"0.weight"``; ``""`` for a top-level
    parameter), layers in order of first appearance, tensors in layout order."""
    layers: dict[str, list[ParamEntry]] = {}
    for entry in layout.entries:
        layers.setdefault(entry.name.rpartition(".")[0], []).append(entry)
    return layers


def _select(named: list[tuple[str, tuple[int, ...]]], include: Selector, owner: str) -> list[tuple[str, tuple[int, ...]]]:
    if include is None:
        chosen = named
    elif callable(include):
        chosen = [(name, shape) for name, shape in named if include(name)]
    else:
        wanted = [include] if isinstance(include, str) else list(include)
        names = [name for name, _ in named]
        for pattern in wanted:
            if not any(name == pattern or name.startswith(pattern + ".") for name in names):
                raise ValueError(f"include entry {pattern!r} matches no parameter of {owner}; parameters: {names}")
        chosen = [(name, shape) for name, shape in named
                  if any(name == pattern or name.startswith(pattern + ".") for pattern in wanted)]
    if not chosen:
        raise ValueError(f"include selects no parameter of {owner}")
    return chosen


def flatten(state_dicts: Mapping[str, torch.Tensor] | Sequence[Mapping[str, torch.Tensor]],
            layout: ParamLayout | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[N, D] flat weights of the checkpoints; ``layout`` defaults to every floating tensor of the first one."""
    if layout is None:
        first = state_dicts if isinstance(state_dicts, Mapping) else next(iter(state_dicts), None)
        if first is None:
            raise ValueError("flatten needs at least one state_dict")
        layout = ParamLayout.from_state_dict(first)
    return layout.flatten(state_dicts, dtype)


def unflatten(flat: torch.Tensor, layout: ParamLayout) -> list[dict[str, torch.Tensor]]:
    """state_dicts (views of ``flat``) of the layout's tensors; see ``ParamLayout.unflatten``."""
    return layout.unflatten(flat)
