"""Training points for fitting a field to a shape, as HyperDiffusion samples them (issue 6; study_spec §5.1).

Half near the surface: area-weighted points on the shape's surface (its signed distance meshed on a grid, as
``shape_points``) moved by Gaussian noise of standard deviation ``noise`` (the study: 0.01). Half uniform in
[-0.5, 0.5]^3. Labels are the shape's exact occupancy at the final points, never the mesh's.
"""
from __future__ import annotations

import numpy as np
import torch

from .marching import isosurface, sample_triangles
from .mesh import grid_points
from .shapes import Shape

# Grid points per axis of the mesh the near-surface points start from; its error (a fraction of a step, 1/63) is
# far below the noise, and labels are exact anyway.
_MESH_RESOLUTION = 64


def training_points(shape: Shape, n_surface: int, n_uniform: int, rng: np.random.Generator,
                    noise: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """Points and occupancy labels for one shape (module docstring), drawn from ``rng`` alone.

    Returns:
        points [n_surface + n_uniform, 3] float32 (near-surface first) and labels [same] float32 (1 inside).
    """
    grid = grid_points(_MESH_RESOLUTION)
    volume = -shape.sdf(grid).view(_MESH_RESOLUTION, _MESH_RESOLUTION, _MESH_RESOLUTION)
    near = sample_triangles(isosurface(volume, 0.0), n_surface, rng)
    near = near + torch.from_numpy(rng.normal(0.0, noise, (n_surface, 3))).float()
    uniform = torch.from_numpy(rng.random((n_uniform, 3))).float() - 0.5
    points = torch.cat([near, uniform])
    return points, shape.occupancy(points).float()
