"""The ablation's factors and their levels (study_spec §2.10, §2.9; issue 11): each level is one change to a
generator's config (or to its training data) relative to the config the method's demo recipe fits.

- **epochs**: "epochs 33.3 %", "epochs 50 %": every optimiser stage's ``steps`` (warm-up capped to fit).
- **size**: "+dim & head", "+layer", "-dim & head", "-layer": heads +- a quarter (at least one) with the width (and
  HR's feed-forward width) scaled alike, so the head size stays; blocks +- 1.
- **dropout**: "+10 % dropout", "+20 % dropout": ``dropout`` + 0.1 or + 0.2.
- **noise**: "+Gaussian noise": ``weight_noise`` = 0.1 (fresh Gaussian noise on the training weights each step,
  std 0.1 x theirs); P-diff: its parameter-noise augmentation ``input_noise`` x 10.
- **data**: "data 25 %", "data 50 %", "data 75 %": the generator trains on the first part of its zoo
  (``RecipeOptions.data_fraction``) and is audited against that part.
- **permute**: "permutation x2", "x4", "x8": HyperDiffusion's ``permutation_augment`` (the study's symmetry
  experiment).

The study ablates HR, G.pt and HyperDiffusion; P-diff gets the factors its config has (epochs, noise, data). A level
that cannot apply to the base config (e.g. "-layer" of a one-block transformer) is left out with a note.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from ..generators.config import Config
from ..generators.training import Optim

METHODS = ("hr", "gpt", "hd", "pdiff")

FACTORS: dict[str, str] = {
    "epochs": "training length: 33.3 % and 50 % of the optimiser steps",
    "size": "model size: +-dim & head, +-layer",
    "dropout": "regularisation: +10 % and +20 % dropout",
    "noise": "regularisation: Gaussian noise on the training weights",
    "data": "training data: 25 %, 50 % and 75 % of the zoo",
    "permute": "symmetry: permutation augmentation x2, x4, x8 (HyperDiffusion)",
}

# (width field, heads field, depth field, fields scaled with the width) of each transformer.
_ARCHITECTURE = {"hr": ("d_model", "heads", "layers", ("d_ff",)), "gpt": ("width", "heads", "depth", ()),
                 "hd": ("width", "heads", "depth", ())}
EPOCH_FRACTIONS = {"epochs 33.3 %": 1 / 3, "epochs 50 %": 1 / 2}
DROPOUT_STEPS = {"+10 % dropout": 0.1, "+20 % dropout": 0.2}
WEIGHT_NOISE = 0.1
INPUT_NOISE_FACTOR = 10
DATA_FRACTIONS = {"data 25 %": 0.25, "data 50 %": 0.5, "data 75 %": 0.75}
PERMUTATION_FACTORS = {"permutation x2": 2, "permutation x4": 4, "permutation x8": 8}


@dataclasses.dataclass(frozen=True)
class Level:
    """One row of the ablation table.

    Attributes:
        factor: its factor ("default" for the unchanged config).
        name: the row label ("epochs 33.3 %", "+layer", ...).
        changes: the config changes, as ``Config.replace`` keyword arguments (nested dicts for optimiser stages).
        data_fraction: the share of the zoo the generator trains on.
    """

    factor: str
    name: str
    changes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    data_fraction: float = 1.0

    def apply(self, config: Config) -> Config:
        """``config`` with this level's changes."""
        return config.replace(**self.changes) if self.changes else config


DEFAULT = Level("default", "default")


def applicable(method: str, config: Config) -> list[str]:
    """The factors that apply to ``method`` with base config ``config``, in ``FACTORS`` order: epochs and data
    always; size for the transformers; dropout, noise and permute when the config has their field."""
    names = {field.name for field in dataclasses.fields(config)}  # type: ignore[arg-type]
    applies = {"size": method in _ARCHITECTURE, "dropout": "dropout" in names,
               "noise": bool({"weight_noise", "input_noise"} & names), "permute": "permutation_augment" in names}
    return [factor for factor in FACTORS if applies.get(factor, True)]


