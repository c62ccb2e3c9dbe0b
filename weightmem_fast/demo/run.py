"""``run_demo``: the recipes' stages with caching and timing, then one report (module docstring of the package)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import torch

from ..audit import AuditResult, audit
from .recipes import METHODS, RECIPES, TITLES, RecipeOptions
from .stages import Fitter, cached_audit, digest

# The demo report's decision-boundary grid (the study's is 300 x 300; 100 keeps the demo inside its budget).
DEMO_GRID = 100


def run_demo(methods: Sequence[str] = METHODS, out: str | os.PathLike = "weightmem_fast_demo", *, quick: bool = False,
             seed: int = 0, progress: bool = True, cache_dir: str | os.PathLike | None = None,
             grid: int = DEMO_GRID) -> Path:
    """Runs the study on built-in data for ``methods`` and writes ``out/report.html``.

    Args:
        methods: any of ``METHODS`` ("hr", "gpt", "hd", "pdiff"), in report order.
        out: output directory (created): the report, and per method its ``audit.json``, ``audit.csv`` and arrays.
        quick: the smoke profile (tiny zoos and fits; about two minutes for all four).
        seed: seeds sampling and the audits.
        progress: tqdm bars for every stage.
        cache_dir: where zoos, fitted generators and audits are cached; default ``zoo.default_cache_dir()``.
        grid: the decision-boundary grid of the report.

    Returns:
        The report's path.

    Raises:
        ValueError: an unknown method (the message lists the valid ones) or an empty list.
    """
    from ..report import write_report

    methods = list(methods)
    unknown = [m for m in methods if m not in RECIPES]
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty list of {list(METHODS)}; got {methods}")
    sections: dict[str, AuditResult] = {}
    tasks, notes, panels = {}, {}, {}
    for method in methods:
        title = TITLES[method]
        start = time.perf_counter()
        fitter = Fitter(cache_dir, progress)
        prepared = RECIPES[method](fitter, RecipeOptions(quick=quick, seed=seed))
        timings = {"fit (loaded from the cache; fitting took)" if fitter.cached else "fit": fitter.seconds,
                   "zoo, fit and sampling": time.perf_counter() - start}
        start = time.perf_counter()
        options = {"seed": seed, **prepared.audit_options}
        key = {"method": method, "quick": quick, "options": options, "training": digest(prepared.training),
               "generated": digest(prepared.generated), "task": prepared.task.settings()}
        sections[title] = cached_audit(key, cache_dir, lambda: audit(
            {"generated": prepared.generated}, prepared.training, prepared.task, progress=progress, **options))
        timings["audit"] = time.perf_counter() - start
        tasks[title] = prepared.task
        panels[title] = prepared.panels
        notes[title] = "\n".join(prepared.notes + [
            f"{stage}: {seconds:.0f} s" for stage, seconds in timings.items()] +
            [f"profile: {'quick (smoke run, undertrained generators)' if quick else 'demo'}; "
             f"torch threads: {torch.get_num_threads()}"])
    return write_report(sections, out, tasks=tasks, notes=notes, panels=panels, grid=grid,
                        title="weightmem_fast demo: do weight generators memorise?")
