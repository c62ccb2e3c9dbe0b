"""HyperDiffusion (Erkoç et al., ICCV 2023; study_spec §5): unconditional diffusion over the flat weights of
occupancy MLPs, one per shape, fitted from a shared start ("first_weights").

    zoo = demo_zoo()                                          # airplane fields, cached (fields.fit_fields)
    generator = HyperDiffusion().fit(zoo, "demo")
    samples = generator.sample(64, seed=0)                    # [64, D] in zoo.layout
    clouds = weightmem_fast.fields.field_to_points(samples, zoo.layout)

The method (study_spec §5.1-5.2, HyperDiffusion's ``configs/diffusion_configs/train_plane.yaml`` and
``transformer.py``):
1. the zoo: one occupancy MLP per shape, every one initialised from the first shape's fitted weights
   (``fields.fit_fields(init="first_weights")``), which keeps the MLPs aligned; weights in raw space
   (``normalization_factor`` 1);
2. optionally, the study's symmetry experiment: ``permutation_augment`` = 2, 4 or 8 adds 1, 3 or 7 random
   permutations of every MLP's hidden neurons (function-preserving, ``symmetry.permutation_augment``) to the
   training set;
3. a Gaussian diffusion with 500 steps, betas linear from 1e-4 to 2e-2, trained with the MSE between the predicted
   and the clean weights (x0-prediction), by the transformer ``HyperDiffusionDenoiser`` over one token per tensor
   (``Tokenizer.per_tensor``, "layer_by_layer") plus a timestep token;
4. sampling: deterministic DDIM (eta = 0) over all 500 steps from N(0, I).

Scaled down or different: the demo sizes (``HyperDiffusion.configs["demo"]``, a 32-wide MLP zoo of 48 procedural
airplanes instead of 2,749 ShapeNet planes); the optimiser is ``training.Optim`` (AdamW with cosine decay) instead
of AdamW with StepLR (x0.9 every 200 epochs): the "paper" config decays from 2e-4 to the StepLR's final rate over
the same number of steps; no EMA (HyperDiffusion samples with the trained weights, as here).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch

from .. import fields
from ..io import Zoo
from ..symmetry import permutation_augment
from ..zoo import cached
from .base import Generator, module_tensors, sub_tensors
from .config import Config, check_regularisation, zoo_params
from .diffusion import GaussianDiffusion
from .hyperdiffusion_net import HyperDiffusionDenoiser
from .registry import register
from .tokenize import Tokenizer
from .training import Optim, add_noise, epoch_batches, train_loop


@dataclasses.dataclass(frozen=True)
class HyperDiffusionConfig(Config):
    """HyperDiffusion's hyperparameters (study_spec §5.2; the "paper" entry is ``train_plane.yaml``).

    Attributes:
        max_token_size: None for one token per tensor ("layer_by_layer"); else tensors larger than this are cut
            into consecutive chunks of this size (``Tokenizer.per_tensor``).
        width, depth, heads, mlp_ratio: the transformer.
        num_frequencies, max_log2: the timestep embedding (``frequency_embedding``).
        diffusion_steps, beta_start, beta_end: the linear-beta diffusion.
        sampling_steps: DDIM steps (None: all ``diffusion_steps``, as HyperDiffusion).
        eta: DDIM's eta (HyperDiffusion: 0, deterministic).
        normalization_factor: the weights are multiplied by it before diffusion and divided after sampling (1).
        permutation_augment: the training set's size multiplier: 1 (none), or k adds k - 1 random hidden-neuron
            permutations of every MLP (the study's symmetry experiment uses 2, 4, 8).
        dropout: minGPT's embedding, attention and residual dropout (HyperDiffusion: 0; the study's ablation 0.1,
            0.2).
        weight_noise: std of Gaussian noise added to every training batch's weights, fresh each step, relative
            to the std of the (normalised) training weights (the study's "+Gaussian noise" ablation; 0 in
            HyperDiffusion).
        batch_size: MLPs per optimiser step.
        optim: AdamW settings.
    """

    max_token_size: int | None = None
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    num_frequencies: int = 128
    max_log2: float = 20.0
    diffusion_steps: int = 500
    beta_start: float = 1e-4
    beta_end: float = 2e-2
    sampling_steps: int | None = None
    eta: float = 0.0
    normalization_factor: float = 1.0
    permutation_augment: int = 1
    dropout: float = 0.0
    weight_noise: float = 0.0
    batch_size: int = 32
    optim: Optim = Optim(steps=1500, lr=1e-3, weight_decay=0.01, warmup_steps=50, min_lr=1e-5, grad_clip=1.0)

    def __post_init__(self) -> None:
        check_regularisation(self)
        augment = self.permutation_augment
        if isinstance(augment, bool) or not isinstance(augment, int) or augment < 1:
            raise ValueError(f"permutation_augment must be an int >= 1 (1: no augmentation; 2, 4, 8: the study's "
                             f"x2, x4, x8); got {augment!r}")
        if not self.normalization_factor > 0:
            raise ValueError(f"normalization_factor must be > 0; got {self.normalization_factor!r}")


# train_plane.yaml: 2,749 MLPs in batches of 32 (86 steps an epoch) for 6,000 epochs; AdamW lr 2e-4 (torch's default
# weight decay 0.01) with StepLR x0.9 every 200 epochs, which ends at 2e-4 * 0.9**30 ~ 8.5e-6.
_PAPER_STEPS = 6000 * -(-2749 // 32)
PAPER = HyperDiffusionConfig(width=2880, depth=12, heads=16,
                             optim=Optim(steps=_PAPER_STEPS, lr=2e-4, weight_decay=0.01, min_lr=2e-4 * 0.9 ** 30))

# The demo's field zoo (cached by ``demo_zoo``; every fit_fields setting is spelled out so the cache key is complete):
# 48 procedural airplanes, a 32-wide occupancy MLP (D = 3,041), the study's first_weights initialisation.
DEMO_ZOO = {"family": "airplane", "shapes": 48, "frequencies": 4, "hidden": 32, "layers": 3, "steps": 800,
            "batch_size": 512, "lr": 5e-3, "samples": 8192, "init": "first_weights", "seed": 0}


def demo_zoo(cache_dir: str | os.PathLike | None = None, progress: bool = False, **overrides: Any) -> Zoo:
    """The "demo" config's training zoo: ``fields.fit_fields`` on ``DEMO_ZOO["shapes"]`` procedural airplanes,
    every MLP starting from the first shape's fit (``init="first_weights"``), cached on disk (``zoo.cached``;
    about 45 s to build on one core). ``overrides`` replace ``DEMO_ZOO`` entries (e.g. ``shapes=12`` for a
    smoke run); the cache key holds them.

    Raises:
        ValueError: an override that is not a ``DEMO_ZOO`` key.
    """
    params = zoo_params(DEMO_ZOO, overrides)
    key = dict(params)
    shapes = fields.make_shapes(params.pop("family"), params.pop("shapes"))
    return cached("fit_fields", key, lambda: fields.fit_fields(shapes, progress=progress, **params),
                  cache_dir=cache_dir)


@register("hyperdiffusion")
class HyperDiffusion(Generator):
    """HyperDiffusion: an unconditional x0-predicting diffusion transformer over occupancy-MLP weights (module
    docstring). ``sample(n, seed)`` runs DDIM (eta = 0 by default) and returns [n, D] raw weights in the zoo's
    layout.

    Attributes (after ``fit`` or ``load``):
        tokenizer: the per-tensor ``Tokenizer``.
        net: the ``HyperDiffusionDenoiser``.
        diffusion: the ``GaussianDiffusion`` (x0-prediction).
        losses: the training losses of the last ``fit`` (empty after ``load``).
    """

    config_class = HyperDiffusionConfig
    # demo: on demo_zoo() (48 MLPs, D = 3,041; 43 s to build) fit takes 91 s wall / 61 s CPU on one thread of a
    # shared 2-core machine and 32 samples 8 s; all 32 samples mesh (48^3 grid) with mean min Chamfer 0.043 to the
    # training shapes' clouds (training MLPs 0.024, per-parameter Gaussian 0.084, random MLPs 1.03 and 7/32 meshed)
    # (measured for issue 7).
    configs = {"demo": HyperDiffusionConfig(), "paper": PAPER}

    def __init__(self, device: torch.device | str = "cpu") -> None:
        super().__init__(device)
        self.losses: list[float] = []

    def _build(self) -> None:
        cfg = self.config
        self.tokenizer = Tokenizer.per_tensor(self.layout, cfg.max_token_size).to(self.device)
        self.net = HyperDiffusionDenoiser(self.tokenizer, cfg.width, cfg.depth, cfg.heads, cfg.mlp_ratio,
                                          cfg.num_frequencies, cfg.max_log2, cfg.dropout).to(self.device)
        self.diffusion = GaussianDiffusion(cfg.diffusion_steps, cfg.beta_start, cfg.beta_end, "linear",
                                           prediction="x0")

    def _fit(self, zoo: Zoo, progress: bool) -> None:
        cfg = self.config
        weights = zoo.weights.to(self.device, torch.float32)
        if cfg.permutation_augment > 1:
            weights = permutation_augment(weights, self.layout, cfg.permutation_augment)
        x = weights * cfg.normalization_factor
        noise_std = cfg.weight_noise * float(x.std())
        self._build()
        rows = epoch_batches(len(x), cfg.batch_size, device=self.device)
        self.net.train()
        self.losses = train_loop(
            lambda step: self.diffusion.training_loss(self.net, add_noise(x[next(rows)], noise_std)),
            self.net.parameters(), cfg.optim, progress=progress, desc="HyperDiffusion")
        self.net.eval()

    def _sample(self, n: int, generator: torch.Generator, **conditioning: Any) -> torch.Tensor:
        if conditioning:
            raise ValueError(f"HyperDiffusion is unconditional; sample takes no conditioning, got "
                             f"{sorted(conditioning)}")
        cfg = self.config
        self.net.eval()
        out = self.diffusion.ddim_sample(self.net, (n, self.layout.size), steps=cfg.sampling_steps, eta=cfg.eta,
                                         generator=generator, device=self.device)
        return (out / cfg.normalization_factor).float()

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return module_tensors("net", self.net), {}

    def _restore(self, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        self._build()
        self.net.load_state_dict(sub_tensors(tensors, "net"))
        self.net.eval()
