"""Procedural shape families: random proportions, analytic parts (issue 6).

A family is a function from ``Draws`` to a list of primitives in raw units (``make_shape`` then centres and scales
them). Axes: x is the shape's length (an airplane's nose points to +x, a chair faces +x), y its width, z up.

``Draws`` holds the randomness. Every continuous parameter is drawn from the base seed's stream and then moved by
``jitter`` times its range times a standard normal from the shape seed's stream, clipped into its range; discrete
choices (engines or not, arm rests or not, part kinds) come from the base seed alone. So shapes of one base seed
share their structure and differ by about ``jitter`` in every proportion: near-duplicates on purpose.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .primitives import Primitive, Vec3, rotation


class Draws:
    """The parameters of one shape (module docstring).

    Args:
        base_seed: seeds the parameter values and the discrete choices.
        seed: seeds the jitter (independent of ``base_seed``'s stream even when the two are equal).
        jitter: relative size of the per-parameter change, as a fraction of each parameter's range; 0 gives
            exactly the base seed's shape.
    """

    def __init__(self, base_seed: int, seed: int, jitter: float) -> None:
        self._values = np.random.default_rng(base_seed)
        self._noise = np.random.default_rng([seed, 1])
        self._jitter = jitter

    def uniform(self, lo: float, hi: float) -> float:
        """A value in [lo, hi]: the base draw plus the jitter, clipped."""
        value = self._values.uniform(lo, hi) + self._jitter * (hi - lo) * self._noise.standard_normal()
        return float(min(max(value, lo), hi))

    def choice(self, options: int) -> int:
        """One of 0 .. options - 1, from the base seed alone."""
        return int(self._values.integers(options))


def _wing_pair(root: Vec3, span: float, chord: float, thickness: float, sweep: float) -> list[Primitive]:
    """Two mirrored flat boxes from ``root`` (on the x-z plane) to y = +-span / 2, swept back (to -x) by ``sweep``
    radians."""
    half_length = span / (4 * math.cos(sweep))
    x = root[0] - span / 4 * math.tan(sweep)
    return [Primitive("box", (x, side * span / 4, root[2]), (chord / 2, half_length, thickness / 2),
                      rotation("z", side * sweep))
            for side in (1.0, -1.0)]


def airplane(draw: Draws) -> list[Primitive]:
    """Fuselage (capsule or ellipsoid), swept main wings, tail plane, fin, and two or no engines."""
    length, radius = draw.uniform(0.8, 1.0), draw.uniform(0.045, 0.075)
    body = "capsule" if draw.choice(2) == 0 else "ellipsoid"
    parts = [Primitive(body, (0.0, 0.0, 0.0), (length / 2, radius, radius))]
    span, chord = draw.uniform(0.7, 1.1), draw.uniform(0.1, 0.2)
    thickness, sweep = draw.uniform(0.025, 0.04), math.radians(draw.uniform(0.0, 35.0))
    wing_x, wing_z = draw.uniform(-0.1, 0.1), radius * draw.uniform(-0.6, 0.3)
    parts += _wing_pair((wing_x, 0.0, wing_z), span, chord, thickness, sweep)
    tail_span, tail_chord = draw.uniform(0.25, 0.4), draw.uniform(0.06, 0.1)
    tail_x = -length / 2 + tail_chord
    parts += _wing_pair((tail_x, 0.0, radius * draw.uniform(0.0, 0.5)), tail_span, tail_chord, thickness, sweep)
    fin_height, fin_chord = draw.uniform(0.1, 0.2), draw.uniform(0.08, 0.14)
    lean = math.radians(draw.uniform(0.0, 30.0))
    fin_base = (tail_x, 0.0, radius * 0.5)
    parts.append(Primitive("box", (fin_base[0] - fin_height / 2 * math.sin(lean), 0.0,
                                   fin_base[2] + fin_height / 2 * math.cos(lean)),
                           (fin_chord / 2, thickness / 2, fin_height / 2), rotation("y", -lean)))
    if draw.choice(2) == 0:
        engine_radius, engine_length = draw.uniform(0.025, 0.04), draw.uniform(0.12, 0.2)
        offset = span / 2 * draw.uniform(0.25, 0.5)
        x = wing_x - offset * math.tan(sweep) + chord * 0.3
        z = wing_z - thickness / 2 - engine_radius * 0.8
        parts += [Primitive("capsule", (x, side * offset, z), (engine_length / 2, engine_radius, engine_radius))
                  for side in (1.0, -1.0)]
    return parts


def chair(draw: Draws) -> list[Primitive]:
    """Seat, four legs (boxes or round), a backrest leaning back, and two or no arm rests."""
    depth, width = draw.uniform(0.4, 0.6), draw.uniform(0.4, 0.6)
    seat_height, seat_thickness = draw.uniform(0.35, 0.5), draw.uniform(0.04, 0.08)
    leg, inset = draw.uniform(0.04, 0.07), draw.uniform(0.0, 0.05)
    top = seat_height + seat_thickness
    parts = [Primitive("box", (0.0, 0.0, seat_height + seat_thickness / 2),
                       (depth / 2, width / 2, seat_thickness / 2))]
    round_legs = draw.choice(2) == 0
    for sx in (1.0, -1.0):
        for sy in (1.0, -1.0):
            center = (sx * (depth / 2 - inset - leg / 2), sy * (width / 2 - inset - leg / 2), seat_height / 2)
            if round_legs:  # a capsule lies along its local x: turn it upright
                parts.append(Primitive("capsule", center, (seat_height / 2, leg / 2, leg / 2),
                                       rotation("y", -math.pi / 2)))
            else:
                parts.append(Primitive("box", center, (leg / 2, leg / 2, seat_height / 2)))
    back_height, back_thickness = draw.uniform(0.3, 0.6), draw.uniform(0.04, 0.07)
    tilt = math.radians(draw.uniform(0.0, 15.0))
    parts.append(Primitive("box", (-depth / 2 + back_thickness / 2 - back_height / 2 * math.sin(tilt), 0.0,
                                   top + back_height / 2 * math.cos(tilt)),
                           (back_thickness / 2, width / 2, back_height / 2), rotation("y", -tilt)))
    if draw.choice(2) == 0:
        arm, arm_height = draw.uniform(0.04, 0.06), draw.uniform(0.15, 0.25)
        for side in (1.0, -1.0):
            y = side * (width / 2 - arm / 2)
            parts.append(Primitive("box", (0.0, y, top + arm_height), (depth / 2, arm / 2, arm / 2)))
            parts.append(Primitive("box", (depth / 2 - arm / 2, y, top + arm_height / 2),
                                   (arm / 2, arm / 2, arm_height / 2)))
    return parts


FAMILIES: dict[str, Callable[[Draws], list[Primitive]]] = {"airplane": airplane, "chair": chair}
