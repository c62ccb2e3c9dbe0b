"""A disk cache of built zoos, so demos and tests do not retrain (issue 5).

A zoo is stored in the flat format (``io.save_zoo``) under ``<cache_dir>/<builder>-<key>``, where the key is a hash
of the canonical JSON of (builder, config, package version): a new release or any change of the config builds anew.
The directory appears only complete: the zoo is written to a temporary directory that is then renamed. The default
cache directory is ``$WEIGHTMEM_FAST_CACHE``, else ``~/.cache/weightmem_fast``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from .._version import __version__
from ..io import Zoo, load_zoo, save_zoo

CACHE_ENV = "WEIGHTMEM_FAST_CACHE"
# The canonical config is kept next to the zoo so a cache directory can be traced to what built it.
CONFIG_FILE = "cache_config.json"


def default_cache_dir() -> Path:
    """``$WEIGHTMEM_FAST_CACHE`` if set (read at call time), else ``~/.cache/weightmem_fast``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "weightmem_fast")


def cache_path(builder: str, config: Mapping[str, Any], cache_dir: str | os.PathLike | None = None) -> Path:
    """The directory that holds (or will hold) the zoo of ``config`` of ``builder`` in this package version.

    Raises:
        ValueError: ``builder`` is not a plain name (letters, digits, ``_``, ``-``).
        TypeError: ``config`` is not a mapping of JSON values (the message names the problem).
    """
    return _path(_canonical(builder, config), builder, cache_dir)


def cached(builder: str, config: Mapping[str, Any], build: Callable[[], Zoo],
           cache_dir: str | os.PathLike | None = None) -> Zoo:
    """The zoo that ``build()`` returns for ``config``, from the cache when it is there.

    Args:
        builder: a name for what builds the zoo, e.g. "train_zoo"; part of the directory name.
        config: everything that determines the zoo (arguments, data set and split), JSON values only. The caller
            keeps it complete: two configs that compare equal share one cached zoo.
        build: makes the zoo; called only on a cache miss.
        cache_dir: the cache's root directory; default ``default_cache_dir()``.

    Returns:
        The stored zoo, loaded with ``io.load_zoo`` (also right after building it, so every call returns the
        same thing).

    Raises:
        ValueError / TypeError: as ``cache_path``; ``build`` does not return a Zoo (TypeError).
    """
    text = _canonical(builder, config)
    target = _path(text, builder, cache_dir)
    if target.is_dir():
        return load_zoo(target, allow_nonfinite=True)  # a diverged run is part of what was built
    zoo = build()
    if not isinstance(zoo, Zoo):
        raise TypeError(f"build must return a weightmem_fast.io.Zoo; got {type(zoo).__name__}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save_zoo(zoo, staging)
        (staging / CONFIG_FILE).write_text(text + "\n", encoding="utf-8")
        try:
            os.replace(staging, target)
        except OSError:
            if not target.is_dir():  # not a concurrent build of the same zoo that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return load_zoo(target, allow_nonfinite=True)  # what every later call returns (metadata as JSON gives it back)


def _path(canonical: str, builder: str, cache_dir: str | os.PathLike | None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / f"{builder}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def _canonical(builder: str, config: Mapping[str, Any]) -> str:
    if not isinstance(builder, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", builder):
        raise ValueError(f"builder must be a name of letters, digits, '_' or '-'; got {builder!r}")
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping (dict) of JSON values; got {type(config).__name__}")
    try:
        return json.dumps({"builder": builder, "config": config, "version": __version__}, sort_keys=True,
                          separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"config must hold only JSON values (str, numbers, bools, None, lists, dicts with str keys); "
                        f"{err}") from err
