"""The disk cache of built zoos (issue 5)."""
from __future__ import annotations

import json

import pytest
import torch

from weightmem_fast.io import Zoo
from weightmem_fast.layout import ParamLayout
from weightmem_fast.zoo import cache_path, cached
from weightmem_fast.zoo import cache as cache_module


def _zoo(value: float = 1.0) -> Zoo:
    layout = ParamLayout.from_named_tensors([("w", (2,))])
    return Zoo(torch.full((3, 2), value), layout, [{"seed": i, "acc": 0.5} for i in range(3)])


class _Builder:
    """A build callback that counts its calls."""

    def __init__(self, value: float = 1.0) -> None:
        self.calls, self.value = 0, value

    def __call__(self) -> Zoo:
        self.calls += 1
        return _zoo(self.value)


def test_cached_builds_once_and_then_loads(tmp_path):
    build = _Builder()
    config = {"n_models": 3, "data": "digits", "lr": 0.01}
    first = cached("unit", config, build, cache_dir=tmp_path)
    second = cached("unit", dict(reversed(config.items())), build, cache_dir=tmp_path)  # key order is irrelevant
    assert build.calls == 1
    assert torch.equal(second.weights, first.weights) and second.layout == first.layout
    assert second.metadata == first.metadata
    cached("unit", config | {"lr": 0.02}, build, cache_dir=tmp_path)
    assert build.calls == 2
    # only the two finished zoos remain: no staging directories
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (cache_path("unit", config, tmp_path), cache_path("unit", config | {"lr": 0.02}, tmp_path)))
    recorded = json.loads((cache_path("unit", config, tmp_path) / cache_module.CONFIG_FILE).read_text())
    assert recorded["config"] == config and recorded["builder"] == "unit"


def test_cached_defaults_to_the_environment_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(cache_module.CACHE_ENV, str(tmp_path))
    cached("unit", {"a": 1}, _Builder())
    assert cache_path("unit", {"a": 1}).parent == tmp_path and cache_path("unit", {"a": 1}).is_dir()


def test_a_new_package_version_builds_anew(tmp_path, monkeypatch):
    build = _Builder()
    cached("unit", {"a": 1}, build, cache_dir=tmp_path)
    monkeypatch.setattr(cache_module, "__version__", "999.0")
    cached("unit", {"a": 1}, build, cache_dir=tmp_path)
    assert build.calls == 2


def test_a_failed_build_stores_nothing(tmp_path):
    def fail() -> Zoo:
        raise RuntimeError("out of patience")

    with pytest.raises(RuntimeError, match="out of patience"):
        cached("unit", {"a": 1}, fail, cache_dir=tmp_path)
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("builder,config,build,error,fragment", [
    ("a/b", {}, _Builder(), ValueError, "builder must be a name"),
    ("unit", [1, 2], _Builder(), TypeError, "config must be a mapping"),
    ("unit", {"x": {1, 2}}, _Builder(), TypeError, "config must hold only JSON values"),
    ("unit", {"x": float("nan")}, _Builder(), TypeError, "config must hold only JSON values"),
    ("unit", {"x": 1}, lambda: "zoo", TypeError, "build must return a weightmem_fast.io.Zoo"),
])
def test_cached_rejects_bad_arguments(tmp_path, builder, config, build, error, fragment):
    with pytest.raises(error, match=fragment):
        cached(builder, config, build, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
