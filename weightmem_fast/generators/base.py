"""The common interface of weight generators (issue 7): ``fit`` on a zoo, ``sample`` flat weights in the zoo's
layout, ``save`` / ``load`` without pickle.

A method subclasses ``Generator``, registers it (``registry.register``) and implements four hooks::

    @dataclasses.dataclass(frozen=True)
    class MyConfig(Config):
        width: int = 64
        optim: Optim = Optim(steps=2000, lr=1e-3)

    @register("mine")
    class Mine(Generator):
        config_class = MyConfig
        configs = {"demo": MyConfig(), "paper": MyConfig(width=1024, optim=Optim(steps=100_000, lr=1e-4))}

        def _fit(self, zoo, progress):            # self.config, self.layout and self.device are set; runs seeded
            self.net = Net(self.config.width).to(self.device)
            train_loop(..., self.config.optim, progress=progress)
        def _sample(self, n, generator, **conditioning):   # runs under no_grad and seeded; return [n, D] float32
            return self.net.generate(n, generator)
        def _state(self):                          # learned tensors, and small JSON-able state
            return module_tensors("net", self.net), {}
        def _restore(self, tensors, info):         # rebuild from self.config / self.layout, then load tensors
            self.net = Net(self.config.width).to(self.device)
            self.net.load_state_dict(sub_tensors(tensors, "net"))

On disk a generator is a directory: ``tensors.safetensors`` (the hook's tensors) and ``generator.json``
(format, method name, package version, config, layout, JSON state).
"""
from __future__ import annotations

import abc
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Mapping, TypeVar

import torch
from torch import nn

from .._version import __version__
from .._files import write_atomic
from ..io import Zoo
from ..layout import ParamLayout
from .config import Config
from .training import seeded

FORMAT = "weightmem_fast.generator/1"
TENSORS_FILE = "tensors.safetensors"
JSON_FILE = "generator.json"

G = TypeVar("G", bound="Generator")


