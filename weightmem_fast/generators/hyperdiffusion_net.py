"""HyperDiffusion's denoiser (Erkoç et al., 2023; study_spec §5.2; issue 7): the G.pt transformer without
conditioning or global residual, predicting clean occupancy-MLP weights x0 from noised ones and the timestep.

Sequence of T + 1 tokens: ``[noised parameter tokens (T), timestep]``. The parameter tokens come from
``Tokenizer.per_tensor`` (HyperDiffusion's "layer_by_layer": one token per tensor, 8 for the occupancy MLP; with a
``max_token_size`` large tensors are chunked), each with its own bias-free linear projection of its exact size to
the width (HyperDiffusion's per-split ``nn.Linear``; no padded weights, so the published 1.4B parameters). The
timestep index is embedded by ``frequency_embedding`` (sin and cos of t * 2**linspace(0, max_log2, F) plus t itself;
HyperDiffusion: F = 128, max_log2 = 20) and projected by its own bias-free linear map. All tokens pass one
LayerNorm and get a learned position embedding; minGPT blocks (pre-LayerNorm, unmasked attention, GELU MLP) and a
final LayerNorm follow; per-token bias-free linear decoders read the parameter tokens' outputs. Initialisation is
minGPT's (normal(0, 0.02), zero biases); unlike G.pt the decoders are not zeroed (there is no residual to keep).
"""
from __future__ import annotations

import torch
from torch import nn

from .embeddings import frequency_embedding
from .gpt_denoiser import Block, _init_weights
from .tokenize import Tokenizer


class HyperDiffusionDenoiser(nn.Module):
    """x0-predicting denoiser ``model(x_t, t) -> x0`` on flat occupancy-MLP weights (module docstring).

    Args:
        tokenizer: flat weights [B, D] <-> tokens [B, T, W].
        width, depth, heads, mlp_ratio: the transformer (HyperDiffusion planes: 2880, 12, 16, 4).
        num_frequencies, max_log2: the timestep embedding (HyperDiffusion: 128, 20).
        dropout: minGPT's embedding, attention and residual dropout (HyperDiffusion: 0).
    """

    def __init__(self, tokenizer: Tokenizer, width: int, depth: int, heads: int, mlp_ratio: int = 4,
                 num_frequencies: int = 128, max_log2: float = 20.0, dropout: float = 0.0) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width must be a multiple of heads; got width={width}, heads={heads}")
        self.tokenizer = tokenizer
        self.num_frequencies, self.max_log2 = num_frequencies, max_log2
        self.sizes = tokenizer.mask.sum(dim=1).tolist()  # a Tokenizer fills a prefix of each token
        self.param_in = nn.ModuleList(nn.Linear(size, width, bias=False) for size in self.sizes)
        self.time_in = nn.Linear(2 * num_frequencies + 1, width, bias=False)
        self.ln_in = nn.LayerNorm(width)
        self.pos_emb = nn.Parameter(torch.zeros(1, len(self.sizes) + 1, width))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*(Block(width, heads, mlp_ratio, dropout) for _ in range(depth)))
        self.ln_f = nn.LayerNorm(width)
        self.out = nn.ModuleList(nn.Linear(width, size, bias=False) for size in self.sizes)
        self.apply(_init_weights)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predicted clean weights.

        Args:
            x_t: float32 [B, D] noised flat weights.
            t: int64 [B] diffusion timestep indices.

        Returns:
            float32 [B, D] predicted x0 (padding slots of the tokens are dropped).
        """
        time = frequency_embedding(t.to(x_t.dtype)[:, None], self.num_frequencies, self.max_log2)  # [B, 1, 2F+1]
        tokens = self.tokenizer.tokens(x_t)
        embedded = [proj(tokens[:, k, :size]) for k, (proj, size) in enumerate(zip(self.param_in, self.sizes))]
        h = torch.cat([torch.stack(embedded, dim=1), self.time_in(time)], dim=1)
        h = self.ln_f(self.blocks(self.drop(self.ln_in(h) + self.pos_emb)))
        width = self.tokenizer.token_size
        out = [nn.functional.pad(proj(h[:, k]), (0, width - size))
               for k, (proj, size) in enumerate(zip(self.out, self.sizes))]
        return self.tokenizer.flat(torch.stack(out, dim=1))
