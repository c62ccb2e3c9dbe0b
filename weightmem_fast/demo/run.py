"""``run_demo``: the recipes' stages with caching and timing, then one report (module docstring of the package)."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from ..audit import AuditResult, audit
from ..generators import get
from ..generators.base import Generator
from ..io import Zoo
from ..zoo import cache_path
from .recipes import GENERATORS, METHODS, RECIPES, TITLES

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
        timings: dict[str, float] = {}
        start = time.perf_counter()
        prepared = RECIPES[method](quick, _Fitter(method, cache_dir, progress, timings), seed)
        timings["zoo, fit and sampling"] = time.perf_counter() - start
        start = time.perf_counter()
        options = {"seed": seed, **prepared.audit_options}
        key = {"method": method, "quick": quick, "options": options, "training": _digest(prepared.training),
               "generated": _digest(prepared.generated), "task": prepared.task.settings()}
        sections[title] = _cached_audit(key, cache_dir, lambda: audit(
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


class _Fitter:
    """``fit(method, zoo, overrides)`` for the recipes: the generator's "demo" config with ``overrides``, loaded from
    the cache when this config was fitted on this zoo before, else fitted and saved. Records the fit time."""

    def __init__(self, method: str, cache_dir: str | os.PathLike | None, progress: bool,
                 timings: dict[str, float]) -> None:
        self.method, self.cache_dir, self.progress, self.timings = method, cache_dir, progress, timings

    def __call__(self, name: str, zoo: Zoo, overrides: dict[str, Any]) -> Generator:
        cls = get(GENERATORS[name])
        options = {k: v for k, v in overrides.items() if isinstance(v, Zoo)}
        changes = {k: v for k, v in overrides.items() if k not in options}
        config = cls.configs["demo"].replace(**changes)
        key = {"generator": GENERATORS[name], "config": config.to_dict(), "zoo": _digest(zoo),
               **{k: _digest(v) for k, v in options.items()}}
        path = cache_path(f"generator-{name}", key, self.cache_dir)
        if (path / "generator.json").is_file():
            self.timings["fit (cached)"] = 0.0
            return cls.load(path)
        start = time.perf_counter()
        generator = cls().fit(zoo, config, progress=self.progress, **options)
        self.timings["fit"] = time.perf_counter() - start
        generator.save(path)
        return generator


def _cached_audit(key: dict[str, Any], cache_dir: str | os.PathLike | None, compute: Any) -> AuditResult:
    path = cache_path("audit", key, cache_dir)
    if (path / "audit.json").is_file():
        return AuditResult.load(path)
    result = compute()
    result.save(path)
    return result


def _digest(value: torch.Tensor | Zoo) -> str:
    """A fingerprint of weights (a Zoo's or a tensor's values and shape), for cache keys."""
    weights = value.weights if isinstance(value, Zoo) else value
    data = weights.detach().cpu().contiguous()
    return hashlib.sha256(str(tuple(data.shape)).encode() + data.numpy().tobytes()).hexdigest()[:16]
