"""P-diff's two networks (study_spec §6.2): the 1-D convolutional autoencoder over standardised flat parameters,
and the 1-D CNN U-Net that denoises its latent vectors.

Shapes use [B] for the batch, D for the parameters, L for the latent size.

``OneDimAE`` (P-diff's "OneDimVAE" with its KL weight 0 and fixed latent noise, which make it an autoencoder):
- encoder: the input [B, D] is zero-padded to a length divisible by 2^k and treated as one channel; k Conv1d
  stages (kernel 7, stride 2, padding 3), each with BatchNorm and LeakyReLU, through ``channels``; flatten;
  Linear to L; Linear to the mean mu (P-diff's mu head; its log-variance head is never used, so it is left out);
- decoder: Linear L -> channels[-1] x length / 2^k; k ConvTranspose1d stages (stride 2, output padding 1, each
  with BatchNorm and ELU) through the reversed channels, the last one keeping channels[0]; Conv1d to 1 channel
  (kernel 7); the padding is cut off;
- in training mode only: the input gets N(0, input_noise^2) noise and the latent is mu + latent_noise * N(0, I).

``OneDimUNet`` (P-diff's denoiser): the latent [B, 1, L] as a 1-channel sequence of length L. Conv1d layers
(kernel 7, stride 1) through encoder channels ``(1,) + channels + (bottleneck, channels[-1])`` and decoder
channels ``reversed(channels[:-1]) + (1,)``; the input of decoder layer j gets the encoder output of the same
width added (P-diff's skip additions); every layer but the last has BatchNorm and ELU. The timestep enters as a
sinusoidal embedding -> Linear -> SiLU -> Linear to L values, added along the length axis to the input of every
layer. At paper size (channels (64, 128, 256), bottleneck 512, L = 128): 1->64->128->256->512->256, then
256->128->64->1 with skips from the 256, 128 and 64 outputs.
"""
from __future__ import annotations

import torch
from torch import nn

from .embeddings import sinusoidal_embedding