class Generator(abc.ABC):
    """A generative model of flat weights.

    Class attributes (set by each method):
        name: the registry name ("hr", "gpt", "hyperdiffusion", "pdiff"); set by ``@register``.
        config_class: the method's frozen Config dataclass.
        configs: named configs; at least "demo" (2 CPU cores, minutes) and "paper" (the published size).

    Attributes:
        device: where the generator trains and samples.
        config: the Config of the last ``fit`` (or of the loaded generator); None before.
        layout: the ParamLayout of the zoo it was fitted on; samples are flat weights in this layout.

    Args:
        device: torch device for training and sampling.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[Config]] = Config
    configs: ClassVar[dict[str, Config]] = {}

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.config: Config | None = None
        self.layout: ParamLayout | None = None

    def __repr__(self) -> str:
        state = f"D={self.layout.size}" if self.layout is not None else "not fitted"
        return f"{type(self).__name__}(name={self.name!r}, {state}, device={self.device})"

    @property
    def fitted(self) -> bool:
        return self.layout is not None

    def parameter_count(self) -> int:
        """Learned parameters of the generator's networks, the study's "#params": every public ``nn.Module``
        attribute (a method keeps helper modules, such as P-diff's base classifier, in private attributes)."""
        return sum(p.numel() for name, value in vars(self).items() if not name.startswith("_")
                   and isinstance(value, nn.Module) for p in value.parameters())

    @classmethod
    def resolve_config(cls, config: str | Config | None = None, **overrides: Any) -> Config:
        """The config a ``fit`` would use: ``configs[config]`` for a name (None means "demo"), or ``config`` itself,
        with ``overrides`` applied (``Config.replace``; a dict updates a nested dataclass).

        Raises:
            ValueError: an unknown name or override field.
            TypeError: ``config`` is not a name or a ``config_class`` instance.
        """
        if config is None or isinstance(config, str):
            key = "demo" if config is None else config
            if key not in cls.configs:
                raise ValueError(f"{cls.__name__} has no config named {key!r}; choose one of {sorted(cls.configs)} "
                                 f"or pass a {cls.config_class.__name__}")
            config = cls.configs[key]
        elif not isinstance(config, cls.config_class):
            raise TypeError(f"config must be a config name {sorted(cls.configs)}, a {cls.config_class.__name__} or "
                            f"None; got {type(config).__name__}")
        return config.replace(**overrides) if overrides else config

    def fit(self: G, zoo: Zoo, config: str | Config | None = None, progress: bool = True, **overrides: Any) -> G:
        """Trains the generator on every row of ``zoo``.

        Training is seeded by ``config.seed`` (the caller's global RNG state is restored afterwards), so the same
        zoo, config and device give the same generator.

        Args:
            zoo: the training zoo (float32 [N, D] weights, layout, per-row metadata such as accuracy or loss).
            config: a name from ``configs`` (default "demo") or a ``config_class`` instance.
            progress: show tqdm bars with the loss.
            **overrides: config fields to change, e.g. ``seed=3`` or ``optim={"steps": 100}``.

        Returns:
            self, fitted.

        Raises:
            TypeError: ``zoo`` is not a Zoo.
            ValueError: an empty zoo, non-finite weights, or a bad config (see ``resolve_config``).
        """
        if not isinstance(zoo, Zoo):
            raise TypeError(f"zoo must be a weightmem_fast.io.Zoo; got {type(zoo).__name__}")
        if len(zoo) == 0:
            raise ValueError("zoo must hold at least one model to fit a generator; got 0 rows")
        if not bool(torch.isfinite(zoo.weights).all()):
            raise ValueError("zoo.weights contains NaN or Inf; remove those rows before fitting a generator")
        config = self.resolve_config(config, **overrides)
        self.config, self.layout = config, zoo.layout
        try:
            with seeded(config.seed, self.device):
                self._fit(zoo, progress)
        except BaseException:
            self.config = self.layout = None  # a failed fit leaves no half-fitted generator behind
            raise
        return self

    def sample(self, n: int, seed: int, **conditioning: Any) -> torch.Tensor:
        """Draws ``n`` flat weight vectors.

        The same ``seed`` gives the same samples (on the same device and torch version); the caller's global RNG
        state is unchanged.

        Args:
            n: number of samples, >= 1.
            seed: int >= 0.
            **conditioning: method-specific inputs (G.pt: starting weights and losses).

        Returns:
            float32 [n, D] on ``self.device``, in ``self.layout``.

        Raises:
            RuntimeError: the generator is not fitted.
            ValueError: bad ``n`` or ``seed``, or a method returning the wrong shape.
        """
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(zoo) or load a saved generator first")
        for arg, value, low in (("n", n, 1), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{arg} must be an int >= {low}; got {value!r}")
        generator = torch.Generator(device=self.device).manual_seed(seed)
        with seeded(seed, self.device), torch.no_grad():
            out = self._sample(n, generator, **conditioning)
        expected = (n, self.layout.size)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected or out.dtype != torch.float32:
            got = f"{out.dtype} {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"{type(self).__name__}._sample must return float32 {list(expected)}; got {got}")
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Writes ``path/tensors.safetensors`` and ``path/generator.json`` (the directory is created; existing
        files are replaced atomically).

        Raises:
            RuntimeError: the generator is not fitted.
            TypeError: the JSON state is not JSON-serialisable.
        """
        from safetensors.torch import save_file

        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted; there is nothing to save")
        tensors, info = self._state()
        header = {"format": FORMAT, "method": self.name, "version": __version__, "config": self.config.to_dict(),
                  "layout": json.loads(self.layout.to_json()), "state": info}
        text = json.dumps(header, indent=1)
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        cpu = {key: value.detach().to("cpu").clone() for key, value in tensors.items()}
        write_atomic(root / TENSORS_FILE, lambda tmp: save_file(cpu, str(tmp), metadata={"format": FORMAT}))
        write_atomic(root / JSON_FILE, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))
        return root

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> "Generator":
        """Reads a saved generator. ``Generator.load`` finds the class from the saved method name (it must be
        registered); ``Method.load`` checks that the directory holds that method.

        Raises:
            FileNotFoundError: a missing file.
            ValueError: not a saved generator, another method's, or an unknown method name.
        """
        from safetensors.torch import load_file

        root = Path(path)
        files = {name: root / name for name in (JSON_FILE, TENSORS_FILE)}
        for file in files.values():
            if not file.is_file():
                raise FileNotFoundError(f"{file}: missing; a saved generator directory holds {JSON_FILE} and "
                                        f"{TENSORS_FILE} (written by Generator.save)")
        try:
            header = json.loads(files[JSON_FILE].read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{files[JSON_FILE]}: not valid JSON ({err})") from err
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"{files[JSON_FILE]}: not a saved generator (format "
                             f"{header.get('format') if isinstance(header, dict) else None!r}, expected {FORMAT!r})")
        method = header["method"]
        if cls is Generator:
            from .registry import get

            target = get(method)
        elif method != cls.name:
            raise ValueError(f"{root} holds a {method!r} generator, not {cls.name!r}; load it with "
                             f"Generator.load or generators.get({method!r}).load")
        else:
            target = cls
        generator = target(device=device)
        generator.config = target.config_class.from_dict(header["config"])
        generator.layout = ParamLayout.from_json(json.dumps(header["layout"]))
        generator._restore(load_file(str(files[TENSORS_FILE]), device=str(generator.device)), header["state"])
        return generator

    # ------------------------------------------------------------------------------------------------------------
    # Hooks for methods
    # ------------------------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def _fit(self, zoo: Zoo, progress: bool) -> None:
        """Trains on ``zoo``; ``self.config``, ``self.layout`` and ``self.device`` are set and the global RNG is
        seeded with ``self.config.seed``."""

    @abc.abstractmethod
    def _sample(self, n: int, generator: torch.Generator, **conditioning: Any) -> torch.Tensor:
        """Returns float32 [n, D]. Runs under ``torch.no_grad`` with the global RNG seeded; draw from
        ``generator`` (on ``self.device``). Put modules in eval mode here."""

    @abc.abstractmethod
    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors to save, small JSON-serialisable state). ``module_tensors`` prefixes a module's state_dict."""

    @abc.abstractmethod
    def _restore(self, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        """Rebuilds the fitted state from ``_state``'s output (tensors on ``self.device``); ``self.config`` and
        ``self.layout`` are already set."""


def module_tensors(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` with keys ``prefix + "." + key``, for ``_state``."""
    return {f"{prefix}.{key}": value for key, value in module.state_dict().items()}


def sub_tensors(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``tensors`` under ``prefix + "."``, with the prefix removed (for ``load_state_dict``)."""
    start = prefix + "."
    return {key[len(start):]: value for key, value in tensors.items() if key.startswith(start)}
