"""The study's invariance analysis (issue 9, study_spec §2.9, §3.4 "Invariance"): does a weight autoencoder
reconstruct a model and a function-preserving transform of it into the same function?

For each transform T (a random neuron permutation, or a random positive per-unit scaling, of every model),
``reconstruction_invariance`` reconstructs w and T(w), evaluates both reconstructions on the test set and reports
the mean absolute accuracy difference (x 100) and 1 - the mean IoU of their error sets (§2.4). The reference row
"original (different models)" gives the same two numbers between reconstructions of *different* untransformed
models: an invariant autoencoder scores 0 on the transform rows, and a transform row near or above the reference
row means the autoencoder treats a transformed copy like another model (the study: scaled 5.82 % / 0.81 against
12.72 % / 0.54 for different models).

HyperDiffusion's permutation augmentation (§2.9, §5.4) is not here: it is a training option,
``HyperDiffusionConfig.permutation_augment`` = 2, 4 or 8, and training one generator per factor is the ablation
machinery's job.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..layout import ParamLayout
from ..ops.eval import Evaluation, evaluate
from ..ops.iou import iou_matrix
from ..packed_masks import PackedMasks
from . import _arguments
from .analysis import analyze
from .sampling import random_permutations, random_scales
from .transforms import permute, scale

TRANSFORMS = ("permuted", "scaled")
REFERENCE_ROW = "original (different models)"
# Seed-stream ids, so the draws for one purpose do not depend on which other transforms were asked for.
_STREAMS = {"pairs": 0, "permuted": 1, "scaled": 2}
# Rows of iou_matrix per call when only its diagonal (the pairs) is wanted: O(N * chunk) work, not O(N^2).
_PAIR_CHUNK = 128


@dataclass(frozen=True)
class InvarianceTable:
    """The invariance table (study_spec §3.4).

    Attributes:
        rows: row name -> {"acc_diff_pct": mean |acc_a - acc_b| x 100, "one_minus_similarity": 1 - mean error-set
            IoU, "models": pairs averaged, "changed_predictions": for a transform row, how many test predictions
            of the *original* models T changed (the sanity column: 0 when T preserved every model's function;
            a near-tie argmax may flip by rounding), None for the reference row}. The reference row comes first,
            then the transforms in the order asked for.
        skipped: transform name -> why it was not run (scaling through an activation that is not positively
            homogeneous).
        seed: the seed the transforms and the reference pairing were drawn from.
        scale_range: (low, high) of the log-uniform scale factors.
    """

    rows: dict[str, dict[str, Any]]
    skipped: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    scale_range: tuple[float, float] = (0.5, 2.0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy: {"rows": ..., "skipped": ..., "seed": ..., "scale_range": [low, high]}."""
        return {"rows": {name: dict(row) for name, row in self.rows.items()}, "skipped": dict(self.skipped),
                "seed": self.seed, "scale_range": list(self.scale_range)}

    def to_html(self) -> str:
        """A self-contained ``<section>`` (a heading, the table, one line per skipped transform) for the report;
        every piece of text is HTML-escaped."""
        # Imported here: the report package imports the audit, which imports this package, so a module-level
        # import would be circular.
        from ..report._html import esc, table

        headers = ("transform", "avg abs acc diff (%)", "1 - avg similarity", "models", "predictions changed by T")
        body = [(name, row["acc_diff_pct"], row["one_minus_similarity"], row["models"],
                 "n/a" if row["changed_predictions"] is None else row["changed_predictions"])
                for name, row in self.rows.items()]
        notes = "".join(f"<p>{esc(name)} skipped: {esc(reason)}</p>\n" for name, reason in self.skipped.items())
        return ('<section class="invariance">\n<h2>Reconstruction invariance</h2>\n'
                f"<p>Reconstructions of w and T(w) (seed {esc(self.seed)}), against reconstructions of different "
                "models; 0 means the autoencoder is invariant to T.</p>\n"
                f"{table(headers, body, numeric=(False, True, True, True, True))}\n{notes}</section>")


