"""Gaussian diffusion for any denoiser (issue 7): the forward process, the training loss, DDPM ancestral sampling
and DDIM sampling, on tensors of any shape [B, ...].

The methods that use it (study_spec §4.2, §5.2, §6.2):
- G.pt: 1000 steps, linear betas 1e-4..2e-2, x0-prediction, ancestral DDPM with fixed-large variance;
- HyperDiffusion: 500 steps, linear 1e-4..2e-2, x0-prediction, DDIM with eta = 0 over all steps;
- P-diff: 1000 steps, linear 1e-4..2e-2, eps-prediction, ancestral DDPM with the posterior variance.

The denoiser is any callable ``model(x_t, t, **cond) -> output`` with ``x_t`` [B, ...], ``t`` int64 [B] holding
timestep indices in ``[0, steps)`` (DDIM passes the original indices of its subset, so a model trained on all steps
samples with any subset), and the output shaped like ``x_t``: the predicted x0 or eps, per ``prediction``.
Randomness comes from an optional ``torch.Generator`` on the tensors' device, so a seeded generator gives the same
samples on every call; without one, torch's global RNG is used. Sampling runs under ``torch.no_grad``; put the
model in eval mode first.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Literal, Sequence

import torch
from tqdm.auto import tqdm

Denoiser = Callable[..., torch.Tensor]

# Nichol & Dhariwal's cosine schedule: offset s and the cap on beta that keeps the last steps finite.
_COSINE_OFFSET = 0.008
_MAX_BETA = 0.999


class GaussianDiffusion:
    """A discrete Gaussian diffusion of ``steps`` steps: ``q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)`` with
    ``abar_t = prod_{s <= t} (1 - beta_s)`` for t = 0..steps-1.

    Args:
        steps: T, the number of diffusion steps.
        beta_start, beta_end: the first and last beta of the "linear" schedule (ignored by "cosine").
        schedule: "linear" (DDPM, ADM) or "cosine" (Nichol & Dhariwal, 2021).
        prediction: what the denoiser outputs: "x0" (G.pt, HyperDiffusion) or "eps" (P-diff).

    Attributes:
        betas, alphas_cumprod, alphas_cumprod_prev (abar_{t-1}, 1 at t = 0), posterior_variance
        (beta_t (1 - abar_{t-1}) / (1 - abar_t)): float64 tensors [T] on the CPU.

    Raises:
        ValueError: a bad ``steps``, betas outside 0 < beta_start <= beta_end < 1, or an unknown ``schedule`` or
            ``prediction``.
    """

    def __init__(self, steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 2e-2,
                 schedule: Literal["linear", "cosine"] = "linear",
                 prediction: Literal["x0", "eps"] = "x0") -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive int; got {steps!r}")
        if schedule not in ("linear", "cosine"):
            raise ValueError(f"schedule must be 'linear' or 'cosine'; got {schedule!r}")
        if prediction not in ("x0", "eps"):
            raise ValueError(f"prediction must be 'x0' or 'eps'; got {prediction!r}")
        if schedule == "linear":
            if not 0 < beta_start <= beta_end < 1:
                raise ValueError(f"the linear schedule needs 0 < beta_start <= beta_end < 1; got beta_start="
                                 f"{beta_start!r}, beta_end={beta_end!r}")
            betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
        else:
            f = torch.cos((torch.arange(steps + 1, dtype=torch.float64) / steps + _COSINE_OFFSET)
                          / (1 + _COSINE_OFFSET) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=_MAX_BETA)
        self.steps, self.schedule, self.prediction = steps, schedule, prediction
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        self.posterior_variance = betas * (1 - self.alphas_cumprod_prev) / (1 - self.alphas_cumprod)
        self._mean_x0 = betas * self.alphas_cumprod_prev.sqrt() / (1 - self.alphas_cumprod)
        self._mean_xt = (1 - self.alphas_cumprod_prev) * (1 - betas).sqrt() / (1 - self.alphas_cumprod)

    def __repr__(self) -> str:
        return (f"GaussianDiffusion(steps={self.steps}, schedule={self.schedule!r}, "
                f"betas={float(self.betas[0]):.3g}..{float(self.betas[-1]):.3g}, prediction={self.prediction!r})")

    # ------------------------------------------------------------------------------------------------------------
    # Forward process and training
    # ------------------------------------------------------------------------------------------------------------

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None, *,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``.

        Args:
            x0: [B, ...] clean data (floating).
            t: int64 [B] timestep indices in [0, T).
            noise: [B, ...] standard normal noise; drawn from ``generator`` if None.

        Returns:
            x_t [B, ...], ``x0``'s dtype and device.
        """
        self._check_batch(x0, t)
        if noise is None:
            noise = _randn(x0.shape, x0, generator)
        elif noise.shape != x0.shape:
            raise ValueError(f"noise must have x0's shape {tuple(x0.shape)}; got {tuple(noise.shape)}")
        return _at(self.alphas_cumprod.sqrt(), t, x0) * x0 + _at((1 - self.alphas_cumprod).sqrt(), t, x0) * noise

    def training_loss(self, model: Denoiser, x0: torch.Tensor, *, generator: torch.Generator | None = None,
                      **cond: Any) -> torch.Tensor:
        """The simple diffusion loss: t ~ U{0..T-1} and eps ~ N(0, I) per row, then the mean squared error between
        ``model(q_sample(x0, t, eps), t, **cond)`` and x0 or eps (per ``prediction``).

        Args:
            model: the denoiser.
            x0: [B, ...] a batch of clean data.
            generator: draws t and eps (on ``x0``'s device).
            **cond: passed to the model unchanged (e.g. G.pt's starting parameters and losses).

        Returns:
            A scalar tensor (differentiable).

        Raises:
            ValueError: the model's output is not shaped like ``x0``.
        """
        _check_data("x0", x0)
        t = torch.randint(0, self.steps, (x0.shape[0],), generator=generator, device=x0.device)
        noise = _randn(x0.shape, x0, generator)
        out = _call(model, self.q_sample(x0, t, noise), t, cond)
        target = x0 if self.prediction == "x0" else noise
        return torch.nn.functional.mse_loss(out, target)

    def predict_x0_eps(self, model_output: torch.Tensor, x_t: torch.Tensor,
                       t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, eps) implied by a model output at ``x_t``: the output is one of them, the other follows from
        ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``."""
        a, s = _at(self.alphas_cumprod.sqrt(), t, x_t), _at((1 - self.alphas_cumprod).sqrt(), t, x_t)
        if self.prediction == "x0":
            return model_output, (x_t - a * model_output) / s
        return (x_t - s * model_output) / a, model_output

    # ------------------------------------------------------------------------------------------------------------
    # Sampling
    # ------------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def ddpm_sample(self, model: Denoiser, shape: Sequence[int], *, generator: torch.Generator | None = None,
                    variance: Literal["posterior", "large"] = "posterior", x_T: torch.Tensor | None = None,
                    device: torch.device | str = "cpu", progress: bool = False, **cond: Any) -> torch.Tensor:
        """Ancestral DDPM sampling over all T steps (Ho et al., 2020).

        From x_{T-1} ~ N(0, I): predict x0, take the posterior mean ``mu(x0, x_t)`` of ``q(x_{t-1} | x_t, x0)``,
        and add ``sqrt(var_t) z`` except at the last step, which returns the mean (the predicted x0).

        Args:
            model: the denoiser.
            shape: [B, ...] of the samples.
            generator: draws x_{T-1} and every z, in that order.
            variance: "posterior" (``posterior_variance``, P-diff) or "large" (beta_t, G.pt's fixed-large).
            x_T: the starting noise [B, ...] instead of a draw (then ``shape`` and ``device`` are taken from it).
            device: where to sample when ``x_T`` is None.
            progress: a tqdm bar over the steps.
            **cond: passed to the model at every step.

        Returns:
            [B, ...] float32 samples (``x_T``'s dtype if given).
        """
        if variance not in ("posterior", "large"):
            raise ValueError(f"variance must be 'posterior' or 'large'; got {variance!r}")
        var = self.posterior_variance if variance == "posterior" else self.betas
        x = self._start(shape, x_T, device, generator)
        for i in tqdm(range(self.steps - 1, -1, -1), desc="DDPM", disable=not progress):
            t = torch.full((x.shape[0],), i, dtype=torch.int64, device=x.device)
            x0, _ = self.predict_x0_eps(_call(model, x, t, cond), x, t)
            mean = float(self._mean_x0[i]) * x0 + float(self._mean_xt[i]) * x
            x = mean + math.sqrt(float(var[i])) * _randn(x.shape, x, generator) if i > 0 else mean
        return x

    @torch.no_grad()
    def ddim_sample(self, model: Denoiser, shape: Sequence[int], *, steps: int | None = None, eta: float = 0.0,
                    generator: torch.Generator | None = None, x_T: torch.Tensor | None = None,
                    device: torch.device | str = "cpu", progress: bool = False, **cond: Any) -> torch.Tensor:
        """DDIM sampling (Song et al., 2021) over the timesteps ``ddim_timesteps(steps)``.

        From timestep t to the previous one p of the subset (abar_p = 1 after the last): predict (x0, eps), then
        ``x_p = sqrt(abar_p) x0 + sqrt(1 - abar_p - sigma^2) eps + sigma z`` with
        ``sigma = eta sqrt((1 - abar_p) / (1 - abar_t) (1 - abar_t / abar_p))``. eta = 0 is deterministic given
        x_T (HyperDiffusion); eta = 1 over all steps is DDPM with the posterior variance.

        Args:
            model: the denoiser.
            shape: [B, ...] of the samples.
            steps: how many timesteps to visit (default: all T).
            eta: >= 0; noise scale.
            generator: draws x_T, then (eta > 0) one z per step but the last.
            x_T: the starting noise [B, ...] instead of a draw.
            device: where to sample when ``x_T`` is None.
            progress: a tqdm bar over the steps.
            **cond: passed to the model at every step.

        Returns:
            [B, ...] float32 samples (``x_T``'s dtype if given).
        """
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not eta >= 0:
            raise ValueError(f"eta must be a number >= 0; got {eta!r}")
        timesteps = self.ddim_timesteps(steps)
        x = self._start(shape, x_T, device, generator)
        for k in tqdm(range(len(timesteps)), desc="DDIM", disable=not progress):
            i = timesteps[k]
            abar_t = float(self.alphas_cumprod[i])
            abar_p = float(self.alphas_cumprod[timesteps[k + 1]]) if k + 1 < len(timesteps) else 1.0
            t = torch.full((x.shape[0],), i, dtype=torch.int64, device=x.device)
            x0, eps = self.predict_x0_eps(_call(model, x, t, cond), x, t)
            sigma = eta * math.sqrt((1 - abar_p) / (1 - abar_t) * (1 - abar_t / abar_p))
            x = math.sqrt(abar_p) * x0 + math.sqrt(max(0.0, 1 - abar_p - sigma ** 2)) * eps
            if sigma > 0:
                x = x + sigma * _randn(x.shape, x, generator)
        return x

    def ddim_timesteps(self, steps: int | None = None) -> list[int]:
        """``steps`` timestep indices evenly spaced over [0, T-1] (both ends included), descending; all T by default.

        ``steps = 1`` visits T-1 only: one jump from noise to the predicted x0.

        Raises:
            ValueError: ``steps`` not in [1, T].
        """
        if steps is None:
            return list(range(self.steps - 1, -1, -1))
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= self.steps:
            raise ValueError(f"steps must be an int in [1, {self.steps}] (the diffusion's T); got {steps!r}")
        if steps == 1:
            return [self.steps - 1]
        spaced = torch.linspace(0, self.steps - 1, steps, dtype=torch.float64).round().long().tolist()
        return sorted(set(spaced), reverse=True)

    # ------------------------------------------------------------------------------------------------------------

    def _check_batch(self, x: torch.Tensor, t: torch.Tensor) -> None:
        _check_data("x0", x)
        if not isinstance(t, torch.Tensor) or t.dtype != torch.int64 or tuple(t.shape) != (x.shape[0],):
            got = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"t must be an int64 tensor [B] = [{x.shape[0]}] of timesteps; got {got}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.steps):
            raise ValueError(f"t must lie in [0, {self.steps}); got values in [{int(t.min())}, {int(t.max())}]")

    def _start(self, shape: Sequence[int], x_T: torch.Tensor | None, device: torch.device | str,
               generator: torch.Generator | None) -> torch.Tensor:
        if x_T is not None:
            _check_data("x_T", x_T)
            return x_T
        shape = tuple(int(s) for s in shape)
        if len(shape) < 1 or min(shape) < 1:
            raise ValueError(f"shape must be [B, ...] with every size >= 1; got {shape}")
        return torch.randn(shape, generator=generator, device=device)


def _check_data(name: str, x: object) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 1:
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a floating tensor [B, ...]; got {got}")


def _at(table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """table[t] as ``like``'s dtype and device, shaped [B, 1, ..., 1] to broadcast over ``like``."""
    values = table.to(like.device)[t].to(like.dtype)
    return values.reshape(-1, *([1] * (like.dim() - 1)))


def _randn(shape: Sequence[int], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=generator, device=like.device, dtype=like.dtype)


def _call(model: Denoiser, x_t: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> torch.Tensor:
    out = model(x_t, t, **cond)
    if not isinstance(out, torch.Tensor) or out.shape != x_t.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the denoiser must return a tensor shaped like x_t {tuple(x_t.shape)}; got {got}")
    return out
