"""The cached stages that ``run_demo`` and ``ablate`` share: fitting a generator (``Fitter``) and auditing
(``cached_audit``), keyed by ``digest``s of the weights they read. A stage that finished once is loaded, not redone,
so an interrupted run resumes where it stopped."""
from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, Callable

import torch

from .._files import write_atomic
from ..audit import AuditResult
from ..generators import get
from ..generators.base import Generator
from ..generators.config import Config
from ..io import Zoo
from ..zoo import cache_path
from .recipes import GENERATORS

FIT_FILE = "fit.json"


class Fitter:
    """``fit(name, zoo, overrides)`` for the recipes: the generator's "demo" config with the recipe's ``overrides``,
    then ``adjust`` (the ablation's change of one factor and its seed), loaded from the cache when this config was
    fitted on this zoo before, else fitted and saved.

    After a call: ``seconds`` is the fit's wall time (read back from the cache when loaded, so a resumed run reports
    the time the fit took), ``cached`` says whether it was loaded, ``config`` is the config used and ``parameters``
    the generator's parameter count.
    """

    def __init__(self, cache_dir: str | os.PathLike | None, progress: bool,
                 adjust: Callable[[Config], Config] | None = None) -> None:
        self.cache_dir, self.progress, self.adjust = cache_dir, progress, adjust
        self.seconds, self.cached, self.config, self.parameters = float("nan"), False, None, 0

    def __call__(self, name: str, zoo: Zoo, overrides: dict[str, Any]) -> Generator:
        cls = get(GENERATORS[name])
        options = {k: v for k, v in overrides.items() if isinstance(v, Zoo)}
        changes = {k: v for k, v in overrides.items() if k not in options}
        config = cls.configs["demo"].replace(**changes)
        if self.adjust is not None:
            config = self.adjust(config)
        self.config = config
        key = {"generator": GENERATORS[name], "config": config.to_dict(), "zoo": digest(zoo),
               **{k: digest(v) for k, v in options.items()}}
        path = cache_path(f"generator-{name}", key, self.cache_dir)
        if (path / "generator.json").is_file():
            record = path / FIT_FILE
            self.seconds = json.loads(record.read_text())["seconds"] if record.is_file() else float("nan")
            self.cached = True
            generator = cls.load(path)
        else:
            start = time.perf_counter()
            generator = cls().fit(zoo, config, progress=self.progress, **options)
            self.seconds, self.cached = time.perf_counter() - start, False
            generator.save(path)
            write_atomic(path / FIT_FILE, lambda tmp: tmp.write_text(json.dumps({"seconds": self.seconds})))
        self.parameters = generator.parameter_count()
        return generator


def cached_audit(key: dict[str, Any], cache_dir: str | os.PathLike | None,
                 compute: Callable[[], AuditResult]) -> AuditResult:
    """``compute()``'s audit, or the one saved under ``key`` by an earlier call."""
    path = cache_path("audit", key, cache_dir)
    if (path / "audit.json").is_file():
        return AuditResult.load(path)
    result = compute()
    result.save(path)
    return result


def digest(value: torch.Tensor | Zoo) -> str:
    """A fingerprint of weights (a Zoo's or a tensor's values and shape), for cache keys."""
    weights = value.weights if isinstance(value, Zoo) else value
    data = weights.detach().cpu().contiguous()
    return hashlib.sha256(str(tuple(data.shape)).encode() + data.numpy().tobytes()).hexdigest()[:16]
