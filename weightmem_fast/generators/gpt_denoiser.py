"""G.pt's denoiser (Peebles et al., 2022; study_spec §4.2; issue 7): a transformer that predicts future parameters
x0 from noised future parameters, starting parameters, the diffusion timestep and three loss conditions.

Sequence of 2 T + 4 tokens (T parameter tokens per vector, ``Tokenizer.per_tensor`` chunks within layers):
``[noised future tokens (T), starting tokens (T), timestep, loss delta (target - current), target loss,
current loss]``. Each parameter token has its own bias-free linear projection to the width, each scalar is
embedded by ``frequency_embedding`` (sin and cos of 2**linspace(0, max_log2, F) plus the raw value) and projected
by its own bias-free linear map; all tokens then pass one LayerNorm and get a learned position embedding. minGPT
blocks (pre-LayerNorm, unmasked multi-head attention, GELU MLP) and a final LayerNorm follow; per-token bias-free
linear decoders read the noised tokens' outputs. A global residual adds the starting parameters, and the decoders
start at zero, so an untrained denoiser returns the starting parameters exactly.
"""
from __future__ import annotations

import torch
from torch import nn

from .embeddings import frequency_embedding
from .tokenize import Tokenizer

# minGPT's initialisation: normal(0, 0.02) weights, zero biases.
_INIT_STD = 0.02
# The scalar tokens, in sequence order.
SCALARS = ("timestep", "loss_delta", "target_loss", "current_loss")


class Block(nn.Module):
    """A minGPT block: ``x + drop(attn(ln1(x)))`` then ``x + drop(mlp(ln2(x)))``, no causal mask. ``dropout`` is
    minGPT's attn_pdrop and resid_pdrop in one (G.pt and HyperDiffusion use 0; the study's ablation 0.1 and 0.2)."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.drop(self.attn(h, h, h, need_weights=False)[0])
        return x + self.drop(self.mlp(self.ln2(x)))


class TokenLinear(nn.Module):
    """T independent bias-free linear maps, map t applied to token t: [B, T, n_in] -> [B, T, n_out]. Equivalent to
    one ``nn.Linear(n_in, n_out, bias=False)`` per token; zero-padded token slots contribute nothing."""

    def __init__(self, tokens: int, n_in: int, n_out: int, zero: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(tokens, n_in, n_out))
        if not zero:
            nn.init.normal_(self.weight, std=_INIT_STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bti,tio->bto", x, self.weight)


class GptDenoiser(nn.Module):
    """x0-predicting denoiser ``model(x_t, t, start, target_loss, current_loss) -> x0`` on normalised flat weights.

    Args:
        tokenizer: flat weights [B, D] <-> tokens [B, T, W].
        width, depth, heads, mlp_ratio: the transformer (G.pt MNIST: 1536, 12, 16, 4).
        num_frequencies, max_log2: the scalar embedding (G.pt: 128, 14).
        dropout: minGPT's embedding, attention and residual dropout (G.pt: 0).
    """

    def __init__(self, tokenizer: Tokenizer, width: int, depth: int, heads: int, mlp_ratio: int = 4,
                 num_frequencies: int = 128, max_log2: float = 14.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.num_frequencies, self.max_log2 = num_frequencies, max_log2
        t, w = tokenizer.num_tokens, tokenizer.token_size
        self.noised_in = TokenLinear(t, w, width)
        self.start_in = TokenLinear(t, w, width)
        self.scalar_in = TokenLinear(len(SCALARS), 2 * num_frequencies + 1, width)
        self.ln_in = nn.LayerNorm(width)
        self.pos_emb = nn.Parameter(torch.zeros(1, 2 * t + len(SCALARS), width))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*(Block(width, heads, mlp_ratio, dropout) for _ in range(depth)))
        self.ln_f = nn.LayerNorm(width)
        self.apply(_init_weights)
        self.out = TokenLinear(t, width, w, zero=True)  # zero heads: the global residual alone at init

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, start: torch.Tensor, target_loss: torch.Tensor,
                current_loss: torch.Tensor) -> torch.Tensor:
        """Predicted future parameters.

        Args:
            x_t: float32 [B, D] noised future parameters (normalised).
            t: int64 [B] diffusion timesteps.
            start: float32 [B, D] starting parameters (normalised).
            target_loss, current_loss: float32 [B] the prompted loss and the starting parameters' loss.

        Returns:
            float32 [B, D], ``start`` plus the decoded update.
        """
        scalars = torch.stack([t.to(x_t.dtype), target_loss - current_loss, target_loss, current_loss], dim=1)
        embedded = frequency_embedding(scalars, self.num_frequencies, self.max_log2)  # [B, 4, 2F + 1]
        tokens = torch.cat([self.noised_in(self.tokenizer.tokens(x_t)), self.start_in(self.tokenizer.tokens(start)),
                            self.scalar_in(embedded)], dim=1)
        h = self.ln_f(self.blocks(self.drop(self.ln_in(tokens) + self.pos_emb)))
        update = self.out(h[:, : self.tokenizer.num_tokens])
        return start + self.tokenizer.flat(update)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=_INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.MultiheadAttention):
        nn.init.normal_(module.in_proj_weight, std=_INIT_STD)
        nn.init.zeros_(module.in_proj_bias)
