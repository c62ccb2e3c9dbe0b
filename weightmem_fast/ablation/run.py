"""``ablate``: retrain one generator with one factor changed at a time, sample, audit every sample set against the
same training set and baselines, and tabulate accuracy (or MMD) against novelty (issue 11; study_spec §2.10)."""
from __future__ import annotations

import dataclasses
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
           config: Mapping[str, Any] | None = None, cache_dir: str | os.PathLike | None = None,
           progress: bool = True) -> AblationResult:
    """The study's modeling-factor table (and data-scaling study) for one of the four generators.

    Every (level, seed) cell fits the method's demo recipe with that level's change and that seed (the config's
    seed and the sampling seed) and samples as the demo does. Cells whose training group is the same are audited
    together in one ``audit`` call, so they share the training group, the baselines and the noise frontier: for
    G.pt, HyperDiffusion and P-diff every level but the data levels (which train on part of the zoo and are
    audited against that part). HR's training group is the generator's own reconstructions of the zoo (as the
    study audits HR), so each HR cell has its own audit. Fits and audits are cached (``cache_dir``), so an
    interrupted ablation resumes with the cells it finished; the "default" cell with seed 0 is the demo's own fit.

    Args:
        method: "hr", "gpt", "hd" or "pdiff".
        factors: any of ``factors.FACTORS`` that apply to the method (``factors.applicable``); None: all of them.
        seeds: the fits of every level (at least one; mean and std over them).
        quick: the demo's smoke profile (tiny zoos and fits, for CI).
        out: when given, the directory that gets ``report.html`` (the table, its figures and the data-scaling
            plot), ``ablation.json``, ``ablation.csv`` and the audits' own report in ``audits/``.
        zoo_options: settings of the method's demo zoo (``RecipeOptions.zoo_options``), e.g. {"n_runs": 128}.
        config: changes to the generator's config that every cell, the "default" row included, starts from
            (``Config.replace`` arguments, e.g. {"optim": {"steps": 1000}}); the levels are relative to it.
        cache_dir: where zoos, fits and audits are cached; default ``zoo.default_cache_dir()``.
        progress: a progress bar over the cells (and the fits' and audits' own bars).

    Returns:
        AblationResult (``rows``, ``to_json``, ``to_csv``, ``save``).

    Raises:
        ValueError: an unknown method or factor, a factor that does not apply to the method, repeated factors,
            seeds that are not distinct ints, or a ``config`` key the generator's config lacks (messages list the
            valid choices).
    """
    check_method(method)
    changes = dict(config or {})
    base = base_config(method, quick).replace(**changes)
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

    studies: dict[str, _Study] = {}  # by the digest of their training group
    cells: list[_Cell] = []
    bar = tqdm(total=len(plan) * len(seeds), desc=f"ablate {method}", disable=not progress)
    for level in plan:
        for seed in seeds:
            bar.set_postfix_str(f"{level.name}, seed {seed}")
            fitter = Fitter(cache_dir, progress, adjust=lambda recipe_config, level=level, seed=seed:
                            level.apply(recipe_config.replace(**changes)).replace(seed=seed))
            options = RecipeOptions(quick=quick, seed=seed, zoo_options=dict(zoo_options or {}),
                                    data_fraction=level.data_fraction, panels=False)
            prepared = RECIPES[method](fitter, options)
            group = f"{level.name} (seed {seed})"
            study = digest(prepared.training)
            studies.setdefault(study, _Study(prepared)).groups[group] = prepared.generated
            cells.append(_Cell(level, seed, group, study, fitter.seconds, fitter.parameters))
            bar.update()
    bar.close()

    audits = {key: study.audit(method, quick, cache_dir, progress) for key, study in studies.items()}
    result = _result(method, cells, audits, notes, {
        "method": method, "factors": factors, "seeds": seeds, "quick": quick, "zoo_options": dict(zoo_options or {}),
        "config": changes, "base_config": base.to_dict(), "torch_threads": torch.get_num_threads()})
    if out is not None:
        from .report import write_ablation_report

        write_ablation_report(result, out, {_audit_name(cells, key): audit_result
                                            for key, audit_result in audits.items()})
    return result


@dataclasses.dataclass(frozen=True)
class _Cell:
    level: Level
    seed: int
    group: str  # its group in its study's audit
    study: str  # the digest of its training group
    fit_seconds: float
    parameters: int


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


def _audit_name(cells: list[_Cell], study: str) -> str:
    """A study's name in the audits' report: its first cell's level, and its group when several share it."""
    members = [cell for cell in cells if cell.study == study]
    return members[0].level.name if len(members) > 1 else members[0].group


def _result(method: str, cells: list[_Cell], audits: dict[str, AuditResult], notes: list[str],
            settings: dict[str, Any]) -> AblationResult:
    field = next(iter(audits.values())).behaviour.kind == "field"

    def quality(result: AuditResult, group: str) -> tuple[float, float]:
        if field:
            metrics = result.group_metrics.get(group, {})
            return metrics.get("mmd", math.nan), metrics.get("cov", math.nan)
        return result.groups[group].summary()["mean_accuracy"], math.nan

    out, training = [], {}
    for cell in cells:
        result = audits[cell.study]
        verdict = result.verdicts[cell.group]
        value, coverage = quality(result, cell.group)
        out.append(Cell(cell.level.factor, cell.level.name, cell.seed, value, coverage,
                        result.groups[cell.group].summary()["mean_min_l2"], verdict.beyond_frontier.value,
                        verdict.near_copies.value, cell.fit_seconds, cell.parameters, len(result.training)))
        if cell.level.factor in ("default", "data") and cell.level.name not in training:
            # the reference row of the default and of each data level: its first cell's training group
            value, coverage = quality(result, "training")
            training[cell.level.name] = TrainingRow(cell.level.name, len(result.training), value, coverage,
                                                    result.training.summary()["mean_min_l2"])
    return AblationResult(method, "MMD" if field else "accuracy", not field, out, training, notes, settings,
                          versions())
