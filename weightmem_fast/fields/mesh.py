"""From occupancy networks (or analytic shapes) to surface point clouds, as HyperDiffusion evaluates shapes
(issue 6; study_spec §5.3, §9 items 13-15).

Per model: its logits on a grid over [-0.5, 0.5]^3 (``occupancy_logits``, batched over models and chunked), the
isosurface at ``level`` (``marching.isosurface``), and ``n_points`` area-weighted samples on it. The study meshes a
356^3 grid at level logit(0.8) = ln 4 ≈ 1.386 (``STUDY_LEVEL``); the defaults here are a 64^3 grid at level 0, the
decision boundary the fields are fitted to. The study then normalises every cloud (``normalize_clouds``) before
Chamfer distances.

A field may have no surface: every grid value below the level ("empty"), every one above ("full"), NaN/Inf values
("nonfinite", e.g. from broken generated weights), or a surface of zero area ("degenerate"). Such models are
reported in ``SurfacePoints.status`` and get NaN points, never an exception, so a batch of generated models is
meshed in one call and the failures are counted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from ..layout import ParamLayout
from .marching import isosurface, sample_triangles, triangle_areas
from .occupancy import OccupancyMLP, check_weights, occupancy_logits
from .shapes import Shape

STUDY_LEVEL = math.log(4.0)  # logit(0.8), HyperDiffusion's marching-cubes level
# Grid values (models x grid points) evaluated at once by field_to_points.
_VOLUME_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class SurfacePoints:
    """Point clouds on the surfaces of N fields, and which fields have none.

    Attributes:
        points: [N, n_points, 3] float32; rows of fields without a surface are NaN (so they cannot enter a Chamfer
            distance unnoticed: ``chamfer_matrix`` rejects NaN).
        status: N strings: "ok", or why the field has no surface: "empty", "full", "nonfinite" or "degenerate"
            (module docstring).
    """

    points: torch.Tensor
    status: tuple[str, ...]

    @property
    def ok(self) -> torch.Tensor:
        """[N] bool, the fields with a surface (``points[ok]`` are the usable clouds)."""
        return torch.tensor([s == "ok" for s in self.status], dtype=torch.bool, device=self.points.device)

    @property
    def failures(self) -> dict[int, str]:
        """Row -> status of every field without a surface."""
        return {row: s for row, s in enumerate(self.status) if s != "ok"}


def grid_points(resolution: int, lo: float = -0.5, hi: float = 0.5, *,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """[R^3, 3] float32 points ``lo + (hi - lo) * (i, j, k) / (R - 1)`` in (i, j, k) order, k fastest, so
    ``values.view(R, R, R)`` is the volume ``marching.isosurface`` takes (study_spec §9 item 14, without the
    reference's off-grid quirk)."""
    axis = torch.linspace(lo, hi, resolution, device=device)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)


def _surface(volume: torch.Tensor, level: float, n_points: int, rng: np.random.Generator,
             out: torch.Tensor) -> str:
    """Writes ``n_points`` surface samples of one volume [R, R, R] into ``out`` [n_points, 3] and returns "ok", or
    returns why there is no surface (``out`` untouched)."""
    if not bool(torch.isfinite(volume).all()):
        return "nonfinite"
    inside = int((volume > level).sum())
    if inside == 0:
        return "empty"
    if inside == volume.numel():
        return "full"
    triangles = isosurface(volume, level)
    if not bool(triangle_areas(triangles).sum() > 0):
        return "degenerate"
    out.copy_(sample_triangles(triangles, n_points, rng))
    return "ok"


def _points_of_volumes(count: int, volumes: Callable[[int, int], torch.Tensor], chunk: int, resolution: int,
                       level: float, n_points: int, seed: int, device: torch.device) -> SurfacePoints:
    """Samples the surfaces of ``count`` volumes, produced ``chunk`` at a time by ``volumes(start, stop)`` as
    [stop - start, R^3]; volume i's randomness is ``np.random.default_rng([seed, i])``, whatever the chunking."""
    points = torch.full((count, n_points, 3), float("nan"), dtype=torch.float32, device=device)
    status = []
    for start in range(0, count, chunk):
        block = volumes(start, min(start + chunk, count))
        for offset, values in enumerate(block):
            row = start + offset
            volume = values.view(resolution, resolution, resolution)
            status.append(_surface(volume, level, n_points, np.random.default_rng([seed, row]), points[row]))
    return SurfacePoints(points, tuple(status))


