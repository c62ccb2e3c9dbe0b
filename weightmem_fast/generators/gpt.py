"""G.pt (Peebles et al., "Learning to Learn with Generative Models of Neural Network Checkpoints", 2022), the
study's loss-conditioned generator of MNIST MLPs (study_spec §4; issue 7), registered as ``"gpt"``.

Method:
- data: training trajectories of an MLP (``zoo.trajectories("mlp", ...)``); the last ``held_out_runs`` runs are
  held out (G.pt's test split) and only their initial checkpoints are kept, as sampling prompts;
- weights are multiplied by one normalisation constant (``ScalarNormalizer``; G.pt's "openai" scaling 4.185);
- training pairs (θ_i, θ_j), j > i, from one run, the same random hidden-neuron permutation applied to both;
- a diffusion transformer (``GptDenoiser``) predicts x0 = θ_j from (noised θ_j, θ_i, timestep, loss delta, target
  loss L_j, current loss L_i), MSE loss, linear betas over 1000 steps, AdamW with warm-up, cosine decay and
  gradient clipping; sampling uses the EMA weights;
- sampling is "one-step prompting": from a held-out initial checkpoint with its measured loss, prompt the target
  loss (0.0), run the full ancestral DDPM with the fixed-large variance (beta_t) from N(0, I), no clipping.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal

import torch

from .. import zoo as zoo_lib
from ..io import Zoo
from .base import Generator, module_tensors, sub_tensors
from .config import Config, check_regularisation, zoo_params
from .diffusion import GaussianDiffusion
from .ema import EMA
from .gpt_denoiser import GptDenoiser
from ..symmetry import analyze, permutation_index, random_permutations
from .gpt_pairs import Trajectories
from .normalize import ScalarNormalizer
from .registry import register
from .tokenize import Tokenizer
from .training import Optim, add_noise, train_loop


@dataclasses.dataclass(frozen=True)
class GptConfig(Config):
    """G.pt's hyperparameters (study_spec §4.2; the "paper" entry is ``configs/train/mnist_loss.yaml``).

    The defaults are the "demo" config for the digits MLP 64 -> 10 -> 10 (D = 760): chunks of 128 make the first
    weight five tokens (two hidden units' incoming weights each) and each other tensor one token, 8 tokens per
    vector, 20 in the sequence; a one-block transformer of width 128; 3,000 steps of 64 pairs (AdamW lr 2e-3).
    On ``demo_zoo()`` this fits in about 105 s on one thread, and 32 samples prompted with loss 0.0 from the 16
    held-out initialisations (accuracy 0.10, test loss 2.33) score accuracy 0.45, test loss 1.85 (config seed 1:
    0.38, 2.03 over 64 samples); prompted with their own loss they stay at 0.11, 2.33. Intermediate prompts are
    barely told apart: 0.2 gives 0.43, 1.94 and 0.8 gives 0.35, 1.88.

    Why these sizes (all measured on ``demo_zoo()``, one thread): the previous defaults, chunks of 64 (one hidden
    unit per token, 32 tokens in the sequence) and 1,500 steps of 128 pairs, took 150 s and gave overconfident
    samples, accuracy 0.29 but test loss 2.72, above the starts'. That model underfits rather than overfits: its
    x0 error on held-out runs is close to its training error at every noise level, and 4x the runs (256) left the
    samples as they were (0.29, 2.73). Chunks of 128 cost 61 ms per step of 128 pairs instead of 101 ms and gave
    0.37, 2.20 at the old step count; spending the time on more, smaller steps gave the numbers above. Did not help:
    lr 4e-3 (the denoiser starts to overfit the 48 training runs: 0.36, 2.34), width 64 with 3,000 steps
    (0.25, 3.14), batches of 32 over 6,000 steps (0.37, 2.11), EMA decay 0.999 (0.44, 1.86), 256 runs with the
    new sizes (0.33, 2.50), a zoo trained with lr 0.005 or 0.003 (0.35, 1.96; 0.24, 2.28 with 64-chunks).

    Attributes:
        max_token_size: chunk size of "chunk_within_layer" tokens (``Tokenizer.per_tensor``).
        width, depth, heads, mlp_ratio: the transformer.
        num_frequencies, max_log2: the scalar embedding (``frequency_embedding``).
        diffusion_steps, beta_start, beta_end: the linear-beta diffusion.
        variance: DDPM sampling variance, "large" (beta_t, G.pt) or "posterior".
        scale: the normalisation constant (raw weights x scale); None fits it so the training weights have unit std.
        loss_key: the metadata entry conditioned on (G.pt: the checkpoint's test loss).
        held_out_runs: the last runs of the zoo kept out of training; their initial checkpoints are the prompts.
        permute: apply a random hidden-neuron permutation to each training pair.
        dropout: minGPT's embedding, attention and residual dropout (G.pt: 0; the study's ablation 0.1, 0.2).
        weight_noise: std of Gaussian noise added to both weight vectors of every training pair, fresh each
            step, relative to the std of the normalised training weights (the study's "+Gaussian noise"
            ablation; 0 in G.pt).
        target_loss: the loss prompted at sampling when ``sample`` gets none (G.pt: 0.0).
        batch_size: pairs per optimiser step.
        ema_decay, ema_warmup: the EMA of the denoiser used for sampling (``EMA``).
        optim: AdamW settings.
    """

    max_token_size: int = 128
    width: int = 128
    depth: int = 1
    heads: int = 4
    mlp_ratio: int = 4
    num_frequencies: int = 128
    max_log2: float = 14.0
    diffusion_steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 2e-2
    variance: Literal["large", "posterior"] = "large"
    scale: float | None = None
    loss_key: str = "test_loss"
    held_out_runs: int = 16
    permute: bool = True
    dropout: float = 0.0
    weight_noise: float = 0.0
    target_loss: float = 0.0
    batch_size: int = 64
    ema_decay: float = 0.995
    ema_warmup: bool = True
    optim: Optim = Optim(steps=3000, lr=2e-3, weight_decay=0.1, warmup_steps=50, grad_clip=0.75)

    def __post_init__(self) -> None:
        check_regularisation(self)


PAPER = GptConfig(max_token_size=1000, width=1536, depth=12, heads=16, scale=4.185, held_out_runs=500,
                  batch_size=1024, ema_decay=0.9999, ema_warmup=False,
                  optim=Optim(steps=2000 * 100_800 // 1024, lr=4e-4, weight_decay=0.1, betas=(0.9, 0.999),
                              warmup_steps=5 * 100_800 // 1024, grad_clip=0.75))

# The demo's trajectory zoo on the built-in digits data (cached by ``demo_zoo``): 64 runs of the 64 -> 10 -> 10 MLP
# (Adam lr 0.01, 10 epochs, 2 checkpoints per epoch: 21 per run, test loss 2.33 -> 0.26); 48 train, 16 are prompts.
# More runs did not improve the demo's samples (``GptConfig``), so the zoo stays small (about 3 s to build).
DEMO_ZOO = {"arch": "mlp", "n_runs": 64, "epochs": 10, "checkpoints_per_epoch": 2, "seed": 0}


def demo_zoo(cache_dir: str | os.PathLike | None = None, progress: bool = False, **overrides: Any) -> Zoo:
    """The "demo" config's training zoo: ``zoo.trajectories(**DEMO_ZOO)`` on ``zoo.digits()``, cached on disk
    (``zoo.cached``; about 2 s to build on one core). ``overrides`` replace ``DEMO_ZOO`` entries (e.g.
    ``n_runs=20`` for a smoke run); the cache key holds them.

    Raises:
        ValueError: an override that is not a ``DEMO_ZOO`` key.
    """
    params = zoo_params(DEMO_ZOO, overrides)
    build = {key: value for key, value in params.items() if key != "arch"}
    return zoo_lib.cached("trajectories", {"data": "digits", **params},
                          lambda: zoo_lib.trajectories(params["arch"], zoo_lib.digits(), progress=progress, **build),
                          cache_dir=cache_dir)


@register("gpt")
class Gpt(Generator):
    """G.pt: a loss-conditioned diffusion transformer over future checkpoints (module docstring).

    ``sample(n, seed, start=None, start_loss=None, target_loss=None)`` returns [n, D] raw weights in the zoo's
    layout. Without ``start``, row k starts from held-out initial checkpoint ``k mod K`` with its measured loss.
    """

    config_class = GptConfig
    configs = {"demo": GptConfig(), "paper": PAPER}

    def _build(self) -> None:
        cfg = self.config
        self.tokenizer = Tokenizer.per_tensor(self.layout, cfg.max_token_size).to(self.device)
        self.net = GptDenoiser(self.tokenizer, cfg.width, cfg.depth, cfg.heads, cfg.mlp_ratio, cfg.num_frequencies,
                               cfg.max_log2, cfg.dropout).to(self.device)
        self.diffusion = GaussianDiffusion(cfg.diffusion_steps, cfg.beta_start, cfg.beta_end, prediction="x0")

    def _fit(self, zoo: Zoo, progress: bool) -> None:
        cfg = self.config
        data = Trajectories.split(zoo, cfg.held_out_runs, cfg.loss_key)
        self.normalizer = ScalarNormalizer(cfg.scale) if cfg.scale is not None else \
            ScalarNormalizer.fit(data.weights)
        weights = self.normalizer.normalize(data.weights).to(self.device)
        losses = data.losses.to(self.device)
        noise_std = cfg.weight_noise * float(weights.std())
        chain = analyze(self.layout) if cfg.permute else None  # the MLP's hidden units
        self._build()
        self.net.train()
        ema = EMA(self.net, cfg.ema_decay, warmup=cfg.ema_warmup)

        def loss(step: int) -> torch.Tensor:
            i, j = (rows.to(self.device) for rows in data.pairs(cfg.batch_size))
            start, future = weights[i], weights[j]
            if chain is not None:
                index = permutation_index(chain, random_permutations(chain, cfg.batch_size, device=self.device))
                start, future = start.gather(1, index), future.gather(1, index)
            start, future = add_noise(start, noise_std), add_noise(future, noise_std)
            return self.diffusion.training_loss(self.net, future, start=start, target_loss=losses[j],
                                                current_loss=losses[i])

        train_loop(loss, self.net.parameters(), cfg.optim, ema=ema, progress=progress, desc="G.pt")
        ema.copy_to(self.net)  # G.pt samples with the EMA weights
        self.prompts, self.prompt_losses = data.prompt_weights.to(self.device), data.prompt_losses.to(self.device)

    def _sample(self, n: int, generator: torch.Generator, start: torch.Tensor | None = None,
                start_loss: torch.Tensor | float | None = None,
                target_loss: torch.Tensor | float | None = None) -> torch.Tensor:
        """One-step prompting.

        Args:
            start: raw starting weights, float32 [n, D] or [1, D] (broadcast); default: the held-out initial
                checkpoints, cycled.
            start_loss: the starting weights' loss (scalar or [n]); required with ``start``.
            target_loss: the prompted loss (scalar or [n]); default ``config.target_loss``.
        """
        d = self.layout.size
        if start is None:
            if start_loss is not None:
                raise ValueError("start_loss is only used with start; pass both or neither (without start the "
                                 "held-out initial checkpoints and their measured losses are used)")
            rows = torch.arange(n, device=self.device) % self.prompts.shape[0]
            start, start_loss = self.prompts[rows], self.prompt_losses[rows]
        else:
            if not isinstance(start, torch.Tensor) or start.dim() != 2 or start.shape[1] != d or \
                    start.shape[0] not in (1, n):
                got = tuple(start.shape) if isinstance(start, torch.Tensor) else type(start).__name__
                raise ValueError(f"start must be raw weights [n, {d}] or [1, {d}] (n = {n}); got {got}")
            if start_loss is None:
                raise ValueError("start_loss is required with start: G.pt conditions on the starting weights' loss "
                                 "(the config's loss_key, e.g. their test loss from weightmem_fast.evaluate)")
            start = start.to(self.device, torch.float32).expand(n, d)
        current = _per_row("start_loss", start_loss, n, self.device)
        target = _per_row("target_loss", self.config.target_loss if target_loss is None else target_loss, n,
                          self.device)
        self.net.eval()
        out = self.diffusion.ddpm_sample(self.net, (n, d), generator=generator, variance=self.config.variance,
                                         device=self.device, start=self.normalizer.normalize(start),
                                         target_loss=target, current_loss=current)
        return self.normalizer.denormalize(out).float()

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = module_tensors("net", self.net) | {"prompts": self.prompts, "prompt_losses": self.prompt_losses}
        return tensors, {"scale": self.normalizer.factor}

    def _restore(self, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        self._build()
        self.net.load_state_dict(sub_tensors(tensors, "net"))
        self.normalizer = ScalarNormalizer(float(info["scale"]))
        self.prompts, self.prompt_losses = tensors["prompts"], tensors["prompt_losses"]


def _per_row(name: str, value: torch.Tensor | float, n: int, device: torch.device) -> torch.Tensor:
    """A scalar or [n] loss as float32 [n] on ``device``."""
    values = torch.as_tensor(value, dtype=torch.float32, device=device)
    if values.dim() == 0:
        return values.expand(n)
    if tuple(values.shape) != (n,):
        raise ValueError(f"{name} must be a number or a tensor [n] = [{n}] of losses; got shape {tuple(values.shape)}")
    return values
