"""Generators by name (issue 7): ``generators.get("hr" | "gpt" | "hyperdiffusion" | "pdiff")``.

To add a method: subclass ``Generator`` in its own module of this package, decorate the class with
``@register("name")``, and import that module in ``generators/__init__.py`` so that importing the package
registers it. ``Generator.load`` uses the name saved with a generator to find its class.
"""
from __future__ import annotations

from typing import Callable, TypeVar

from .base import Generator

G = TypeVar("G", bound=type[Generator])

_REGISTRY: dict[str, type[Generator]] = {}


def register(name: str) -> Callable[[G], G]:
    """Class decorator: registers a Generator subclass under ``name`` and sets its ``name`` attribute.

    Raises:
        TypeError: the class is not a Generator subclass.
        ValueError: ``name`` is taken by another class, or the class's ``configs`` lacks "demo" or "paper" or
            holds a value that is not a ``config_class`` instance.
    """
    def decorate(cls: G) -> G:
        if not (isinstance(cls, type) and issubclass(cls, Generator)):
            raise TypeError(f"@register({name!r}) needs a Generator subclass; got {cls!r}")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"generator name {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        missing = sorted({"demo", "paper"} - set(cls.configs))
        wrong = [key for key, value in cls.configs.items() if not isinstance(value, cls.config_class)]
        if missing or wrong:
            raise ValueError(f"{cls.__qualname__}.configs must map 'demo' and 'paper' to {cls.config_class.__name__} "
                             f"instances; missing {missing}, wrong type for {wrong}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def get(name: str) -> type[Generator]:
    """The Generator class registered under ``name`` (instantiate it, then ``fit`` or use ``load``).

    Raises:
        ValueError: no generator of that name (the message lists the registered ones).
    """
    if name not in _REGISTRY:
        raise ValueError(f"no generator named {name!r}; registered: {available() or 'none yet'}")
    return _REGISTRY[name]


def available() -> list[str]:
    """The registered names, sorted."""
    return sorted(_REGISTRY)
