"""Solid primitives with signed distances, the parts procedural shapes are built from (issue 6).

A primitive lives in its own frame: ``local = (p - center) @ rotation``, where the columns of ``rotation`` (an
orthonormal [3, 3]) are the local axes in world coordinates. ``size`` is the half-extent along each local axis,
for every kind, so bounding boxes and rescaling treat all kinds alike:

- ``"box"``: the box [-size, size].
- ``"ellipsoid"``: radii ``size``.
- ``"capsule"``: a cylinder of radius ``size[1]`` along local x with hemispherical caps, ``2 * size[0]`` long
  end to end (``size[0] >= size[1]``; ``size[2]`` must equal ``size[1]``).

Signed distances are negative inside. Box and capsule distances are exact. The ellipsoid's is Quilez's first-order
approximation ``k0 (k0 - 1) / k1``: exact on the surface (so meshes and occupancy are exact) and close near it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

KINDS = ("box", "ellipsoid", "capsule")
Vec3 = tuple[float, float, float]
Mat3 = tuple[Vec3, Vec3, Vec3]
IDENTITY: Mat3 = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def rotation(axis: str, angle: float) -> Mat3:
    """The right-handed rotation by ``angle`` radians about world axis ``axis`` ("x", "y" or "z")."""
    c, s = math.cos(angle), math.sin(angle)
    if axis == "x":
        return ((1.0, 0.0, 0.0), (0.0, c, -s), (0.0, s, c))
    if axis == "y":
        return ((c, 0.0, s), (0.0, 1.0, 0.0), (-s, 0.0, c))
    if axis == "z":
        return ((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0))
    raise ValueError(f"axis must be 'x', 'y' or 'z'; got {axis!r}")


@dataclass(frozen=True)
class Primitive:
    """One solid part: its kind, centre, half-extents along its local axes and orientation (module docstring).

    Raises:
        ValueError: an unknown kind, a non-positive size, or a capsule whose size is not (half-length >= radius,
            radius, radius).
    """

    kind: str
    center: Vec3
    size: Vec3
    rotation: Mat3 = IDENTITY

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Primitive kind must be one of {KINDS}; got {self.kind!r}")
        if min(self.size) <= 0:
            raise ValueError(f"Primitive size must be positive half-extents; got {self.size}")
        if self.kind == "capsule" and (self.size[1] != self.size[2] or self.size[0] < self.size[1]):
            raise ValueError(f"a capsule's size is (half-length, radius, radius) with half-length >= radius; got "
                             f"{self.size}")

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distance [P] of ``points`` [P, 3] (world coordinates; negative inside), in their dtype."""
        center = torch.tensor(self.center, dtype=points.dtype, device=points.device)
        frame = torch.tensor(self.rotation, dtype=points.dtype, device=points.device)
        local = (points - center) @ frame
        size = torch.tensor(self.size, dtype=points.dtype, device=points.device)
        if self.kind == "box":
            q = local.abs() - size
            return q.clamp_min(0).norm(dim=1) + q.amax(dim=1).clamp_max(0)
        if self.kind == "ellipsoid":
            # Points within 1e-12 of the centre would divide 0 by 0; clamping keeps them inside (negative).
            k0 = (local / size).norm(dim=1)
            k1 = (local / (size * size)).norm(dim=1).clamp_min(1e-12)
            return k0 * (k0 - 1) / k1
        half = size[0] - size[1]
        axial = local[:, 0] - local[:, 0].clamp(-half, half)
        return torch.stack([axial, local[:, 1], local[:, 2]], dim=1).norm(dim=1) - size[1]

    def half_extent(self) -> Vec3:
        """Half-extents of an axis-aligned box around the primitive (exact for axis-aligned parts, a bound when
        rotated)."""
        return tuple(sum(abs(self.rotation[i][j]) * self.size[j] for j in range(3)) for i in range(3))

    def scaled(self, offset: Vec3, scale: float) -> "Primitive":
        """The primitive moved by ``-offset`` and then scaled by ``scale`` about the origin."""
        center = tuple((c - o) * scale for c, o in zip(self.center, offset))
        return Primitive(self.kind, center, tuple(s * scale for s in self.size), self.rotation)
