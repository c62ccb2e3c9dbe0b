"""P-diff (Wang et al., "Neural Network Diffusion", 2024; study_spec §6): latent diffusion over a subset of one
model's parameters, trained on consecutive fine-tuning checkpoints of that subset.

    base, zoo = pdiff_zoo()                                   # cnn_bn on digits; its last two BN layers' affine params
    generator = PDiff().fit(zoo, "demo", base=base)
    samples = generator.sample(200, seed=0)                   # [200, D] in zoo.layout
    scores = weightmem_fast.evaluate(generator.base_model(), samples, data.test_x, data.test_y, layout=zoo.layout)

The method (study_spec §6.2), step by step:
1. standardise each tensor of the subset with P-diff's statistics (``Standardizer``, granularity "tensor",
   statistics "per_model": mean over checkpoints of each checkpoint's tensor mean and unbiased std);
2. train the 1-D convolutional autoencoder ``OneDimAE`` with MSE, input noise 0.001 and latent noise 0.1;
3. train a DDPM (1000 steps, linear betas 1e-4..2e-2, eps-prediction, MSE) with the 1-D CNN U-Net ``OneDimUNet`` on
   the autoencoder's latent means of the training checkpoints;
4. sample: ancestral DDPM with the posterior variance from N(0, I), decode, undo the standardisation. The rest of
   the network is the base model's (``base_model``), BatchNorm running statistics included, as P-diff evaluates.

Scaled down or different: the demo sizes (``PDiff.configs["demo"]``); float32 instead of bf16 autocast; the
autoencoder's unused log-variance head is left out; the generator's modules are in eval mode when sampling unless
``decode_batchnorm_quirk`` asks for the study's decoding with per-sample BatchNorm statistics.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
from typing import Any, Iterator

import torch
from torch import nn

from ..io import Zoo
from ..zoo.models import make_model, model_from_zoo
from .base import Generator, module_tensors, sub_tensors
from .config import Config
from .diffusion import GaussianDiffusion
from .normalize import Standardizer
from .pdiff_nets import OneDimAE, OneDimUNet
from .registry import register
from .training import Optim, epoch_batches, train_loop

# The zoo metadata keys that rebuild a base model without a template (``train_zoo`` writes them).
_ARCH_KEYS = ("arch", "input_shape", "classes", "arch_kwargs", "init")


@dataclasses.dataclass(frozen=True)
class PDiffConfig(Config):
    """P-diff's hyperparameters (study_spec §6.2; the defaults are the published sizes).

    Attributes:
        ae_channels: the autoencoder's Conv1d widths, one stride-2 stage each.
        latent_dim: L, the latent size (also the denoiser's sequence length).
        kernel_size: of every convolution in both networks.
        input_noise, latent_noise: std of the autoencoder's training noise on its input and its latent.
        ae_batch_size, ae_optim: the autoencoder's training.
        unet_channels, unet_bottleneck: the denoiser's widths (see ``OneDimUNet``).
        time_dim: size of the sinusoidal timestep embedding.
        diffusion_steps, beta_start, beta_end: the linear-schedule DDPM.
        ddpm_batch_size, ddpm_optim: the denoiser's training.
        decode_batchnorm_quirk: decode every sample alone with the decoder's BatchNorm normalising by that sample's
            own statistics, as the study's sampling script does (it never switches the autoencoder to eval mode).
    """

    ae_channels: tuple[int, ...] = (64, 128, 256, 256, 32)
    latent_dim: int = 128
    kernel_size: int = 7
    input_noise: float = 0.001
    latent_noise: float = 0.1
    ae_batch_size: int = 50
    ae_optim: Optim = Optim(steps=500, lr=2e-5)
    unet_channels: tuple[int, ...] = (64, 128, 256)
    unet_bottleneck: int = 512
    time_dim: int = 256
    diffusion_steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 2e-2
    ddpm_batch_size: int = 50
    ddpm_optim: Optim = Optim(steps=1000, lr=1e-4)
    decode_batchnorm_quirk: bool = False


@register("pdiff")
class PDiff(Generator):
    """P-diff: a latent DDPM over the parameter subset of a zoo of consecutive checkpoints (module docstring).

    ``fit`` needs the base model (``base=``): the samples replace only the zoo's tensors, and every other tensor
    of the network, BatchNorm running statistics included, is the base model's. The generator keeps the base
    state_dict, saves it with its own tensors, and rebuilds the full network with ``base_model``.

    Attributes (after ``fit`` or ``load``):
        standardizer: the per-tensor ``Standardizer``.
        autoencoder: the ``OneDimAE``.
        denoiser: the ``OneDimUNet``.
        base_state: the base model's state_dict (on ``device``).
        base_arch: the base model's architecture metadata (``arch``, ``input_shape``, ``classes``, ``arch_kwargs``,
            ``init``) when the base was given as a one-row ``train_zoo`` zoo; else None.
        ae_losses, ddpm_losses: the training losses of the last ``fit`` (empty after ``load``).
    """

    config_class = PDiffConfig
    # demo: on pdiff_zoo() (D = 64, 300 checkpoints) fit takes about 41 s of CPU time on one thread and 200 samples
    # about 13 s; mean sample accuracy 0.966 against the checkpoints' 0.962 (measured for issue 7).
    configs = {
        "demo": PDiffConfig(ae_channels=(16, 32, 32, 8), latent_dim=32, ae_optim=Optim(steps=1000, lr=1e-3),
                            unet_channels=(16, 32, 32), unet_bottleneck=64, time_dim=64,
                            ddpm_optim=Optim(steps=2000, lr=1e-3)),
        "paper": PDiffConfig(),
    }

    def __init__(self, device: torch.device | str = "cpu") -> None:
        super().__init__(device)
        self.base_state: dict[str, torch.Tensor] = {}
        self.base_arch: dict[str, Any] | None = None
        self._base_module: nn.Module | None = None
        self.ae_losses: list[float] = []
        self.ddpm_losses: list[float] = []

    def fit(self, zoo: Zoo, config: str | Config | None = None, progress: bool = True, *,
            base: nn.Module | Zoo | None = None, **overrides: Any) -> "PDiff":
        """Trains the autoencoder, then the latent DDPM, on every row of ``zoo`` (``Generator.fit``).

        Args:
            zoo: consecutive checkpoints of a parameter subset (``zoo.consecutive_checkpoints``).
            config, progress, **overrides: as ``Generator.fit``.
            base: the model the checkpoints were fine-tuned from: an ``nn.Module``, or a one-row zoo from
                ``train_zoo`` (then ``base_model`` needs no template after ``load``).

        Raises:
            ValueError: no ``base``, a base zoo of more than one row, or a zoo tensor the base lacks or shapes
                differently; otherwise as ``Generator.fit``.
            TypeError: ``base`` is not a module or a Zoo.
        """
        module, arch = _base_module(base)
        if isinstance(zoo, Zoo):
            _check_subset(zoo, module)
        self._base_module = copy.deepcopy(module).to(self.device).eval()
        self.base_state = {name: t.detach().clone() for name, t in self._base_module.state_dict().items()}
        self.base_arch = arch
        return super().fit(zoo, config, progress, **overrides)

    def base_model(self, template: nn.Module | None = None) -> nn.Module:
        """A new copy of the base model in eval mode, on ``device``: the network the samples plug into.

        Args:
            template: a module of the base's architecture, needed only after ``load`` when the base was given as an
                ``nn.Module`` (the architecture of an arbitrary module is not saved); its tensors are replaced.

        Raises:
            RuntimeError: not fitted, or the architecture is unknown and no template was given.
        """
        if not self.fitted:
            raise RuntimeError("PDiff is not fitted; call fit(zoo, base=...) or load a saved generator first")
        if template is not None:
            model = copy.deepcopy(template)
        elif self._base_module is not None:
            model = copy.deepcopy(self._base_module)
        elif self.base_arch is not None:
            arch = self.base_arch
            model = make_model(arch["arch"], arch["input_shape"], arch["classes"], seed=0, init=arch["init"],
                               **arch["arch_kwargs"])
        else:
            raise RuntimeError("the base model's architecture was not saved (fit got an nn.Module); pass "
                               "template= (a module of that architecture) to base_model")
        model.load_state_dict(self.base_state)
        return model.to(self.device).eval()

    # ------------------------------------------------------------------------------------------------------------

    def _fit(self, zoo: Zoo, progress: bool) -> None:
        cfg = self.config
        weights = zoo.weights.to(self.device)
        self.standardizer = Standardizer.fit(weights, zoo.layout, granularity="tensor", statistics="per_model")
        x = self.standardizer.normalize(weights)
        self._build()
        rows = epoch_batches(len(x), cfg.ae_batch_size, device=self.device)

        def ae_loss(step: int) -> torch.Tensor:
            batch = x[next(rows)]
            return nn.functional.mse_loss(self.autoencoder(batch), batch)

        self.autoencoder.train()
        self.ae_losses = train_loop(ae_loss, self.autoencoder.parameters(), cfg.ae_optim, progress=progress,
                                    desc="P-diff autoencoder")
        self.autoencoder.eval()
        with torch.no_grad():
            latents = self.autoencoder.encode(x).unsqueeze(1)  # [N, 1, L]: the denoiser's 1-channel sequences
        diffusion = self._diffusion()
        latent_rows = epoch_batches(len(latents), cfg.ddpm_batch_size, device=self.device)
        self.denoiser.train()
        self.ddpm_losses = train_loop(lambda step: diffusion.training_loss(self.denoiser, latents[next(latent_rows)]),
                                      self.denoiser.parameters(), cfg.ddpm_optim, progress=progress,
                                      desc="P-diff latent DDPM")
        self.denoiser.eval()

    def _sample(self, n: int, generator: torch.Generator, **conditioning: Any) -> torch.Tensor:
        if conditioning:
            raise ValueError(f"P-diff is unconditional; sample takes no conditioning, got {sorted(conditioning)}")
        self.autoencoder.eval()
        self.denoiser.eval()
        latents = self._diffusion().ddpm_sample(self.denoiser, (n, 1, self.config.latent_dim), generator=generator,
                                                variance="posterior", device=self.device).squeeze(1)
        if self.config.decode_batchnorm_quirk:
            with _batchnorm_batch_statistics(self.autoencoder):
                decoded = torch.cat([self.autoencoder.decode(z) for z in latents.split(1)])
        else:
            decoded = self.autoencoder.decode(latents)
        return self.standardizer.denormalize(decoded).float()

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = (module_tensors("standardizer", self.standardizer) | module_tensors("autoencoder", self.autoencoder)
                   | module_tensors("denoiser", self.denoiser)
                   | {f"base.{name}": t for name, t in self.base_state.items()})
        return tensors, {"base_arch": self.base_arch}

    def _restore(self, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        standardizer = sub_tensors(tensors, "standardizer")
        self.standardizer = Standardizer(standardizer["shift"], standardizer["scale"]).to(self.device)
        self._build()
        self.autoencoder.load_state_dict(sub_tensors(tensors, "autoencoder"))
        self.denoiser.load_state_dict(sub_tensors(tensors, "denoiser"))
        self.autoencoder.eval()
        self.denoiser.eval()
        self.base_state = sub_tensors(tensors, "base")
        self.base_arch = info["base_arch"]
        self._base_module = None

    def _build(self) -> None:
        """New networks for ``self.config`` and ``self.layout``, on ``self.device``."""
        cfg = self.config
        self.autoencoder = OneDimAE(self.layout.size, cfg.ae_channels, cfg.latent_dim, cfg.kernel_size,
                                    cfg.input_noise, cfg.latent_noise).to(self.device)
        self.denoiser = OneDimUNet(cfg.latent_dim, cfg.unet_channels, cfg.unet_bottleneck, cfg.time_dim,
                                   cfg.kernel_size).to(self.device)

    def _diffusion(self) -> GaussianDiffusion:
        cfg = self.config
        return GaussianDiffusion(cfg.diffusion_steps, cfg.beta_start, cfg.beta_end, "linear", prediction="eps")


def _base_module(base: object) -> tuple[nn.Module, dict[str, Any] | None]:
    """(the base module, its architecture metadata or None) from ``fit``'s ``base`` argument."""
    if base is None:
        raise ValueError("PDiff.fit needs base=: the model the checkpoints were fine-tuned from (an nn.Module, or "
                         "the one-row train_zoo zoo passed to consecutive_checkpoints); P-diff generates only a "
                         "subset of its tensors")
    if isinstance(base, Zoo):
        if len(base) != 1:
            raise ValueError(f"base must be a model or a one-row zoo; got a zoo of {len(base)} rows (pass zoo[i])")
        entry = base.metadata[0]
        arch = {key: entry[key] for key in _ARCH_KEYS} if all(key in entry for key in _ARCH_KEYS) else None
        return model_from_zoo(base, 0), arch
    if isinstance(base, nn.Module):
        return base, None
    raise TypeError(f"base must be an nn.Module or a one-row Zoo; got {type(base).__name__}")


def _check_subset(zoo: Zoo, module: nn.Module) -> None:
    """Every tensor of the zoo's layout is a tensor of the base model, of the same shape."""
    state = module.state_dict()
    for entry in zoo.layout.entries:
        if entry.name not in state or tuple(state[entry.name].shape) != tuple(entry.shape):
            got = tuple(state[entry.name].shape) if entry.name in state else "no such tensor"
            raise ValueError(f"zoo.layout's tensor {entry.name!r} {tuple(entry.shape)} does not match the base model "
                             f"({got}); pass the base model the checkpoints were fine-tuned from")


@contextlib.contextmanager
def _batchnorm_batch_statistics(module: nn.Module) -> Iterator[None]:
    """Inside the block the module's BatchNorm layers normalise by batch statistics and leave every buffer unchanged
    (train mode without tracking: torch neither reads nor updates the running statistics); restored on exit."""
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.track_running_stats) for m in layers]
    for m in layers:
        m.train()
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, (training, tracking) in zip(layers, saved):
            m.train(training)
            m.track_running_stats = tracking
