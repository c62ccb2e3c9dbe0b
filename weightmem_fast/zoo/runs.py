"""The runs of a zoo: each model's seed and hyperparameters, and their grouping into batches that train together
(issue 5).

Model i has seed ``seed + i``. With ``vary``, each varied setting is drawn uniformly from its list by a generator
seeded with the model's seed, so a model's run depends on its seed alone. Models train together only when they share
every setting (one optimiser learning rate, one activation, one init per stacked batch); that is sound because a
model's result does not depend on its batch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

# Settings a zoo may vary per model without changing the flat layout.
VARIABLE = ("activation", "init", "lr")


@dataclass(frozen=True)
class RunConfig:
    """One model's run: its seed, learning rate, weight initialisation and architecture options."""

    seed: int
    lr: float
    init: str
    arch_kwargs: dict[str, Any] = field(default_factory=dict)

    def group_key(self) -> str:
        """Equal for runs that can share a stacked batch (all settings but the seed)."""
        return json.dumps([self.lr, self.init, self.arch_kwargs], sort_keys=True)


def plan_runs(n: int, seed: int, lr: float, init: str, arch_kwargs: Mapping[str, Any],
              vary: Mapping[str, Sequence[Any]] | None) -> list[RunConfig]:
    """The configs of models 0..n-1.

    Args:
        vary: optional lists of values per setting in ``VARIABLE``; model i draws each from its list (a drawn
            ``activation`` replaces the one in ``arch_kwargs``).

    Raises:
        ValueError: a ``vary`` key outside ``VARIABLE`` or an empty list.
    """
    vary = dict(vary or {})
    for key, values in vary.items():
        if key not in VARIABLE:
            raise ValueError(f"vary keys must be among {list(VARIABLE)} (settings that keep the layout); got {key!r}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"vary[{key!r}] must be a non-empty list of values; got {values!r}")
    runs = []
    for model_seed in range(seed, seed + n):
        gen = torch.Generator().manual_seed(model_seed)
        drawn = {key: vary[key][int(torch.randint(len(vary[key]), (1,), generator=gen))] for key in sorted(vary)}
        kwargs = dict(arch_kwargs) | ({"activation": drawn["activation"]} if "activation" in drawn else {})
        runs.append(RunConfig(model_seed, float(drawn.get("lr", lr)), drawn.get("init", init), kwargs))
    return runs


def batches(runs: Sequence[RunConfig], chunk: int) -> list[list[int]]:
    """Indices of ``runs`` in batches of at most ``chunk`` runs with equal settings, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for index, run in enumerate(runs):
        groups.setdefault(run.group_key(), []).append(index)
    return [members[start : start + chunk] for members in groups.values() for start in range(0, len(members), chunk)]
