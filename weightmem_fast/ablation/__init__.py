"""``weightmem_fast.ablate`` and ``weightmem-fast ablate``: why do generators memorise? The study's
modeling-factor table and data-scaling study as one command (issue 11; study_spec §2.10, §7).

Retrain one of the four generators with one factor changed at a time (training length, model size, dropout,
noise on the training weights, the amount of training data, HyperDiffusion's permutation augmentation), sample,
audit every sample set against the same training set and baselines, and report accuracy (or MMD) against novelty::

    import weightmem_fast as wmf

    result = wmf.ablate("hr", ["epochs", "dropout"], seeds=[0, 1], out="ablation_hr/")   # ablation_hr/report.html
    for row in result.rows():
        print(row["level"], row["quality"], row["mean_min_l2"])

``factors`` defines the levels, ``run`` the cells (fits and audits are cached, so a run resumes), ``result`` the
table and its files, ``figures`` and ``report`` the page.
"""
from .factors import FACTORS, METHODS, Level, applicable, levels
from .result import AblationResult, Cell, TrainingRow
from .run import ablate

__all__ = ["FACTORS", "METHODS", "AblationResult", "Cell", "Level", "TrainingRow", "ablate", "applicable", "levels"]
