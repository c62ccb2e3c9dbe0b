"""Hyper-Representations (Schürholt et al., NeurIPS 2022) as the study audits it (study_spec §3): generator "hr".

Training (ghrp's ``SimCLRAEModule``): every step takes a batch of zoo models and makes two views of each: a random
function-preserving neuron permutation from a fixed pool (HR's precomputed permutations), then additive Gaussian
noise and random erasing. Both views go through the transformer autoencoder (``hr_model.TransformerAE``) over
per-neuron tokens; the loss is ``gamma * NT-Xent(projection(z_i), projection(z_j)) + (1 - gamma) * MSE``, where the
MSE compares each view's reconstruction with its permuted, un-noised, un-erased weights in layer-wise standardised
units (``Standardizer`` granularity "layer": each layer's squared error is divided by that layer's weight variance
over the zoo), averaged over all parameters.

Sampling (the study's ``evaluation/sample.py``): encode the training zoo, keep the rows whose test accuracy is >= the
70th percentile, fit a 1-D Gaussian KDE per latent dimension and draw (``hr_kde``), decode. The kernel width is
``kde_bandwidth`` (0.002) times the standard deviation of the kept latents, so it is 0.002 in the study's units when
those latents have unit scale. ``kde_quirk=True`` reproduces the study's sklearn loop, in which every sample is one
kept training latent plus one constant in every coordinate.

Demo (``configs["demo"]``, 600 steps, on ``zoo.trajectories("cnn", zoo.digits(), 16, 8)``: 144 rows, HR's zoo
likewise holds several epochs per run): fit 138 s on 2 shared CPU cores; mean test accuracy of the kept training
models 0.94, of their reconstructions 0.78, of 100 samples with the study's sampler 0.77 and with the independent
per-dimension KDE 0.10 (chance: mixing coordinates of latents from different runs decodes to broken models at this
size).

Deviations, all for size or clarity: sizes are scaled down in "demo", whose permutation pool has 4 permutations
(with 100, 600 steps left the reconstructions at chance accuracy); the reconstruction target is the clean permuted
view (the original reconstructs the augmented input, erased blocks included); noise is added in standardised units
(the original adds it to raw weights); the permutation pool contains the identity (so the un-permuted models that
sampling encodes are always trained on).
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
from ..symmetry import analyze, permutation_index, random_permutations
from .hr_augment import random_erase
from .hr_kde import kde_sample_per_dim, top_quantile_rows
from .hr_model import ProjectionHead, TransformerAE, nt_xent
from .normalize import Standardizer
from .registry import register
from .tokenize import Tokenizer
from .training import Optim, add_noise, epoch_batches, train_loop


@dataclasses.dataclass(frozen=True)
class HRConfig(Config):
    """Hyperparameters of Hyper-Representations.

    Attributes:
        d_model: transformer width (token embedding size).
        heads: attention heads.
        layers: transformer blocks in the encoder and in the decoder each.
        d_ff: feed-forward width of a block.
        dropout: dropout in the blocks.
        latent_dim: size of the hyper-representation z.
        compression: "linear" (the whole encoded sequence maps to z, ghrp's default) or "token" (a learned
            compression token).
        projection_layers: hidden layers of the projection head (Linear-BatchNorm-ReLU at width latent_dim).
        projection_dim: the projection head's output size.
        gamma: weight of NT-Xent; 1 - gamma weighs the reconstruction MSE.
        temperature: NT-Xent temperature.
        permutations: random permutations in the pool the views draw from (besides the identity); 0 disables the
            permutation augmentation.
        noise: std of the additive noise augmentation of the input views, in layer-standardised units (the
            reconstruction target stays clean).
        weight_noise: std of Gaussian noise added to each batch's training weights before the views are made,
            in layer-standardised units, so the targets are noisy too (the study's "+Gaussian noise"
            ablation; 0 in HR).
        erase_p: probability of random erasing per view.
        erase_scale: (low, high) fraction of the parameters one erased block covers.
        batch_size: zoo models per step (each gives two views).
        optim: AdamW settings.
        top_quantile: sampling keeps training rows with ``select_key`` >= this quantile (0.7: the top 30 %).
        select_key: the zoo metadata key ranking the rows (the study: test accuracy).
        kde_bandwidth: KDE kernel std relative to the std of the kept latents.
        kde_quirk: reproduce the study's coupled sklearn sampling (one training latent + a constant shift).
    """

    d_model: int = 64
    heads: int = 4
    layers: int = 2
    d_ff: int = 128
    dropout: float = 0.0
    latent_dim: int = 64
    compression: Literal["linear", "token"] = "linear"
    projection_layers: int = 2
    projection_dim: int = 32
    gamma: float = 0.05
    temperature: float = 0.1
    permutations: int = 4
    noise: float = 0.05
    weight_noise: float = 0.0
    erase_p: float = 0.5
    erase_scale: tuple[float, float] = (0.02, 0.33)
    batch_size: int = 32
    optim: Optim = Optim(steps=600, lr=3e-3, weight_decay=1e-5, warmup_steps=50, grad_clip=5.0)
    top_quantile: float = 0.7
    select_key: str = "test_accuracy"
    kde_bandwidth: float = 0.002
    kde_quirk: bool = False

    def __post_init__(self) -> None:
        check_regularisation(self)
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"HRConfig.gamma must be in [0, 1]; got {self.gamma!r}")
        if not 0.0 <= self.top_quantile <= 1.0:
            raise ValueError(f"HRConfig.top_quantile must be in [0, 1]; got {self.top_quantile!r}")
        low, high = self.erase_scale
        if not 0.0 <= low <= high <= 1.0 or not 0.0 <= self.erase_p <= 1.0:
            raise ValueError(f"HRConfig needs 0 <= erase_p <= 1 and 0 <= erase_scale[0] <= erase_scale[1] <= 1; got "
                             f"erase_p={self.erase_p!r}, erase_scale={self.erase_scale!r}")
        if self.batch_size < 2:
            raise ValueError(f"HRConfig.batch_size must be >= 2 (NT-Xent needs negatives); got {self.batch_size!r}")
        if self.noise < 0 or self.kde_bandwidth < 0 or self.temperature <= 0 or self.permutations < 0:
            raise ValueError("HRConfig needs noise >= 0, kde_bandwidth >= 0, temperature > 0, permutations >= 0; got "
                             f"{self.noise!r}, {self.kde_bandwidth!r}, {self.temperature!r}, {self.permutations!r}")


# The demo's zoo (cached by ``demo_zoo``): HR's zoo holds several epochs of every run (study_spec §3.1); here 16
# digits CNN runs, each checkpointed at init and after each of 8 epochs (144 rows, D = 2,464).
DEMO_ZOO = {"arch": "cnn", "data": "digits", "n_runs": 16, "epochs": 8, "seed": 0}


def demo_zoo(cache_dir: str | os.PathLike | None = None, progress: bool = False, **overrides: Any) -> Zoo:
    """The "demo" config's training zoo: ``zoo.trajectories("cnn", zoo.digits(), n_runs, epochs)`` with
    ``DEMO_ZOO``'s settings (``overrides`` replace entries, e.g. ``n_runs=6`` for a smoke run), cached on disk.

    Raises:
        ValueError: an override that is not a ``DEMO_ZOO`` key.
    """
    params = zoo_params(DEMO_ZOO, overrides)
    return zoo_lib.cached("trajectories", params, lambda: zoo_lib.trajectories(
        params["arch"], zoo_lib.digits(), params["n_runs"], params["epochs"], seed=params["seed"],
        progress=progress), cache_dir=cache_dir)


@register("hr")
class HyperRepresentations(Generator):
    """Hyper-Representations: transformer autoencoder on per-neuron tokens, KDE sampling of latents.

    Fit on a zoo of feed-forward chains (the ``cnn`` zoo: D = 2,464) whose metadata carries ``select_key``
    (``train_zoo`` records "test_accuracy"). Besides ``sample``, ``encode`` and ``reconstruct`` expose the
    autoencoder (the study compares generated models with reconstructed training models).

    ``sample(n, seed, kde_quirk=None, kde_bandwidth=None)``: the keyword arguments override the config's for this
    call.
    """

    config_class = HRConfig
    configs = {
        "demo": HRConfig(),
        # The study's SVHN model has 223M parameters (study_spec §7), but its config_ae.json is not in the study's
        # repo: the sizes below are of that order [unverified]; lr and weight decay are ghrp's code defaults. The
        # permutation pool holds int64 [P, D] gather maps, so it stays at 1,000 (20 MB at D = 2,464).
        "paper": HRConfig(d_model=1024, heads=8, layers=4, d_ff=4096, dropout=0.1, latent_dim=700,
                          projection_layers=4, projection_dim=400, permutations=1000, batch_size=500,
                          optim=Optim(steps=100_000, lr=3e-4, weight_decay=3e-5, warmup_steps=1000, grad_clip=5.0)),
    }

    def _build(self) -> None:
        cfg = self.config
        self.tokenizer = Tokenizer.per_neuron(self.layout).to(self.device)
        self.ae = TransformerAE(self.tokenizer, cfg.d_model, cfg.heads, cfg.layers, cfg.d_ff, cfg.dropout,
                                cfg.latent_dim, cfg.compression).to(self.device)

    def _fit(self, zoo: Zoo, progress: bool) -> None:
        cfg = self.config
        scores = _scores(zoo, cfg.select_key)
        weights = zoo.weights.to(self.device)
        self.standardizer = Standardizer.fit(weights, self.layout, granularity="layer")
        self._build()
        head = ProjectionHead(cfg.latent_dim, cfg.projection_dim, cfg.projection_layers).to(self.device)
        # HR's pool of precomputed permutations, the identity included (module docstring).
        chain = analyze(self.layout)
        identity = torch.arange(self.layout.size, device=self.device)[None]
        pool = [identity]
        if chain.hidden:
            pool.append(permutation_index(chain, random_permutations(chain, cfg.permutations, device=self.device)))
        pool = torch.cat(pool)
        x = self.standardizer.normalize(weights)
        batches = epoch_batches(len(zoo), cfg.batch_size, device=self.device)

        def views(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            clean = batch.gather(1, pool[torch.randint(len(pool), batch.shape[:1], device=self.device)])
            noisy = random_erase(add_noise(clean, cfg.noise), cfg.erase_p, cfg.erase_scale)
            return self.tokenizer.tokens(noisy), self.tokenizer.tokens(clean)

        def loss(step: int) -> torch.Tensor:
            rows = next(batches)
            batch = add_noise(x[rows], cfg.weight_noise)
            (in_i, target_i), (in_j, target_j) = views(batch), views(batch)
            z = self.ae.encode(torch.cat([in_i, in_j]))
            recon = self.ae.decode(z)
            mse = ((recon - torch.cat([target_i, target_j])) ** 2).sum() / (2 * len(rows) * self.layout.size)
            z_i, z_j = z.chunk(2)
            contrast = nt_xent(head(z_i), head(z_j), cfg.temperature) if cfg.gamma > 0 else mse.new_zeros(())
            return cfg.gamma * contrast + (1 - cfg.gamma) * mse

        self.ae.train()
        head.train()
        train_loop(loss, list(self.ae.parameters()) + list(head.parameters()), cfg.optim, progress=progress,
                   desc="hr")
        self.ae.eval()
        self.latents = self.encode(weights[top_quantile_rows(scores, cfg.top_quantile).to(self.device)])

    @torch.no_grad()
    def encode(self, weights: torch.Tensor) -> torch.Tensor:
        """Hyper-representations of flat weights: float32 [B, D] in ``self.layout`` -> [B, latent_dim].

        Raises:
            RuntimeError: not fitted.
            ValueError: ``weights`` is not [B, D].
        """
        self._require_fitted()
        self.ae.eval()
        normalized = self.standardizer.normalize(_matrix("weights", weights, self.layout.size))
        return self.ae.encode(self.tokenizer.tokens(normalized))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Flat weights [B, D] decoded from latents [B, latent_dim].

        Raises:
            RuntimeError: not fitted.
            ValueError: ``latents`` is not [B, latent_dim].
        """
        self._require_fitted()
        self.ae.eval()
        return self.standardizer.denormalize(self.tokenizer.flat(self.ae.decode(
            _matrix("latents", latents, self.config.latent_dim))))

    def reconstruct(self, weights: torch.Tensor) -> torch.Tensor:
        """``decode(encode(weights))``: float32 [B, D] -> [B, D] (the study's reconstructed training models)."""
        return self.decode(self.encode(weights))

    def sample_latents(self, n: int, seed: int, kde_quirk: bool | None = None,
                       kde_bandwidth: float | None = None) -> torch.Tensor:
        """The latents [n, latent_dim] that ``sample(n, seed, ...)`` decodes: KDE draws around the kept training
        latents ``self.latents`` (config values where an argument is None)."""
        self._require_fitted()
        return self._draw(n, torch.Generator(device=self.device).manual_seed(seed), kde_quirk, kde_bandwidth)

    def _draw(self, n: int, generator: torch.Generator, kde_quirk: bool | None,
              kde_bandwidth: float | None) -> torch.Tensor:
        quirk = self.config.kde_quirk if kde_quirk is None else kde_quirk
        relative = self.config.kde_bandwidth if kde_bandwidth is None else kde_bandwidth
        scale = float(self.latents.std()) if self.latents.numel() > 1 else 1.0
        return kde_sample_per_dim(self.latents, n, relative * scale, generator, coupled=quirk)

    def _sample(self, n: int, generator: torch.Generator, kde_quirk: bool | None = None,
                kde_bandwidth: float | None = None) -> torch.Tensor:
        return self.decode(self._draw(n, generator, kde_quirk, kde_bandwidth))

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = module_tensors("ae", self.ae) | module_tensors("standardizer", self.standardizer)
        return tensors | {"latents": self.latents}, {}

    def _restore(self, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        self._build()
        self.ae.load_state_dict(sub_tensors(tensors, "ae"))
        self.ae.eval()
        stats = sub_tensors(tensors, "standardizer")
        self.standardizer = Standardizer(stats["shift"], stats["scale"]).to(self.device)
        self.latents = tensors["latents"]

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError("HyperRepresentations is not fitted; call fit(zoo) or load a saved generator first")


def _scores(zoo: Zoo, key: str) -> torch.Tensor:
    missing = [row for row, entry in enumerate(zoo.metadata) if not isinstance(entry.get(key), (int, float))]
    if missing:
        raise ValueError(f"zoo.metadata needs a number under {key!r} for every row to rank models for sampling; rows "
                         f"{missing[:5]} lack it; train the zoo with zoo.train_zoo or set HRConfig.select_key")
    return torch.tensor([float(entry[key]) for entry in zoo.metadata], dtype=torch.float64)


def _matrix(name: str, values: torch.Tensor, width: int) -> torch.Tensor:
    if not isinstance(values, torch.Tensor) or values.dim() != 2 or values.shape[1] != width:
        got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"{name} must be a float tensor [B, {width}] for this generator; got {got}")
    return values.float()
