"""Public ops: validate, allocate, dispatch (STYLE §4). The arithmetic lives in csrc/."""
# ops.chamfer stays the module: the one-pair function `chamfer` is exported from the package root only.
from .assign import linear_assignment
from .chamfer import chamfer_matrix, nearest_shape
from .distances import pairwise_distance
from .iou import error_masks, iou_matrix, max_iou, pack_masks, unpack_masks
from .neighbors import nearest

from .shape_metrics import coverage, minimum_matching_distance, one_nn_accuracy, shape_metrics

__all__ = [
    "chamfer_matrix",
    "coverage",
    "error_masks",
    "iou_matrix",
    "linear_assignment",
    "max_iou",
    "minimum_matching_distance",
    "nearest",
    "nearest_shape",
    "one_nn_accuracy",
    "pack_masks",
    "pairwise_distance",
    "shape_metrics",
    "unpack_masks",
]
