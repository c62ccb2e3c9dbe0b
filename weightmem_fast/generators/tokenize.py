"""Tokenisers driven by a ``ParamLayout`` (issue 7): flat weights [B, D] <-> tokens [B, T, W], exactly.

A tokeniser is a fixed map from token slots to flat positions: slot (t, w) holds parameter ``index[t, w]``, or
padding (``index = -1``, value 0). Every parameter sits in exactly one slot, so ``flat(tokens(x)) == x`` bit for
bit, and ``tokens(flat(z)) == z * mask`` (padding reads back as 0). Both directions are differentiable gathers.

The study's tokenisations:
- ``Tokenizer.per_tensor(layout)``: one token per tensor (HyperDiffusion's "layer_by_layer": 8 tokens for the
  occupancy MLP); with ``max_token_size`` tensors larger than that are cut into consecutive chunks of that size,
  the last one shorter. G.pt's "chunk_within_layer" with chunk 1000 is ``per_tensor(layout, max_token_size=1000)``:
  the MNIST MLP's 7,840-value weight gives 8 tokens (7 x 1000 + 840), the other tensors one each, 11 in all.
- ``Tokenizer.per_neuron(layout)`` (Hyper-Representations): one token per output unit of each layer, holding that
  unit's row of every tensor of the layer in layout order: for Linear and Conv layers the unit's incoming weights
  (``weight[o]`` flattened) followed by its bias; for BatchNorm its weight, bias (and running statistics, if the
  layout has them). Tokens are padded to the widest unit.

A token may be narrower than W; ``mask`` says which slots are real, for losses that should ignore padding. Tokens
are ordered by tensor (or layer) in layout order; ``token_group[t]`` names the tensor or layer of token t
(``groups``), e.g. for layer embeddings or per-layer loss weights. A tokeniser is an ``nn.Module`` holding only
non-persistent index buffers: ``.to(device)`` moves them, and it adds nothing to a state_dict (rebuild it from the
layout on loading).
"""
from __future__ import annotations

import torch
from torch import nn

from ..layout import ParamLayout, layer_groups


