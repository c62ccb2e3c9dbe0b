"""Pure-PyTorch twins of the compiled ops (STYLE §5), plus the study's own methods as benchmark baselines.

Each twin mirrors its public op (same module name, function name and signature, minus ``backend``) and is
obviously right rather than fast: float64, direct differences, explicit tie rules, chunked over rows so it also
works as the fallback at real sizes.
"""
from .assign import linear_assignment, scipy_linear_assignment
from .chamfer import chamfer_matrix, nearest_shape  # reference.chamfer stays the module
from .distances import pairwise_distance
from .eval import evaluate
from .iou import error_masks, iou_matrix, max_iou, pack_masks, paper_max_similarity, unpack_masks
from .neighbors import nearest, paper_min_distance

__all__ = [
    "chamfer_matrix",
    "error_masks",
    "evaluate",
    "iou_matrix",
    "linear_assignment",
    "max_iou",
    "nearest",
    "nearest_shape",
    "pack_masks",
    "pairwise_distance",
    "paper_max_similarity",
    "paper_min_distance",
    "scipy_linear_assignment",
    "unpack_masks",
]
