"""Neural-field zoos (issue 6): procedural shapes with analytic signed distances, HyperDiffusion's occupancy
networks, batched fitting of one network per shape into a zoo, and meshing of any occupancy weights into the point
clouds that ``weightmem_fast.chamfer_matrix`` / ``nearest_shape`` compare::

    from weightmem_fast import fields
    shapes = fields.make_shapes("airplane", 200)              # seeds 0..199, inside [-0.5, 0.5]^3
    zoo = fields.fit_fields(shapes)                           # Zoo [200, 10177]; metadata: shape seed, iou, ...
    clouds = fields.field_to_points(zoo.weights, zoo.layout)  # SurfacePoints: [200, 2048, 3] + status per row
    truth = fields.shape_points(shapes)                       # ground-truth clouds of the shapes
"""
from .families import FAMILIES
from .fit import fit_fields, occupancy_iou
from .marching import isosurface, sample_triangles
from .mesh import STUDY_LEVEL, SurfacePoints, field_to_points, grid_points, normalize_clouds, shape_points
from .occupancy import OccupancyMLP, PositionalEncoding, occupancy_logits
from .primitives import Primitive
from .samples import training_points
from .shapes import Shape, make_shape, make_shapes

__all__ = ["FAMILIES", "STUDY_LEVEL", "OccupancyMLP", "PositionalEncoding", "Primitive", "Shape", "SurfacePoints",
           "field_to_points", "fit_fields", "grid_points", "isosurface", "make_shape", "make_shapes",
           "normalize_clouds", "occupancy_iou", "occupancy_logits", "sample_triangles", "shape_points",
           "training_points"]
