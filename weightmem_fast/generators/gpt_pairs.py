"""G.pt's training data (study_spec §4.1-4.2, issue 7): checkpoint pairs (θ_i, θ_j), j > i, from one training run,
and the held-out runs' initial checkpoints that sampling starts from ("one-step prompting"). ``Trajectories`` splits
a trajectory zoo by run into training runs and held-out runs; ``pairs`` draws a batch of (start, future) rows from
the training runs. (The random hidden-neuron permutation applied to both rows of a pair is
``weightmem_fast.symmetry``'s.)
"""
from __future__ import annotations

import dataclasses

import torch

from ..io import Zoo


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
