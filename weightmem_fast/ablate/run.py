"""``ablate``: retrain one generator with one factor changed at a time, sample, audit every sample set against the
same training set and baselines, and tabulate accuracy (or MMD) against novelty (issue 11; study_spec §2.10)."""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from ..audit import AuditResult, audit
from ..audit.core import versions
from ..demo.recipes import RECIPES, Prepared, RecipeOptions, base_config
from ..demo.stages import Fitter, cached_audit, digest
from .factors import DEFAULT, Level, applicable, check_method, levels
from .result import AblationResult, Cell, TrainingRow


def ablate(method: str, factors: Sequence[str] | None = None, *, seeds: Sequence[int] = (0, 1), quick: bool = False,
           out: str | os.PathLike | None = None, zoo_options: Mapping[str, Any] | None = None,
           cache_dir: str | os.PathLike | None = None, progress: bool = True) -> AblationResult:
    """The study's modeling-factor table (and data-scaling study) for one of the four generators.

    Every (level, seed) cell fits the method's demo recipe with that level's change and that seed (the config's
    seed and the sampling seed), samples as the demo does, and is audited with the other cells of the same training
    set in one ``audit`` call, so all share the training group, the baselines and the noise frontier. The data
    levels train on part of the zoo and are audited against that part. Fits and audits are cached (``cache_dir``),
    so an interrupted ablation resumes with the cells it finished; the "default" cell with seed 0 is the demo's
    own fit.

    Args:
        method: "hr", "gpt", "hd" or "pdiff".
        factors: any of ``factors.FACTORS`` that apply to the method (``factors.applicable``); None: all of them.
        seeds: the fits of every level (at least one; mean and std over them).
        quick: the demo's smoke profile (tiny zoos and fits, for CI).
        out: when given, the directory that gets ``report.html`` (the table, its figures and the data-scaling
            plot), ``ablation.json``, ``ablation.csv`` and the audits' own report in ``audits/``.
        zoo_options: settings of the method's demo zoo (``RecipeOptions.zoo_options``), e.g. {"n_runs": 128}.
        cache_dir: where zoos, fits and audits are cached; default ``zoo.default_cache_dir()``.
        progress: a progress bar over the cells (and the fits' and audits' own bars).

    Returns:
        AblationResult (``rows``, ``to_json``, ``to_csv``, ``save``).

    Raises:
        ValueError: an unknown method or factor, a factor that does not apply to the method, repeated factors, or
            seeds that are not distinct ints (messages list the valid choices).
    """
    check_method(method)
    base = base_config(method, quick)
    factors = list(applicable(method, base) if factors is None else factors)
    if not factors or len(set(factors)) != len(factors) or not all(isinstance(f, str) for f in factors):
        raise ValueError(f"factors must be distinct names from {applicable(method, base)}; got {factors}")
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or any(isinstance(s, bool) or not isinstance(s, int)
                                                          for s in seeds):
        raise ValueError(f"seeds must be a non-empty sequence of distinct ints; got {seeds}")
    plan, notes = [DEFAULT], []
    for factor in factors:
        planned, left_out = levels(method, factor, base)
        plan += planned
        notes += left_out

    studies: dict[float, _Study] = {}
    cells: list[tuple[Level, int, str, Fitter]] = []
    bar = tqdm(total=len(plan) * len(seeds), desc=f"ablate {method}", disable=not progress)
    for level in plan:
        for seed in seeds:
            bar.set_postfix_str(f"{level.name}, seed {seed}")
            fitter = Fitter(cache_dir, progress, adjust=lambda config, level=level, seed=seed:
                            level.apply(config).replace(seed=seed))
            options = RecipeOptions(quick=quick, seed=seed, zoo_options=dict(zoo_options or {}),
                                    data_fraction=level.data_fraction, panels=False)
            prepared = RECIPES[method](fitter, options)
            group = f"{level.name} (seed {seed})"
            studies.setdefault(level.data_fraction, _Study(prepared)).groups[group] = prepared.generated
            cells.append((level, seed, group, fitter))
            bar.update()
    bar.close()

    audits = {fraction: study.audit(method, quick, cache_dir, progress) for fraction, study in studies.items()}
    result = _result(method, cells, audits, plan, notes, {
        "method": method, "factors": factors, "seeds": seeds, "quick": quick, "zoo_options": dict(zoo_options or {}),
        "base_config": base.to_dict(), "torch_threads": torch.get_num_threads()})
    if out is not None:
        from .report import write_ablation_report

        write_ablation_report(result, out, {_training_level(plan, fraction): audit_result
                                            for fraction, audit_result in audits.items()})
    return result


class _Study:
    """The cells that share one training set: the first cell's training group, task and audit options, and every
    cell's samples by group name."""

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.groups: dict[str, torch.Tensor] = {}

    def audit(self, method: str, quick: bool, cache_dir: str | os.PathLike | None, progress: bool) -> AuditResult:
        p = self.prepared
        options = {"seed": 0, **p.audit_options}
        key = {"ablate": method, "quick": quick, "options": options, "training": digest(p.training),
               "generated": {name: digest(weights) for name, weights in self.groups.items()},
               "task": p.task.settings()}
        return cached_audit(key, cache_dir, lambda: audit(self.groups, p.training, p.task, progress=progress,
                                                          **options))


def _training_level(plan: list[Level], fraction: float) -> str:
    """The name of a training set: "default" for the whole zoo, else its data level's."""
    return "default" if fraction == 1 else next(level.name for level in plan if level.data_fraction == fraction)


def _result(method: str, cells: list[tuple[Level, int, str, Fitter]], audits: dict[float, AuditResult],
            plan: list[Level], notes: list[str], settings: dict[str, Any]) -> AblationResult:
    field = next(iter(audits.values())).behaviour.kind == "field"

    def quality(result: AuditResult, group: str) -> tuple[float, float]:
        if field:
            metrics = result.group_metrics.get(group, {})
            return metrics.get("mmd", math.nan), metrics.get("cov", math.nan)
        return result.groups[group].summary()["mean_accuracy"], math.nan

    out = []
    for level, seed, group, fitter in cells:
        result = audits[level.data_fraction]
        verdict = result.verdicts[group]
        value, coverage = quality(result, group)
        out.append(Cell(level.factor, level.name, seed, value, coverage,
                        result.groups[group].summary()["mean_min_l2"], verdict.beyond_frontier.value,
                        verdict.near_copies.value, fitter.seconds, fitter.parameters, len(result.training)))
    training = {}
    for fraction, result in audits.items():
        name = _training_level(plan, fraction)
        value, coverage = quality(result, "training")
        training[name] = TrainingRow(name, len(result.training), value, coverage,
                                     result.training.summary()["mean_min_l2"])
    return AblationResult(method, "MMD" if field else "accuracy", not field, out, training, notes, settings,
                          versions())
