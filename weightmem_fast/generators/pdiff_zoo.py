"""P-diff's training data at demo size (study_spec §6.1), built once and cached (``zoo.cached``): a ``cnn_bn``
trained on digits (the base model), then consecutive checkpoints of its last two BatchNorm layers' affine
parameters (``pdiff_subset``) from continued training of those tensors alone."""
from __future__ import annotations

import os

from ..io import Zoo
from ..zoo import cached, consecutive_checkpoints, digits, model_from_zoo, pdiff_subset, train_zoo


def pdiff_zoo(checkpoints: int = 300, *, width: int = 8, base_epochs: int = 10, batch_size: int = 4,
              seed: int = 0, progress: bool = True, cache_dir: str | os.PathLike | None = None) -> tuple[Zoo, Zoo]:
    """The base model and its consecutive checkpoints on ``digits()``, from the cache when built before.

    The base is ``train_zoo("cnn_bn", digits(), 1, base_epochs, seed=seed, width=width)``; the checkpoints are
    ``consecutive_checkpoints(base, digits(), pdiff_subset(...), checkpoints + 1, batch_size=batch_size)`` with
    P-diff's fine-tuning settings (AdamW, constant lr 0.03, weight decay 5e-4), without its first checkpoint: as
    P-diff's ``finetune.py``, the checkpoints are those after steps 2 .. checkpoints + 1. A small ``batch_size``
    gives P-diff's "part of one extra epoch": digits' 1,258 training images in batches of 4 are 315 steps.

    Args:
        checkpoints: T, the rows of the checkpoint zoo (P-diff: 300).
        width: the ``cnn_bn`` width; the subset has 8 * width values (64 at width 8).
        base_epochs: the base model's training epochs.
        batch_size: of the fine-tuning steps.
        seed: the base model's seed.
        progress: show tqdm bars while building.
        cache_dir: as ``zoo.cached``.

    Returns:
        (base, zoo): the base as a one-row ``train_zoo`` zoo (pass it to ``PDiff.fit(zoo, base=base)``), and the
        T checkpoints in the subset layout with their test accuracy in the metadata.
    """
    data = digits()
    base_config = {"arch": "cnn_bn", "data": "digits", "n_models": 1, "epochs": base_epochs, "seed": seed,
                   "width": width}
    base = cached("train_zoo", base_config, lambda: train_zoo("cnn_bn", data, 1, base_epochs, seed=seed,
                                                              width=width, progress=progress), cache_dir)

    def build() -> Zoo:
        model = model_from_zoo(base, 0)
        return consecutive_checkpoints(model, data, pdiff_subset(model), checkpoints + 1, batch_size=batch_size,
                                       progress=progress)[1:]

    zoo_config = {"base": base_config, "checkpoints": checkpoints, "first_step": 2, "batch_size": batch_size,
                  "lr": 0.03, "weight_decay": 5e-4, "seed": 40}
    return base, cached("consecutive_checkpoints", zoo_config, build, cache_dir)
