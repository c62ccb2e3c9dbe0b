"""Public ops: validate, allocate, dispatch (STYLE §4). The arithmetic lives in csrc/."""
from .distances import pairwise_distance
from .iou import error_masks, iou_matrix, max_iou, pack_masks, unpack_masks
from .neighbors import nearest

__all__ = ["error_masks", "iou_matrix", "max_iou", "nearest", "pack_masks", "pairwise_distance", "unpack_masks"]
