"""Classification data for model zoos, with no network access (issue 5).

``digits()`` is scikit-learn's bundled 8 x 8 digits (1,797 images, 10 classes), split once with a fixed seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Dataset:
    """A fixed train/test split of a classification task.

    Attributes:
        name: short name ("digits").
        train_x: [S_train, *input_shape] float32 in [0, 1].
        train_y: [S_train] int64 class indices.
        test_x: [S_test, *input_shape] float32 in [0, 1].
        test_y: [S_test] int64 class indices.
        num_classes: number of classes.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def flat(self) -> "Dataset":
        """The same data with every input flattened to a vector (for MLPs)."""
        return Dataset(self.name, self.train_x.flatten(1), self.train_y, self.test_x.flatten(1), self.test_y,
                       self.num_classes)


def digits(test_fraction: float = 0.3, seed: int = 0) -> Dataset:
    """scikit-learn's bundled digits as [S, 1, 8, 8] images in [0, 1], split per class with a fixed seed.

    Args:
        test_fraction: share of each class held out for testing.
        seed: the split's seed (the default split is the one the package's zoos and tests use).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy((bunch.images / 16.0).astype(np.float32)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    rng = np.random.default_rng(seed)
    test_rows = []
    for label in range(10):
        rows = np.flatnonzero(bunch.target == label)
        test_rows.extend(rng.choice(rows, size=round(len(rows) * test_fraction), replace=False))
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    is_test[torch.as_tensor(np.sort(test_rows))] = True
    return Dataset("digits", images[~is_test], labels[~is_test], images[is_test], labels[is_test], 10)