class OneDimAE(nn.Module):
    """P-diff's latent autoencoder of flat parameter vectors (see the module docstring).

    Args:
        in_dim: D, the parameters per model.
        channels: the encoder's Conv1d widths, one stride-2 stage each (paper: (64, 128, 256, 256, 32)).
        latent_dim: L (paper: 128).
        kernel_size: of every convolution (odd; paper: 7).
        input_noise: std of the noise added to the input in training (paper: 0.001).
        latent_noise: std of the noise added to the latent in training (paper: 0.1).

    Raises:
        ValueError: a non-positive size, an even kernel, or negative noise.
    """

    def __init__(self, in_dim: int, channels: tuple[int, ...], latent_dim: int, kernel_size: int = 7,
                 input_noise: float = 0.001, latent_noise: float = 0.1) -> None:
        super().__init__()
        _check_sizes(channels, kernel_size, in_dim=in_dim, latent_dim=latent_dim)
        if input_noise < 0 or latent_noise < 0:
            raise ValueError(f"input_noise and latent_noise must be >= 0; got {input_noise!r}, {latent_noise!r}")
        stride = 2 ** len(channels)
        self.in_dim, self.input_noise, self.latent_noise = in_dim, float(input_noise), float(latent_noise)
        self.length = -(-in_dim // stride) * stride  # D padded up to a multiple of 2^k
        self.reduced = self.length // stride
        pad = kernel_size // 2
        widths = (1,) + tuple(channels)
        self.encoder = nn.Sequential(*(
            nn.Sequential(nn.Conv1d(c_in, c_out, kernel_size, stride=2, padding=pad), nn.BatchNorm1d(c_out),
                          nn.LeakyReLU())
            for c_in, c_out in zip(widths[:-1], widths[1:])))
        self.to_latent = nn.Linear(channels[-1] * self.reduced, latent_dim)
        self.mu = nn.Linear(latent_dim, latent_dim)
        self.from_latent = nn.Linear(latent_dim, channels[-1] * self.reduced)
        up = tuple(reversed(channels)) + (channels[0],)
        self.decoder = nn.Sequential(*(
            nn.Sequential(nn.ConvTranspose1d(c_in, c_out, kernel_size, stride=2, padding=pad, output_padding=1),
                          nn.BatchNorm1d(c_out), nn.ELU())
            for c_in, c_out in zip(up[:-1], up[1:])))
        self.head = nn.Conv1d(channels[0], 1, kernel_size, padding=pad)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[B, D] standardised parameters -> [B, L] latent means (no noise; the input noise is ``forward``'s)."""
        h = nn.functional.pad(x, (0, self.length - self.in_dim)).unsqueeze(1)
        return self.mu(self.to_latent(self.encoder(h).flatten(1)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """[B, L] latents -> [B, D] standardised parameters."""
        h = self.from_latent(z).view(z.shape[0], -1, self.reduced)
        return self.head(self.decoder(h)).squeeze(1)[:, :self.in_dim]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction [B, D] of ``x`` [B, D]; in training mode with P-diff's input and latent noise."""
        if self.training:
            x = x + self.input_noise * torch.randn_like(x)
        z = self.encode(x)
        if self.training:
            z = z + self.latent_noise * torch.randn_like(z)
        return self.decode(z)


class OneDimUNet(nn.Module):
    """P-diff's denoiser over latents [B, 1, L] (see the module docstring); ``forward(x_t, t)`` returns the
    predicted noise [B, 1, L].

    Args:
        length: L, the latent size (the time embedding has L values, one per position).
        channels: encoder widths whose outputs feed the skips (paper: (64, 128, 256)).
        bottleneck: the widest layer (paper: 512).
        time_dim: size of the sinusoidal timestep embedding (paper: 256).
        kernel_size: of every convolution (odd; paper: 7).

    Raises:
        ValueError: a non-positive size or an even kernel.
    """

    def __init__(self, length: int, channels: tuple[int, ...], bottleneck: int, time_dim: int = 256,
                 kernel_size: int = 7) -> None:
        super().__init__()
        _check_sizes(channels, kernel_size, length=length, bottleneck=bottleneck, time_dim=time_dim)
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, length), nn.SiLU(), nn.Linear(length, length))
        down = (1,) + tuple(channels) + (bottleneck, channels[-1])
        up = (channels[-1],) + tuple(reversed(channels[:-1])) + (1,)
        self.down = nn.ModuleList(_conv_block(c_in, c_out, kernel_size) for c_in, c_out in zip(down[:-1], down[1:]))
        self.up = nn.ModuleList(_conv_block(c_in, c_out, kernel_size, last=k == len(up) - 2)
                                for k, (c_in, c_out) in enumerate(zip(up[:-1], up[1:])))
        self.skips = len(channels)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predicted noise [B, 1, L] for noisy latents ``x`` [B, 1, L] at timesteps ``t`` (int64 [B])."""
        emb = self.time_mlp(sinusoidal_embedding(t, self.time_dim)).unsqueeze(1)  # [B, 1, L], broadcast over channels
        outputs = []
        for layer in self.down:
            x = layer(x + emb)
            outputs.append(x)
        skips = outputs[:self.skips][::-1]  # the outputs of widths channels[-1], ..., channels[0]
        for layer, skip in zip(self.up, skips):
            x = layer(x + skip + emb)
        return x


def _conv_block(c_in: int, c_out: int, kernel_size: int, last: bool = False) -> nn.Module:
    conv = nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2)
    return conv if last else nn.Sequential(conv, nn.BatchNorm1d(c_out), nn.ELU())


def _check_sizes(channels: tuple[int, ...], kernel_size: int, **sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")
    if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
        raise ValueError(f"channels must be a non-empty tuple of positive ints; got {channels!r}")
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int (the convolutions keep lengths with padding k // 2); "
                         f"got {kernel_size}")
