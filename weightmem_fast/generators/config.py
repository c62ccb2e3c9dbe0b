"""Hyperparameters of a generator: frozen dataclasses that round-trip through JSON (issue 7).

Every method defines ``class XConfig(Config)`` with defaults for every field, and two instances in its
``configs`` dict: ``"demo"`` (trains on 2 CPU cores in minutes) and ``"paper"`` (the published size). Fields are
JSON values: numbers, strings, booleans, None, tuples (stored as JSON lists), or nested frozen dataclasses with a
dataclass default (such as ``training.Optim``), so ``Generator.save`` writes a config as plain JSON and ``load``
rebuilds it without pickle.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

C = TypeVar("C", bound="JsonDataclass")


class JsonDataclass:
    """Mixin for frozen dataclasses: validated ``replace``, and ``to_dict`` / ``from_dict`` through JSON."""

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` applied. A dict given for a nested-dataclass field updates that dataclass's
        fields (``cfg.replace(optim={"steps": 50})`` keeps the other ``optim`` settings).

        Raises:
            ValueError: a key that is not a field (the message lists the fields).
        """
        _check_keys(type(self), changes)
        for name, value in changes.items():
            current = getattr(self, name)
            if isinstance(value, Mapping) and isinstance(current, JsonDataclass):
                changes[name] = current.replace(**value)
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (nested dataclasses become dicts, tuples stay tuples)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """Rebuilds an instance from ``to_dict`` output, also after a JSON round trip (lists become tuples; a dict
        for a field whose default is a dataclass becomes that dataclass). Missing keys take their defaults.

        Raises:
            ValueError: a key that is not a field.
        """
        _check_keys(cls, data)
        values = {}
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            if field.name not in data:
                continue
            value, default = data[field.name], _default(field)
            if isinstance(value, Mapping) and isinstance(default, JsonDataclass):
                value = type(default).from_dict(value)
            values[field.name] = _tuples(value)
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class Config(JsonDataclass):
    """Base of every generator's hyperparameters.

    Attributes:
        seed: seeds everything ``fit`` draws (initialisation, batches, noise), so a fit is reproducible.
    """

    seed: int = 0


def check_regularisation(config: Any) -> None:
    """Checks the two regularisers the transformer generators share (the study's ablation, issue 11):
    ``config.dropout`` in [0, 1) and ``config.weight_noise`` >= 0.

    Raises:
        ValueError: naming the config class and the bad field.
    """
    name = type(config).__name__
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"{name}.dropout must be in [0, 1); got {config.dropout!r}")
    if not config.weight_noise >= 0.0:
        raise ValueError(f"{name}.weight_noise must be >= 0; got {config.weight_noise!r}")


def _check_keys(cls: type, keys: Mapping[str, Any]) -> None:
    names = [field.name for field in dataclasses.fields(cls)]
    unknown = sorted(set(keys) - set(names))
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}; its fields are {names}")


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _tuples(value: Any) -> Any:
    """JSON lists back to (nested) tuples, which frozen dataclasses need to stay hashable."""
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    return value


def zoo_params(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A method's demo-zoo settings with ``overrides`` applied (every value spelled out: they are the cache key).

    Raises:
        ValueError: an override that is not one of ``defaults``' keys (the message lists them).
    """
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"unknown demo zoo settings {unknown}; valid: {sorted(defaults)}")
    return {**defaults, **overrides}
