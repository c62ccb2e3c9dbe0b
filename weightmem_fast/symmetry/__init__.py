"""Function-preserving transforms of flat weights (issue 9, study_spec §2.3, §2.9).

``analyze`` finds the chain of Linear / Conv2d layers behind a layout (with the template module, or from the
layout alone for plain chains); ``permute`` and ``scale`` move or rescale hidden units of many models at once;
``permutation_index`` gives the gather map itself; ``random_permutations`` and ``random_scales`` draw valid
transforms from a seeded generator, and ``permutation_augment`` adds randomly permuted copies to a training set
(HyperDiffusion's symmetry experiment; ``weightmem-fast ablate --method hd --factors permute`` retrains with
it). ``aligned_nearest`` and ``aligned_distance`` measure distances after aligning hidden units: exactly for
one-hidden-layer MLPs, by Git Re-Basin's ``weight_matching`` (an upper bound) for deeper chains. ``reconstruction_invariance`` is the study's invariance table for autoencoders.
"""
from .aligned import HiddenUnits, aligned_distance, aligned_nearest
from .analysis import analyze
from .chain import ChainLayer, ChainStructure
from .invariance import InvarianceTable, reconstruction_invariance
from .sampling import permutation_augment, random_permutations, random_scales
from .transforms import permutation_index, permute, scale
from .weight_matching import weight_matching

__all__ = ["ChainLayer", "ChainStructure", "HiddenUnits", "InvarianceTable", "aligned_distance", "aligned_nearest",
           "analyze", "permutation_augment", "permutation_index", "permute", "random_permutations", "random_scales",
           "reconstruction_invariance", "scale", "weight_matching"]
