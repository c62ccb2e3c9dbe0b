"""Procedural shapes with an analytic signed distance: ``make_shape(family, seed)`` (issue 6).

A shape is a union of primitives (``primitives.py``) drawn by a family (``families.py``), then centred and scaled
as HyperDiffusion normalises its meshes (study_spec §5.1): the centre of its bounding box goes to the origin and its
longest side to ``EXTENT`` = 0.95, so every shape lies inside [-0.475, 0.475]^3 within the unit cube
[-0.5, 0.5]^3 that fields are fitted and meshed on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .families import FAMILIES, Draws
from .primitives import Primitive

EXTENT = 0.95


@dataclass(frozen=True)
class Shape:
    """A union of primitives inside [-EXTENT / 2, EXTENT / 2]^3, and how it was drawn.

    Attributes:
        family: a key of ``FAMILIES``.
        seed: the shape's seed (the jitter's, when ``jitter`` > 0).
        base_seed: the seed of its proportions and structure (``seed`` unless it is a near-duplicate).
        jitter: the per-parameter change from the base shape, as a fraction of each parameter's range.
        primitives: the parts, normalised.
    """

    family: str
    seed: int
    base_seed: int
    jitter: float
    primitives: tuple[Primitive, ...]

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distance [P] of ``points`` [P, 3] to the union, negative inside: the minimum over the parts (exact
        outside the shape, a bound inside; zero exactly on the surface)."""
        return torch.stack([part.sdf(points) for part in self.primitives]).amin(dim=0)

    def occupancy(self, points: torch.Tensor) -> torch.Tensor:
        """[P] bool: ``points`` [P, 3] strictly inside the shape."""
        return self.sdf(points) < 0


def make_shape(family: str, seed: int, *, base_seed: int | None = None, jitter: float = 0.0) -> Shape:
    """A shape of ``family``, the same for the same arguments on every machine.

    Args:
        family: "airplane" or "chair" (``FAMILIES``).
        seed: the shape's seed. Different seeds give independent shapes.
        base_seed: draw the proportions and structure from this seed instead, and take only the jitter from
            ``seed``: ``make_shape(f, s, base_seed=b, jitter=0.02)`` is a near-duplicate of ``make_shape(f, b)``,
            the memorised copy an audit should flag.
        jitter: each continuous proportion moves by ``jitter`` times its range times a standard normal (clipped to
            the range); 0 keeps the base shape exactly.

    Raises:
        ValueError: an unknown family, a negative or non-integer seed, or a jitter outside [0, 1].
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}; got {family!r}")
    base_seed = seed if base_seed is None else base_seed
    for name, value in (("seed", seed), ("base_seed", base_seed)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0; got {value!r}")
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be a number in [0, 1] (a fraction of each parameter's range); got {jitter!r}")
    parts = FAMILIES[family](Draws(base_seed, seed, float(jitter)))
    lo = [min(p.center[i] - p.half_extent()[i] for p in parts) for i in range(3)]
    hi = [max(p.center[i] + p.half_extent()[i] for p in parts) for i in range(3)]
    middle = tuple((a + b) / 2 for a, b in zip(lo, hi))
    scale = EXTENT / max(b - a for a, b in zip(lo, hi))
    return Shape(family, seed, base_seed, float(jitter), tuple(p.scaled(middle, scale) for p in parts))


def make_shapes(family: str, seeds: Sequence[int] | int, **kwargs: Any) -> list[Shape]:
    """``make_shape(family, s, **kwargs)`` for every seed (an int n means seeds 0 .. n - 1)."""
    seeds = range(seeds) if isinstance(seeds, int) and not isinstance(seeds, bool) else seeds
    return [make_shape(family, s, **kwargs) for s in seeds]
