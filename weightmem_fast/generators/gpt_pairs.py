"""G.pt's training data (study_spec §4.1-4.2, issue 7): checkpoint pairs (θ_i, θ_j), j > i, from one training run,
with one random hidden-neuron permutation applied to both, and the held-out runs' initial checkpoints that sampling
starts from ("one-step prompting").

- ``NeuronPermuter``: hidden-unit permutations of an MLP given as flat weights (a chain of Linear layers), as
  gathers over the flat vector, one permutation per row.
- ``Trajectories``: a trajectory zoo split by run into training runs and held-out runs; ``pairs`` draws a batch of
  (start, future, start loss, future loss) from the training runs.
"""
from __future__ import annotations

import dataclasses

import torch

from ..io import Zoo
from ..layout import ParamLayout
from .tokenize import layer_groups


class NeuronPermuter:
    """Permutes the hidden units of an MLP stored as flat weights in ``layout``.

    The layout must be a chain of Linear layers: each layer (tensors sharing a module prefix, ``layer_groups``) is a
    weight [out, in] optionally followed by a bias [out], and layer k+1's ``in`` equals layer k's ``out``. Every
    layer but the last is hidden. Permuting hidden layer k by π (new unit u takes old unit π(u)) re-indexes the rows
    of its weight and bias and the columns of layer k+1's weight, so the network computes the same function for any
    elementwise activation (study_spec §2.3 item 6).

    Args:
        layout: the flat layout of the MLP.

    Attributes:
        hidden: the number of units of each hidden layer (empty for a single layer: nothing to permute).

    Raises:
        ValueError: the layout is not a chain of Linear layers (the message names the offending layer).
    """

    def __init__(self, layout: ParamLayout) -> None:
        layers = []
        for name, entries in layer_groups(layout).items():
            shapes = [entry.shape for entry in entries]
            if not (len(shapes[0]) == 2 and (len(entries) == 1 or (len(entries) == 2 and shapes[1] == shapes[0][:1]))):
                raise ValueError(f"NeuronPermuter needs an MLP layout (per layer a weight [out, in] and an optional "
                                 f"bias [out]); layer {name!r} has shapes {shapes}; turn permutation off for this zoo")
            layers.append(entries)
        for previous, layer in zip(layers, layers[1:]):
            if layer[0].shape[1] != previous[0].shape[0]:
                raise ValueError(f"NeuronPermuter needs chained Linear layers; {layer[0].name} takes "
                                 f"{layer[0].shape[1]} inputs but {previous[0].name} has {previous[0].shape[0]} "
                                 "outputs")
        self.layout = layout
        self._layers = layers
        self.hidden = tuple(layer[0].shape[0] for layer in layers[:-1])

    def random(self, batch: int, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """One uniformly random permutation per row and hidden layer: a list of int64 [batch, H_k]."""
        return [torch.rand(batch, h, generator=generator, device=device).argsort(dim=1) for h in self.hidden]

    def index(self, perms: list[torch.Tensor]) -> torch.Tensor:
        """The gather index [B, D] with ``permuted = flat.gather(1, index)``, for ``perms`` as from ``random``.

        Raises:
            ValueError: ``perms`` does not hold one [B, H_k] tensor per hidden layer.
        """
        if len(perms) != len(self.hidden) or any(p.dim() != 2 or p.shape[1] != h for p, h in zip(perms, self.hidden)):
            got = [tuple(p.shape) for p in perms]
            raise ValueError(f"perms must be one int64 [B, H] per hidden layer, H = {list(self.hidden)}; got {got}")
        batch = perms[0].shape[0] if perms else 1
        device = perms[0].device if perms else torch.device("cpu")
        index = torch.arange(self.layout.size, device=device).repeat(batch, 1)
        for perm, layer, following in zip(perms, self._layers, self._layers[1:]):
            weight, units = layer[0], layer[0].shape[0]
            fan_in = weight.shape[1]
            # Gather from the current index: with two or more hidden layers, this weight's columns were already
            # permuted by the previous layer's permutation, and must stay so.
            rows = perm[:, :, None] * fan_in + torch.arange(fan_in, device=device)
            block = index[:, weight.offset: weight.offset + weight.numel]
            index[:, weight.offset: weight.offset + weight.numel] = block.gather(1, rows.reshape(batch, -1))
            if len(layer) == 2:
                index[:, layer[1].offset: layer[1].offset + units] = layer[1].offset + perm
            nxt = following[0]
            cols = nxt.offset + torch.arange(nxt.shape[0], device=device)[:, None] * units + perm[:, None, :]
            index[:, nxt.offset: nxt.offset + nxt.numel] = cols.reshape(batch, -1)
        return index

    def apply(self, flat: torch.Tensor, perms: list[torch.Tensor]) -> torch.Tensor:
        """[B, D] flat weights with row b's hidden units permuted by ``perms[k][b]``."""
        return flat.gather(1, self.index(perms))


@dataclasses.dataclass
class Trajectories:
    """A trajectory zoo split by run (study_spec §4.1: the last runs in sorted run order are G.pt's test split).

    Attributes:
        weights: float32 [M, D], the training runs' checkpoints, run by run in step order.
        losses: float32 [M], each checkpoint's loss (the conditioning, e.g. test loss).
        run_start, run_length: int64 [R], each training run's first row and number of checkpoints.
        prompt_weights: float32 [K, D], the initial checkpoint (lowest step) of each held-out run.
        prompt_losses: float32 [K], their losses.
    """

    weights: torch.Tensor
    losses: torch.Tensor
    run_start: torch.Tensor
    run_length: torch.Tensor
    prompt_weights: torch.Tensor
    prompt_losses: torch.Tensor

    @classmethod
    def split(cls, zoo: Zoo, held_out_runs: int, loss_key: str = "test_loss") -> "Trajectories":
        """Groups ``zoo`` rows by ``metadata["run"]``, orders each run by ``metadata["step"]``, and holds out the
        last ``held_out_runs`` runs (sorted run ids).

        Raises:
            ValueError: rows without run, step or ``loss_key`` metadata (build the zoo with
                ``zoo.trajectories``), ``held_out_runs`` not in [1, runs - 1], or a training run with fewer than
                two checkpoints (no pair j > i).
        """
        missing = [row for row, meta in enumerate(zoo.metadata) if not {"run", "step", loss_key} <= set(meta)]
        if missing:
            raise ValueError(f"G.pt needs trajectory metadata 'run', 'step' and {loss_key!r} on every zoo row; rows "
                             f"{missing[:5]} lack some; build the zoo with weightmem_fast.zoo.trajectories")
        runs: dict[int, list[int]] = {}
        for row, meta in enumerate(zoo.metadata):
            runs.setdefault(int(meta["run"]), []).append(row)
        ids = sorted(runs)
        if isinstance(held_out_runs, bool) or not isinstance(held_out_runs, int) or \
                not 1 <= held_out_runs < len(ids):
            raise ValueError(f"held_out_runs must be an int in [1, {len(ids) - 1}] (the zoo has {len(ids)} runs; "
                             f"G.pt prompts from held-out runs and trains on the rest); got {held_out_runs!r}")
        order = {run: sorted(rows, key=lambda row: zoo.metadata[row]["step"]) for run, rows in runs.items()}
        train, held = ids[:-held_out_runs], ids[-held_out_runs:]
        short = [run for run in train if len(order[run]) < 2]
        if short:
            raise ValueError(f"every training run needs >= 2 checkpoints to form a pair (θ_i, θ_j), j > i; runs "
                             f"{short[:5]} have one; build the zoo with epochs * checkpoints_per_epoch >= 1")
        rows = [row for run in train for row in order[run]]
        lengths = torch.tensor([len(order[run]) for run in train], dtype=torch.int64)
        starts = torch.cumsum(lengths, 0) - lengths
        first = [order[run][0] for run in held]
        loss = torch.tensor([float(meta[loss_key]) for meta in zoo.metadata], dtype=torch.float32)
        weights = zoo.weights.detach().float().cpu()
        return cls(weights[rows], loss[rows], starts, lengths, weights[first], loss[first])

    def pairs(self, batch: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Row indices (i, j), int64 [batch] each: a uniformly random training run, then a uniformly random pair
        of its checkpoints with step(i) < step(j)."""
        run = torch.randint(0, len(self.run_length), (batch,), generator=generator)
        length = self.run_length[run]
        a = (torch.rand(batch, generator=generator) * length).long()
        b = (torch.rand(batch, generator=generator) * (length - 1)).long()
        b = b + (b >= a).long()  # b uniform over the positions other than a
        start = self.run_start[run]
        return start + torch.minimum(a, b), start + torch.maximum(a, b)
