"""Bit-packed boolean masks: one model's error set (or any per-sample flags) per row (issue 4, STYLE §4).

Layout: ``words`` is an int64 tensor [N, W] with W = ceil(n_bits / 64); bit ``t % 64`` of word ``t // 64`` is
sample ``t`` (int64 holds the 64 bits; torch's uint64 support is thin). Padding bits past ``n_bits`` are always
0, so popcounts never need a mask; the ops check this for PackedMasks given to them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

WORD_BITS = 64


def words_for(n_bits: int) -> int:
    """W = ceil(n_bits / 64)."""
    return -(-n_bits // WORD_BITS)


@dataclass(frozen=True)
class PackedMasks:
    """N packed masks of ``n_bits`` samples each; see the module docstring for the layout.

    Attributes:
        words: [N, W] int64 tensor, CPU or CUDA, W = ceil(n_bits / 64), padding bits 0.
        n_bits: S, the number of samples per mask (>= 1).
    """

    words: torch.Tensor
    n_bits: int

    def __post_init__(self) -> None:
        if not isinstance(self.words, torch.Tensor) or self.words.dtype != torch.int64 or self.words.dim() != 2:
            got = self.words.dtype if isinstance(self.words, torch.Tensor) else type(self.words).__name__
            raise TypeError(f"PackedMasks.words must be a 2-D int64 tensor [N, W]; got {got}")
        if isinstance(self.n_bits, bool) or not isinstance(self.n_bits, int) or self.n_bits < 1:
            raise ValueError(f"PackedMasks.n_bits must be a positive int; got {self.n_bits!r}")
        if self.words.shape[1] != words_for(self.n_bits):
            raise ValueError(
                f"PackedMasks.words has {self.words.shape[1]} words per row; {self.n_bits} bits need "
                f"{words_for(self.n_bits)}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """(N, S): masks and samples, as the unpacked bool tensor would have."""
        return self.words.shape[0], self.n_bits

    @property
    def device(self) -> torch.device:
        return self.words.device

    def __len__(self) -> int:
        return self.words.shape[0]

    def __getitem__(self, rows: int | slice | torch.Tensor) -> "PackedMasks":
        """A subset of the masks (rows only): ``packed[:100]``, ``packed[index_tensor]``."""
        words = self.words[rows]
        return PackedMasks(words.unsqueeze(0) if words.dim() == 1 else words, self.n_bits)

    def to(self, device: torch.device | str) -> "PackedMasks":
        return PackedMasks(self.words.to(device), self.n_bits)
