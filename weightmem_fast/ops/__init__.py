"""Public ops: validate, allocate, dispatch (STYLE §4). The arithmetic lives in csrc/."""
from .distances import pairwise_distance
from .neighbors import nearest

__all__ = ["nearest", "pairwise_distance"]