def _check_sampling(resolution: object, n_points: object, seed: object, level: object) -> None:
    for name, value, minimum in (("resolution", resolution, 2), ("n_points", n_points, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not math.isfinite(level):
        raise ValueError(f"level must be a finite number (an occupancy logit); got {level!r}")


def field_to_points(weights: torch.Tensor, layout: ParamLayout, resolution: int = 64, n_points: int = 2048,
                    seed: int = 0, *, level: float = 0.0) -> SurfacePoints:
    """Surface point clouds of N occupancy networks (module docstring).

    Args:
        weights: [N, D] float32 flat OccupancyMLP weights (e.g. ``fit_fields(...).weights`` or generated ones), CPU
            or CUDA; the grid, meshes and points stay on that device.
        layout: their layout (``zoo.layout``); it fixes the architecture (``OccupancyMLP.from_layout``).
        resolution: R, grid points per axis over [-0.5, 0.5] (356 in the study).
        n_points: samples per surface (2,048 in the study).
        seed: model i draws its samples from ``np.random.default_rng([seed, i])``: the same clouds on every device
            and for any chunking.
        level: the iso value of the logit; inside is ``logit > level``. ``STUDY_LEVEL`` reproduces the study.

    Returns:
        SurfacePoints: clouds [N, n_points, 3] in the fields' coordinates (not normalised), and a status per model.

    Raises:
        TypeError / ValueError: weights not [N, layout.size] float32, a layout that is not an OccupancyMLP's, a
            resolution < 2, n_points < 1, a negative seed, a non-finite level.
    """
    _check_sampling(resolution, n_points, seed, level)
    OccupancyMLP.from_layout(layout)  # validates the layout before any work
    weights = check_weights(weights, layout)
    grid = grid_points(resolution, device=weights.device)
    chunk = max(1, _VOLUME_ELEMENTS // grid.shape[0])
    return _points_of_volumes(weights.shape[0], lambda a, b: occupancy_logits(weights[a:b], layout, grid), chunk,
                              resolution, float(level), n_points, seed, weights.device)


def shape_points(shapes: Sequence[Shape], resolution: int = 128, n_points: int = 2048, seed: int = 0) -> SurfacePoints:
    """Ground-truth surface clouds of procedural shapes: the zero level set of ``-shape.sdf`` on a grid, meshed and
    sampled exactly as ``field_to_points`` meshes fields (so fields and shapes are compared like for like).

    Args:
        shapes: N shapes from ``make_shape``.
        resolution: grid points per axis over [-0.5, 0.5]; parts thinner than a grid step may be lost.
        n_points: samples per surface.
        seed: shape i draws its samples from ``np.random.default_rng([seed, i])``.

    Returns:
        SurfacePoints with every status "ok" for shapes from ``make_shape`` at resolution >= 32.

    Raises:
        TypeError: an element that is not a Shape. ValueError: as ``field_to_points`` for the other arguments.
    """
    _check_sampling(resolution, n_points, seed, 0.0)
    shapes = list(shapes)
    for index, shape in enumerate(shapes):
        if not isinstance(shape, Shape):
            raise TypeError(f"shapes[{index}] must be a Shape (from make_shape); got {type(shape).__name__}")
    grid = grid_points(resolution)
    return _points_of_volumes(len(shapes), lambda a, b: torch.stack([-s.sdf(grid) for s in shapes[a:b]]), 1,
                              resolution, 0.0, n_points, seed, grid.device)


def normalize_clouds(points: torch.Tensor) -> torch.Tensor:
    """HyperDiffusion's cloud normalisation (study_spec §2.5, §9 item 15): subtract each cloud's mean point, then
    divide by the unbiased standard deviation of all its 3P coordinates.

    Args:
        points: [N, P, 3] floating clouds, P >= 2.

    Returns:
        [N, P, 3] normalised clouds (same dtype and device).
    """
    if not isinstance(points, torch.Tensor) or points.dim() != 3 or points.shape[2] != 3 or points.shape[1] < 2:
        got = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"points must be a tensor [N, P, 3] with P >= 2; got {got}")
    centred = points - points.mean(dim=1, keepdim=True)
    return centred / centred.flatten(1).std(dim=1).view(-1, 1, 1)
