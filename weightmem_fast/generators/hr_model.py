"""Hyper-Representations' networks (study_spec §3.2; ghrp's ``AE_attn``): a transformer autoencoder over per-neuron
tokens of flat weights, its SimCLR projection head and the NT-Xent loss.

Encoder: each token (one output unit of a layer: its incoming weights and bias, ``Tokenizer.per_neuron``) is embedded
by its layer's own linear map (ghrp's ``EmbedderNeuronGroup_index``), a learned position embedding is added, pre-norm
transformer blocks mix the tokens, and a bottleneck maps them to the latent vector: ``"linear"`` flattens the whole
sequence into one linear map (ghrp's default), ``"token"`` prepends a learned compression token and maps its output.
Decoder (mirror image): a linear map from the latent to the whole sequence, learned position embeddings,
transformer blocks, and one linear map per layer back to that layer's tokens (``DebedderNeuronGroup_index``).
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from .tokenize import Tokenizer


class LayerwiseLinear(nn.Module):
    """One linear map per layer, applied to every token of that layer: [B, T, n_in] -> [B, T, n_out].

    Token t uses the map of its layer ``tokenizer.token_group[t]``. Padding slots of the input tokens are zero, so
    a map's extra input rows act like the narrower per-layer ``nn.Linear`` of the original; the extra output
    columns produce padding, which ``Tokenizer.flat`` ignores.

    Args:
        token_group: int64 [T], the layer of each token.
        n_in: input width (W for the embedder, d_model for the debedder).
        n_out: output width.
        fan_in: int64 [G], each layer's true input width (for nn.Linear's default initialisation bound).
    """

    def __init__(self, token_group: torch.Tensor, n_in: int, n_out: int, fan_in: torch.Tensor) -> None:
        super().__init__()
        groups = int(token_group.max()) + 1
        bound = (1.0 / fan_in.cpu().double().sqrt()).float().view(groups, 1, 1)  # parameters start on the CPU
        self.weight = nn.Parameter((torch.rand(groups, n_in, n_out) * 2 - 1) * bound)
        self.bias = nn.Parameter((torch.rand(groups, n_out) * 2 - 1) * bound[:, 0])
        self.register_buffer("token_group", token_group.clone(), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.einsum("btw,twd->btd", tokens, self.weight[self.token_group]) + self.bias[self.token_group]


def _blocks(d_model: int, heads: int, layers: int, d_ff: int, dropout: float) -> nn.TransformerEncoder:
    """Pre-norm self-attention blocks with ReLU feed-forward (ghrp's ``EncoderLayer`` with normalisation)."""
    layer = nn.TransformerEncoderLayer(d_model, heads, d_ff, dropout, activation="relu", batch_first=True,
                                       norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class TransformerAE(nn.Module):
    """The HR autoencoder: tokens [B, T, W] -> latent [B, latent_dim] -> tokens [B, T, W].

    Args:
        tokenizer: the per-neuron tokeniser of the layout (fixes T, W and the layer of each token).
        d_model, heads, layers, d_ff, dropout: transformer width, attention heads, blocks (encoder and decoder
            each), feed-forward width and dropout.
        latent_dim: size of the latent vector.
        compression: "linear" (flatten the encoded sequence) or "token" (a learned compression token).

    Raises:
        ValueError: ``d_model`` not divisible by ``heads``, or an unknown ``compression``.
    """

    def __init__(self, tokenizer: Tokenizer, d_model: int, heads: int, layers: int, d_ff: int, dropout: float,
                 latent_dim: int, compression: Literal["linear", "token"] = "linear") -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model must be divisible by heads; got d_model={d_model}, heads={heads}")
        if compression not in ("linear", "token"):
            raise ValueError(f"compression must be 'linear' or 'token'; got {compression!r}")
        self.compression = compression
        t, w = tokenizer.num_tokens, tokenizer.token_size
        group = tokenizer.token_group
        filled = tokenizer.mask.sum(1)
        widths = torch.stack([filled[group == g].max() for g in range(int(group.max()) + 1)])
        self.embed = LayerwiseLinear(group, w, d_model, widths)
        self.debed = LayerwiseLinear(group, d_model, w, torch.full_like(widths, d_model))
        self.register_buffer("mask", tokenizer.mask.clone(), persistent=False)
        extra = 1 if compression == "token" else 0
        self.comp_token = nn.Parameter(torch.randn(1, 1, d_model)) if extra else None
        self.enc_position = nn.Embedding(t + extra, d_model)
        self.dec_position = nn.Embedding(t, d_model)
        self.encoder = _blocks(d_model, heads, layers, d_ff, dropout)
        self.decoder = _blocks(d_model, heads, layers, d_ff, dropout)
        self.to_latent = nn.Linear(d_model if extra else d_model * t, latent_dim)
        self.from_latent = nn.Linear(latent_dim, d_model * t)
        self.num_tokens, self.d_model = t, d_model

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, T, W] tokens (padding 0) -> [B, latent_dim]."""
        x = self.embed(tokens)
        if self.comp_token is not None:
            x = torch.cat([self.comp_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.encoder(x + self.enc_position.weight)
        return self.to_latent(x[:, 0] if self.comp_token is not None else x.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """[B, latent_dim] -> [B, T, W] tokens, padding slots 0."""
        y = self.from_latent(z).view(z.shape[0], self.num_tokens, self.d_model)
        y = self.decoder(y + self.dec_position.weight)
        return self.debed(y) * self.mask


class ProjectionHead(nn.Module):
    """SimCLR projection head of HR (ghrp's ``ProjectionHead``): ``layers`` x (Linear -> BatchNorm -> ReLU) at
    width ``latent_dim``, then Linear -> BatchNorm to ``out_dim``.

    Raises:
        ValueError: ``layers`` < 1.
    """

    def __init__(self, latent_dim: int, out_dim: int, layers: int) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"projection head layers must be >= 1; got {layers}")
        modules: list[nn.Module] = []
        for _ in range(layers):
            modules += [nn.Linear(latent_dim, latent_dim), nn.BatchNorm1d(latent_dim), nn.ReLU()]
        modules += [nn.Linear(latent_dim, out_dim), nn.BatchNorm1d(out_dim)]
        self.net = nn.Sequential(*modules)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def nt_xent(z_i: torch.Tensor, z_j: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross entropy over a batch of B positive pairs.

    Each of the 2B vectors is classified against the other 2B - 1 by cosine similarity / ``temperature``; its
    positive is the other view of the same row. Returns the mean loss, a scalar (>= 0; log(2B - 1) for
    uninformative embeddings).

    Args:
        z_i, z_j: [B, K] the two views' embeddings, B >= 2.
        temperature: > 0 (HR: 0.1).

    Raises:
        ValueError: shapes differ or B < 2.
    """
    if z_i.shape != z_j.shape or z_i.dim() != 2 or z_i.shape[0] < 2:
        raise ValueError(f"z_i and z_j must both be [B, K] with B >= 2; got {tuple(z_i.shape)} and "
                         f"{tuple(z_j.shape)}")
    b = z_i.shape[0]
    z = F.normalize(torch.cat([z_i, z_j]), dim=1)
    logits = (z @ z.T / temperature).fill_diagonal_(-math.inf)
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(logits, target)