def reconstruction_invariance(reconstruct: Callable[[torch.Tensor], torch.Tensor], weights: torch.Tensor,
                              layout: ParamLayout, template: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
                              transforms: Sequence[str] = TRANSFORMS, seed: int = 0, *,
                              scale_range: tuple[float, float] = (0.5, 2.0)) -> InvarianceTable:
    """The HR invariance experiment (study_spec §2.9) for any reconstruct path.

    Each model n is transformed by its own random T_n: uniformly random permutations of every hidden layer
    ("permuted"), or log-uniform factors in ``scale_range`` for every hidden unit ("scaled"; skipped, with the
    reason in ``skipped``, when the template's activations are not positively homogeneous). The reference row pairs
    model n with model sigma(n) for a seeded random cyclic order sigma (every model appears once on each side, never
    with itself). Pass one row per training run: two epochs of one run are not "different models".

    Args:
        reconstruct: maps float [B, D] flat weights to their reconstructions [B, D] (e.g.
            ``HyperRepresentations.reconstruct``); called once on ``weights`` and once per transform on all N.
        weights: [N, D] floating flat weights in ``layout``, N >= 2, on the inputs' device.
        layout: the weights' layout.
        template: the network the layout describes (``evaluate`` runs it; ``permute``/``scale`` read its chain).
        inputs: [S, ...] test inputs the template accepts.
        labels: [S] int64 classes.
        transforms: names from ``TRANSFORMS``, no repeats (an empty sequence gives the reference row alone).
        seed: seeds every random draw; the same seed gives the same table.
        scale_range: (low, high), 0 < low <= high, of the scale factors (the study's are unverified).

    Returns:
        InvarianceTable.

    Raises:
        TypeError: ``reconstruct`` not callable or returning something other than a floating tensor;
            ``transforms`` a string or not strings; ``seed`` not an int.
        ValueError: an unknown or repeated transform name; fewer than 2 models; ``reconstruct`` returning the
            wrong shape; and whatever ``permute``, ``scale`` and ``evaluate`` reject (a layout with no hidden
            layer, weights not [N, D], mismatched inputs and labels).
    """
    if not callable(reconstruct):
        raise TypeError(f"reconstruct must be a callable [B, D] -> [B, D]; got {type(reconstruct).__name__}")
    names = _transform_names(transforms)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int; got {type(seed).__name__}")
    low, high = _arguments.log_range(*_pair_of("scale_range", scale_range))
    chain = analyze(layout, template)
    weights = _arguments.weights(weights, chain)
    if weights.shape[0] < 2:
        raise ValueError(f"weights must hold at least 2 models (the reference row compares different models); got "
                         f"{weights.shape[0]}")
    n, device = weights.shape[0], weights.device

    def score(flat: torch.Tensor) -> Evaluation:
        return evaluate(template, flat, inputs, labels, layout=layout)

    original = score(weights)  # evaluated first: it validates inputs and labels before any reconstruction
    base = score(_reconstruction(reconstruct, weights))
    partner = _cyclic_partner(n, _generator(seed, "pairs", device))
    rows = {REFERENCE_ROW: _row(base.accuracy, base.errors, base.accuracy[partner], base.errors[partner], None)}
    skipped: dict[str, str] = {}
    for name in names:
        generator = _generator(seed, name, device)
        if name == "permuted":
            moved = permute(weights, chain, random_permutations(chain, n, generator=generator, device=device))
        else:
            try:
                _arguments.scalable(chain)
            except ValueError as reason:
                skipped[name] = str(reason)
                continue
            factors = random_scales(chain, n, low=low, high=high, generator=generator, device=device,
                                    dtype=weights.dtype)
            moved = scale(weights, chain, factors)
        changed = int((score(moved).predictions != original.predictions).sum())
        rebuilt = score(_reconstruction(reconstruct, moved))
        rows[name] = _row(base.accuracy, base.errors, rebuilt.accuracy, rebuilt.errors, changed)
    return InvarianceTable(rows, skipped, seed, (low, high))


def _transform_names(transforms: object) -> tuple[str, ...]:
    """``transforms`` as a tuple of known, distinct names."""
    if isinstance(transforms, str) or not isinstance(transforms, Sequence) or \
            not all(isinstance(t, str) for t in transforms):
        raise TypeError(f"transforms must be a sequence of names from {TRANSFORMS}, e.g. ('permuted',); got "
                        f"{transforms!r}")
    unknown = [t for t in transforms if t not in TRANSFORMS]
    if unknown:
        raise ValueError(f"transforms: unknown name(s) {unknown}; choose from {TRANSFORMS}")
    if len(set(transforms)) != len(transforms):
        raise ValueError(f"transforms must not repeat a name; got {list(transforms)}")
    return tuple(transforms)


def _pair_of(name: str, value: object) -> tuple[object, object]:
    """A (low, high) pair."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a (low, high) pair of floats; got {value!r}")
    return value[0], value[1]


def _generator(seed: int, purpose: str, device: torch.device) -> torch.Generator:
    """An independent stream per purpose, derived from (seed, purpose) by numpy's SeedSequence (no collisions
    between, e.g., seed 1's pairing and seed 0's permutations)."""
    state = int(np.random.SeedSequence([seed, _STREAMS[purpose]]).generate_state(1, np.uint64)[0])
    return torch.Generator(device=device).manual_seed(state)


def _cyclic_partner(n: int, generator: torch.Generator) -> torch.Tensor:
    """partner [n] int64: a random single n-cycle (order[j] -> order[j + 1]), so no model is paired with itself
    and each is on each side of exactly one pair."""
    order = torch.randperm(n, generator=generator, device=generator.device)
    partner = torch.empty_like(order)
    partner[order] = order.roll(-1)
    return partner


def _reconstruction(reconstruct: Callable[[torch.Tensor], torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """reconstruct(weights), checked to be a floating tensor of the weights' shape and device."""
    out = reconstruct(weights)
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        got = out.dtype if isinstance(out, torch.Tensor) else type(out).__name__
        raise TypeError(f"reconstruct must return a floating tensor [B, D]; got {got}")
    if out.shape != weights.shape or out.device != weights.device:
        raise ValueError(f"reconstruct must return [B, D] = {tuple(weights.shape)} on {weights.device} (one "
                         f"reconstruction per input row); got {tuple(out.shape)} on {out.device}")
    return out


def _row(acc_a: torch.Tensor, errors_a: PackedMasks, acc_b: torch.Tensor, errors_b: PackedMasks,
         changed: int | None) -> dict[str, Any]:
    """One table row from paired models: n of ``a`` against n of ``b`` (accuracies [N], error sets [N, S])."""
    acc_diff = float((acc_a.double() - acc_b.double()).abs().mean()) * 100.0
    return {"acc_diff_pct": acc_diff, "one_minus_similarity": 1.0 - _mean_paired_iou(errors_a, errors_b),
            "models": len(errors_a), "changed_predictions": changed}


def _mean_paired_iou(a: PackedMasks, b: PackedMasks) -> float:
    """Mean over n of IoU(a_n, b_n) (study_spec §2.4; 0 when both error sets are empty), from diagonal blocks of
    ``iou_matrix`` so the exact counting convention is the op's own."""
    total = math.fsum(float(iou_matrix(a[start : start + _PAIR_CHUNK], b[start : start + _PAIR_CHUNK])
                            .diagonal().double().sum()) for start in range(0, len(a), _PAIR_CHUNK))
    return total / len(a)
