"""What every figure shares: argument checks, group selection, the fixed group colours and seeded subsets.

Colours are a function of the result alone (each group's role and its rank among groups of that role), so a group
has the same colour in every figure of one audit, whichever groups a figure shows: training blue and generated red
as in the study, baselines and references from their own palettes, the frontier dark grey.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from ..audit.result import AuditResult, GroupAudit

#: The noise frontier's colour: its group's models and its curve.
FRONTIER_COLOR = "0.3"
_PALETTES = {
    "training": ("tab:blue",),
    "generated": ("tab:red", "darkred", "salmon", "deeppink"),
    "reference": ("tab:purple", "orchid", "indigo"),
    "baseline": ("tab:orange", "tab:green", "tab:brown", "tab:olive", "tab:cyan", "goldenrod", "teal"),
    "frontier": (FRONTIER_COLOR,),
}
#: The groups a figure shows when ``groups`` is None: the models under audit and the training set they are held
#: against (baselines and the frontier are opt-in, so the default figure reads like the study's).
AUDITED_ROLES = ("training", "generated", "reference")
#: The groups of the behaviour and embedding figures by default: everything but the frontier's models (the scatter
#: draws the frontier as its curve; the study's scatter and t-SNE show the baselines beside training and generated).
MODEL_ROLES = ("training", "generated", "reference", "baseline")


def check_result(result: AuditResult, kind: str | None = None, figure: str = "this figure") -> None:
    """Raises TypeError for anything but an AuditResult, and ValueError when ``kind`` ("classifier" or "field")
    is given and the audit is of the other kind."""
    if not isinstance(result, AuditResult):
        raise TypeError(f"result must be a weightmem_fast.audit AuditResult; got {type(result).__name__}")
    if kind is not None and result.behaviour.kind != kind:
        raise ValueError(f"result: {figure} needs a {kind} audit; got a {result.behaviour.kind} audit")


def first_audited(result: AuditResult) -> GroupAudit | None:
    """The first generated group, else the first reference group, else None."""
    for role in ("generated", "reference"):
        for candidate in result.groups.values():
            if candidate.role == role:
                return candidate
    return None


def group(result: AuditResult, name: str | None, argument: str = "group") -> GroupAudit:
    """The group called ``name``; None means ``first_audited``."""
    if name is None:
        found = first_audited(result)
        if found is None:
            raise ValueError(f"{argument}: the audit has no generated or reference group; name one of "
                             f"{list(result.groups)}")
        return found
    if name not in result.groups:
        raise ValueError(f"{argument} must be one of the audit's groups {list(result.groups)}; got {name!r}")
    return result.groups[name]


def groups(result: AuditResult, names: Sequence[str] | None, default_roles: Iterable[str]) -> list[GroupAudit]:
    """The groups called ``names`` in that order, or (None) those whose role is in ``default_roles``, in audit
    order."""
    if names is None:
        roles = set(default_roles)
        chosen = [g for g in result.groups.values() if g.role in roles]
    else:
        if isinstance(names, str) or not len(names):
            raise ValueError(f"groups must be a non-empty list of group names (some of {list(result.groups)}); "
                             f"got {names!r}")
        chosen = [group(result, name, "groups") for name in names]
    if not chosen:
        raise ValueError(f"groups: the audit has no group with role in {sorted(set(default_roles))}; pass groups= "
                         f"with some of {list(result.groups)}")
    return chosen


def group_colors(result: AuditResult) -> dict[str, str]:
    """Every group's colour by name (see the module docstring)."""
    rank: dict[str, int] = {}
    colors = {}
    for name, g in result.groups.items():
        palette = _PALETTES[g.role]
        colors[name] = palette[rank.get(g.role, 0) % len(palette)]
        rank[g.role] = rank.get(g.role, 0) + 1
    return colors


def model_count(g: GroupAudit, n_models: int) -> int:
    """``n_models`` after checking 1 <= n_models <= the group's size."""
    if not isinstance(n_models, int) or not 1 <= n_models <= len(g):
        raise ValueError(f"n_models must be an int in [1, {len(g)}] (the size of group {g.name!r}); got {n_models!r}")
    return n_models


def positive(argument: str, value: int, minimum: int = 1) -> int:
    """``value`` after checking it is an int >= ``minimum``."""
    if not isinstance(value, int) or value < minimum:
        raise ValueError(f"{argument} must be an int >= {minimum}; got {value!r}")
    return value


def numpy(tensor: torch.Tensor) -> np.ndarray:
    """A tensor's values as a NumPy array (zero-copy for CPU tensors)."""
    return tensor.detach().cpu().numpy()


def random_subset(n: int, k: int, seed: int) -> np.ndarray:
    """min(k, n) distinct indices in [0, n), drawn without replacement from ``numpy.random.default_rng(seed)`` and
    sorted (study_spec §9 item 24): the same call always gives the same subset."""
    return np.sort(np.random.default_rng(seed).choice(n, size=min(k, n), replace=False))


def new_figure(width: float, height: float) -> Figure:
    """A figure with no pyplot state behind it (nothing leaks between figures; needs no display)."""
    return Figure(figsize=(width, height), layout="constrained")