class Tokenizer(nn.Module):
    """Flat weights [B, D] <-> padded tokens [B, T, W] by a fixed slot -> parameter map.

    Build one with ``per_tensor`` or ``per_neuron``; the constructor takes any partition of the parameters.

    Args:
        layout: the flat layout (D = ``layout.size``).
        tokens: T lists (or int64 tensors) of flat positions, in slot order; together they must hold every
            position in [0, D) exactly once.
        groups: names of the tensors or layers the tokens belong to.
        token_group: for each token, its index into ``groups``.

    Attributes:
        index: int64 [T, W], the flat position in each slot, -1 for padding.
        mask: bool [T, W], True where a slot holds a parameter.
        token_group: int64 [T].
        groups: tuple of names.

    Raises:
        ValueError: the tokens miss a position, repeat one, hold one outside [0, D), or a token is empty.
    """

    def __init__(self, layout: ParamLayout, tokens: list[list[int] | torch.Tensor], groups: tuple[str, ...],
                 token_group: list[int]) -> None:
        super().__init__()
        if not isinstance(layout, ParamLayout):
            raise TypeError(f"layout must be a ParamLayout; got {type(layout).__name__}")
        rows = [torch.as_tensor(token, dtype=torch.int64).flatten() for token in tokens]
        if not rows or min(row.numel() for row in rows) == 0:
            raise ValueError("a tokeniser needs at least one token and no empty token")
        if len(token_group) != len(rows):
            raise ValueError(f"token_group must name one group per token: {len(rows)} tokens, {len(token_group)} "
                             "entries")
        self.layout, self.groups = layout, tuple(groups)
        width = max(row.numel() for row in rows)
        index = torch.full((len(rows), width), -1, dtype=torch.int64)
        for t, row in enumerate(rows):
            index[t, : row.numel()] = row
        mask = index >= 0
        positions = index[mask]
        d = layout.size
        if positions.numel() != d or not torch.equal(positions.sort().values, torch.arange(d)):
            raise ValueError(f"the tokens must hold every flat position in [0, {d}) exactly once; they hold "
                             f"{positions.numel()} positions ({positions.unique().numel()} distinct, range "
                             f"[{int(positions.min())}, {int(positions.max())}])")
        inverse = torch.empty(d, dtype=torch.int64)
        inverse[positions] = torch.arange(index.numel())[mask.flatten()]
        self.register_buffer("index", index, persistent=False)
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("token_group", torch.as_tensor(token_group, dtype=torch.int64), persistent=False)
        # Gather maps with padding slots pointing at an appended zero column (position D).
        self.register_buffer("_gather", torch.where(mask, index, d).flatten(), persistent=False)
        self.register_buffer("_inverse", inverse, persistent=False)

    # ------------------------------------------------------------------------------------------------------------
    # Constructors
    # ------------------------------------------------------------------------------------------------------------

    @classmethod
    def per_tensor(cls, layout: ParamLayout, max_token_size: int | None = None) -> "Tokenizer":
        """One token per tensor of ``layout``; a tensor of more than ``max_token_size`` values becomes
        ``ceil(numel / max_token_size)`` tokens of consecutive values (the last one shorter). W is the longest
        token. HyperDiffusion: ``max_token_size=None``; G.pt: the chunk size (1000).

        Raises:
            ValueError: ``max_token_size`` is not None or a positive int.
        """
        if max_token_size is not None and (isinstance(max_token_size, bool) or not isinstance(max_token_size, int)
                                           or max_token_size < 1):
            raise ValueError(f"max_token_size must be None or a positive int; got {max_token_size!r}")
        tokens, token_group = [], []
        for g, entry in enumerate(layout.entries):
            size = entry.numel if max_token_size is None else max_token_size
            for start in range(0, entry.numel, size):
                tokens.append(torch.arange(entry.offset + start, entry.offset + min(start + size, entry.numel)))
                token_group.append(g)
        return cls(layout, tokens, tuple(layout.names), token_group)

    @classmethod
    def per_neuron(cls, layout: ParamLayout) -> "Tokenizer":
        """One token per output unit of each layer (Hyper-Representations).

        A layer is the tensors sharing a module prefix (``"features.0"`` for ``"features.0.weight"``), in order of
        first appearance; each of its tensors must have the same leading size (the units). Token o of a layer
        is ``concat(tensor[o].flatten() for tensor in the layer, in layout order)``: a Linear unit's incoming
        weights then its bias, a Conv output channel's kernel then its bias, a BatchNorm channel's weight and bias.

        Raises:
            ValueError: a 0-d tensor, or a layer whose tensors disagree on the number of units (use per_tensor).
        """
        layers = layer_groups(layout)
        tokens, token_group = [], []
        for g, (layer, entries) in enumerate(layers.items()):
            units = {entry.shape[0] if entry.shape else 0 for entry in entries}
            if len(units) != 1 or 0 in units:
                shapes = {entry.name: entry.shape for entry in entries}
                raise ValueError(f"per_neuron needs the tensors of layer {layer!r} to share a leading size (its "
                                 f"units); got shapes {shapes}; use Tokenizer.per_tensor for this layout")
            (n_units,) = units
            # [units, row] position blocks of each tensor, joined along the row.
            blocks = [torch.arange(e.offset, e.offset + e.numel).view(n_units, -1) for e in entries]
            tokens.extend(torch.cat(blocks, dim=1))
            token_group.extend([g] * n_units)
        return cls(layout, tokens, tuple(layers), token_group)

    # ------------------------------------------------------------------------------------------------------------
    # Conversions
    # ------------------------------------------------------------------------------------------------------------

    @property
    def num_tokens(self) -> int:
        """T."""
        return self.index.shape[0]

    @property
    def token_size(self) -> int:
        """W."""
        return self.index.shape[1]

    def tokens(self, flat: torch.Tensor) -> torch.Tensor:
        """[B, D] flat weights -> [B, T, W] tokens, padding 0 (same dtype and device).

        Raises:
            ValueError: ``flat`` is not [B, D] with D = ``layout.size``.
        """
        if not isinstance(flat, torch.Tensor) or flat.dim() != 2 or flat.shape[1] != self.layout.size:
            got = tuple(flat.shape) if isinstance(flat, torch.Tensor) else type(flat).__name__
            raise ValueError(f"flat must be [B, {self.layout.size}] (B flat models of this layout); got {got}")
        padded = nn.functional.pad(flat, (0, 1))
        return padded.index_select(1, self._gather).view(flat.shape[0], self.num_tokens, self.token_size)

    def flat(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, T, W] tokens -> [B, D] flat weights; padding slots are ignored.

        Raises:
            ValueError: ``tokens`` is not [B, T, W] for this tokeniser.
        """
        shape = (self.num_tokens, self.token_size)
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 3 or tuple(tokens.shape[1:]) != shape:
            got = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise ValueError(f"tokens must be [B, {shape[0]}, {shape[1]}] for this tokeniser; got {got}")
        return tokens.reshape(tokens.shape[0], -1).index_select(1, self._inverse)

    def extra_repr(self) -> str:
        fill = self.layout.size / self.index.numel()
        return f"D={self.layout.size}, T={self.num_tokens}, W={self.token_size}, filled={fill:.0%}"
