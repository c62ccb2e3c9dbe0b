"""Function-preserving transforms of flat weights (issue 9, study_spec §2.3, §2.9).

``analyze`` finds the chain of Linear / Conv2d layers behind a layout (with the template module, or from the
layout alone for plain chains); ``permute`` and ``scale`` move or rescale hidden units of many models at once;
``permutation_index`` gives the gather map itself; ``random_permutations`` and ``random_scales`` draw valid
transforms from a seeded generator. ``aligned_nearest`` and ``aligned_distance`` measure distances between
one-hidden-layer MLPs after aligning their hidden units (exact).
"""
from .aligned import HiddenUnits, aligned_distance, aligned_nearest
from .analysis import analyze
from .chain import ChainLayer, ChainStructure
from .sampling import random_permutations, random_scales
from .transforms import permutation_index, permute, scale
from .invariance import InvarianceTable, reconstruction_invariance

__all__ = ["ChainLayer", "ChainStructure", "HiddenUnits", "aligned_distance", "aligned_nearest", "analyze",
           "permutation_index", "permute", "random_permutations", "random_scales", "scale",
           "InvarianceTable", "reconstruction_invariance"]