def levels(method: str, factor: str, config: Config) -> tuple[list[Level], list[str]]:
    """The levels of ``factor`` for ``method`` whose recipe fits ``config``, and notes on levels left out.

    Raises:
        ValueError: an unknown method or factor, or a factor that does not apply to the method (the message lists
            the valid choices).
    """
    check_method(method)
    valid = applicable(method, config)
    if factor not in FACTORS:
        raise ValueError(f"unknown factor {factor!r}; factors: {list(FACTORS)} ({method} takes {valid})")
    if factor not in valid:
        raise ValueError(f"factor {factor!r} does not apply to {method} (its config has no field for it); "
                         f"{method} takes {valid}")
    return _BUILDERS[factor](method, config)


def check_method(method: str) -> None:
    """Raises ValueError naming the valid methods unless ``method`` is one."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; methods: {list(METHODS)}")


def _epochs(method: str, config: Config) -> tuple[list[Level], list[str]]:
    stages = [field.name for field in dataclasses.fields(config)  # type: ignore[arg-type]
              if isinstance(getattr(config, field.name), Optim)]

    def shorter(optim: Optim, fraction: float) -> dict[str, int]:
        steps = max(1, round(optim.steps * fraction))
        return {"steps": steps, "warmup_steps": min(optim.warmup_steps, steps - 1)}

    return [Level("epochs", name, {stage: shorter(getattr(config, stage), fraction) for stage in stages})
            for name, fraction in EPOCH_FRACTIONS.items()], []


def _size(method: str, config: Config) -> tuple[list[Level], list[str]]:
    width_field, heads_field, depth_field, scaled = _ARCHITECTURE[method]
    heads, depth = getattr(config, heads_field), getattr(config, depth_field)
    step = max(1, round(heads / 4))
    out, notes = [], []

    def wider(new_heads: int) -> dict[str, int]:
        # The head size stays: every width-like field scales by new_heads / heads.
        return {heads_field: new_heads, **{name: getattr(config, name) * new_heads // heads
                                           for name in (width_field, *scaled)}}

    out.append(Level("size", "+dim & head", wider(heads + step)))
    out.append(Level("size", "+layer", {depth_field: depth + 1}))
    if heads - step >= 1:
        out.append(Level("size", "-dim & head", wider(heads - step)))
    else:
        notes.append(f"-dim & head left out: {method} has {heads} head(s)")
    if depth >= 2:
        out.append(Level("size", "-layer", {depth_field: depth - 1}))
    else:
        notes.append(f"-layer left out: {method}'s config has {depth} block(s) ({depth_field} = {depth})")
    return out, notes


def _dropout(method: str, config: Config) -> tuple[list[Level], list[str]]:
    return [Level("dropout", name, {"dropout": round(config.dropout + step, 6)})  # type: ignore[attr-defined]
            for name, step in DROPOUT_STEPS.items()], []


def _noise(method: str, config: Config) -> tuple[list[Level], list[str]]:
    if hasattr(config, "weight_noise"):
        return [Level("noise", "+Gaussian noise", {"weight_noise": WEIGHT_NOISE})], []
    noise = config.input_noise * INPUT_NOISE_FACTOR  # type: ignore[attr-defined]
    return [Level("noise", "+Gaussian noise", {"input_noise": noise})], []


def _data(method: str, config: Config) -> tuple[list[Level], list[str]]:
    return [Level("data", name, data_fraction=fraction) for name, fraction in DATA_FRACTIONS.items()], []


def _permute(method: str, config: Config) -> tuple[list[Level], list[str]]:
    return [Level("permute", name, {"permutation_augment": factor})
            for name, factor in PERMUTATION_FACTORS.items()], []


_BUILDERS: dict[str, Callable[[str, Config], tuple[list[Level], list[str]]]] = {
    "epochs": _epochs, "size": _size, "dropout": _dropout, "noise": _noise, "data": _data, "permute": _permute}
