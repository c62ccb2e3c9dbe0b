"""Pure-PyTorch twins of the compiled ops (STYLE §5), plus the study's own methods as benchmark baselines.

Each twin mirrors its public op (same module name, function name and signature, minus ``backend``) and is
obviously right rather than fast: float64, direct differences, explicit tie rules, chunked over rows so it also
works as the fallback at real sizes.
"""
from .distances import pairwise_distance
from .neighbors import nearest, paper_min_distance

__all__ = ["nearest", "pairwise_distance", "paper_min_distance"]
