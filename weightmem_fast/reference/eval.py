"""Twin of ``weightmem_fast.evaluate``: the study's loop, one ``load_state_dict`` and forward per model."""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from ..layout import ParamLayout
from .iou import error_masks


def evaluate(
    template: nn.Module,
    weights: torch.Tensor,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    layout: ParamLayout | None = None,
):
    """Evaluates every row of ``weights`` as a copy of ``template`` (eval mode) on ``inputs``.

    Tensors outside ``layout`` keep the template's values (e.g. BatchNorm statistics, or the base model of a
    subset layout). Returns the same ``Evaluation`` as ``weightmem_fast.evaluate``.
    """
    from ..ops.eval import Evaluation

    layout = layout or ParamLayout.from_module(template)
    labels = labels.long()
    model = copy.deepcopy(template).eval()
    predictions, losses = [], []
    with torch.no_grad():
        for state in layout.unflatten(weights):
            model.load_state_dict(state, strict=False)
            logits = model(inputs).float()
            predictions.append(logits.argmax(dim=1))
            losses.append(F.cross_entropy(logits, labels))
    predictions = torch.stack(predictions)
    accuracy = (predictions == labels).float().mean(dim=1)
    finite = torch.isfinite(weights).all(dim=1)
    return Evaluation(predictions, accuracy, torch.stack(losses), error_masks(predictions, labels), ~finite)
