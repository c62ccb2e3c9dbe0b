"""``evaluate``: accuracy, predictions and packed error sets of thousands of models in one call (issue 5).

Models are rows of flat weights in a template's layout. Stacks of Linear layers with elementwise activations
(the G.pt family) run as batched matrix products: the first layer is one GEMM of the shared inputs against every
model's weights side by side, later layers are batched GEMMs, all chunked over models so memory stays bounded.
Any other template runs through ``torch.func.vmap(functional_call)`` in chunks. Both give the per-model loop's
results (``weightmem_fast.reference.evaluate``).
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .. import _check, _dispatch, _ext
from ..layout import ParamLayout
from ..packed_masks import PackedMasks
from ..zoo.architectures import ACTIVATIONS
from ..zoo.loop import activation_width
from ..zoo.stacked import StackedModel, sample_dims
from . import _gram, _small_cnn
from .iou import error_masks

# Activations (per model, per sample) held at once when chunking over models.
_CHUNK_ELEMENTS = 1 << 25


@dataclass(frozen=True)
class Evaluation:
    """What ``evaluate`` measured for N models on S inputs.

    Attributes:
        predictions: [N, S] int64 argmax classes.
        accuracy: [N] float32 share of correct predictions.
        loss: [N] float32 mean cross-entropy.
        errors: PackedMasks [N, S], bit set where a model is wrong (for ``max_iou``).
        nonfinite: [N] bool, models with NaN/Inf weights; their numbers are computed but meaningless.
    """

    predictions: torch.Tensor
    accuracy: torch.Tensor
    loss: torch.Tensor
    errors: PackedMasks
    nonfinite: torch.Tensor


def _linear_stack(template: nn.Module) -> list[nn.Module] | None:
    """The template's layers if it is Linear layers with elementwise activations between them, else None."""
    if not isinstance(template, nn.Sequential):
        return None
    activation_types = tuple(module_type for module_type, _ in ACTIVATIONS.values())
    layers = list(template)
    ok = all(isinstance(m, (nn.Linear, nn.Flatten) + activation_types) for m in layers)
    return layers if ok and any(isinstance(m, nn.Linear) for m in layers) else None


def _stacked_tensor(layout: ParamLayout, weights: torch.Tensor, name: str, fixed: torch.Tensor) -> torch.Tensor:
    """[B, *shape] of tensor ``name`` for the B models: a view of their weights, or the template's ``fixed`` value
    for every model when the tensor is outside the layout."""
    models = weights.shape[0]
    for entry in layout.entries:
        if entry.name == name:
            return weights[:, entry.offset : entry.offset + entry.numel].view(models, *entry.shape)
    return fixed.unsqueeze(0).expand(models, *fixed.shape)


# csrc/eval/mlp_head.h Activation codes, for the torch modules the kernel reproduces exactly (default settings).
_KERNEL_ACTIVATIONS = {nn.ReLU: 0, nn.LeakyReLU: 1, nn.Tanh: 2, nn.GELU: 3, nn.Sigmoid: 4}
# Codes whose activation torch applies to the hidden layer before the head (the kernel fuses only ReLU-like ones).
_TORCH_APPLIED = {2: torch.tanh_, 3: F.gelu, 4: torch.sigmoid_}
_MAX_KERNEL_WIDTH = 256  # hidden width and classes (kMaxHeadWidth, kMaxHeadClasses)


def _two_layer_kernel_plan(layers: list[nn.Module] | None, template: nn.Module) -> tuple[str, str, int] | None:
    """(first Linear's name, second's, activation code) when the compiled head applies: Linear, activation,
    Linear (Flatten anywhere), float32, hidden width and classes <= 256, torch's default activation
    settings."""
    if layers is None:
        return None
    body = [m for m in layers if not isinstance(m, nn.Flatten)]  # Flatten is a no-op past the input
    if len(body) != 3 or not isinstance(body[0], nn.Linear) or not isinstance(body[2], nn.Linear):
        return None
    act = body[1]
    code = _KERNEL_ACTIVATIONS.get(type(act))
    non_default = (isinstance(act, nn.LeakyReLU) and act.negative_slope != 0.01) or (
        isinstance(act, nn.GELU) and act.approximate != "none")
    if code is None or non_default or body[0].out_features > _MAX_KERNEL_WIDTH \
            or body[2].out_features > _MAX_KERNEL_WIDTH or body[0].bias is None \
            or body[2].bias is None or body[0].weight.dtype != torch.float32:
        return None
    names = {id(module): name for name, module in template.named_modules()}
    return names[id(body[0])], names[id(body[2])], code


def _kernel_chunk(impl: str, plan: tuple[str, str, int], template: nn.Module, layout: ParamLayout,
                  weights: torch.Tensor, x: torch.Tensor, labels: torch.Tensor,
                  input_norms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Predictions [B, S], per-sample losses [B, S] and uncertain [B, S] (csrc/eval/mlp_head.h certificate):
    one GEMM for every model's first layer, the compiled head for the rest."""
    first, second, code = plan
    modules = dict(template.named_modules())
    w1 = _stacked_tensor(layout, weights, f"{first}.weight", modules[first].weight)  # [B, H, I]
    b1 = _stacked_tensor(layout, weights, f"{first}.bias", modules[first].bias)  # [B, H]
    w2 = _stacked_tensor(layout, weights, f"{second}.weight", modules[second].weight).contiguous()  # [B, C, H]
    b2 = _stacked_tensor(layout, weights, f"{second}.bias", modules[second].bias).contiguous()  # [B, C]
    models, width, features = w1.shape
    hidden = torch.addmm(b1.reshape(-1, 1), w1.reshape(-1, features), x.t())  # [B * H, S]
    if code in _TORCH_APPLIED:  # transcendentals: torch's vectorised functions, as in the per-model forward
        hidden = _TORCH_APPLIED[code](hidden)
    gamma1 = _gram.float32_matmul_error(features + 1, x.device.type)
    unit_error_scale = (torch.linalg.vector_norm(w1, dim=2, dtype=torch.float64) * gamma1).float()
    unit_error_offset = (b1.double().abs() * gamma1).float().contiguous()
    dot_error = _gram.float32_matmul_error(width + 1, x.device.type)
    predictions = torch.empty(models, x.shape[0], dtype=torch.int64, device=x.device)
    nll = torch.empty(models, x.shape[0], dtype=torch.float32, device=x.device)
    uncertain = torch.empty(models, x.shape[0], dtype=torch.uint8, device=x.device)
    _ext.call(impl, "mlp_head", hidden, w2, b2, labels.contiguous(), code, unit_error_scale, unit_error_offset,
              input_norms, dot_error, predictions, nll, uncertain)
    return predictions, nll, uncertain.bool()


def _stacked_logits(layers: list[nn.Module], layout: ParamLayout, weights: torch.Tensor, x: torch.Tensor,
                    template: nn.Module) -> torch.Tensor:
    """[B, S, C] logits of B models: a shared-input GEMM for the first Linear, batched GEMMs after it.

    A Linear tensor outside ``layout`` keeps the template's value for every model.
    """
    names = {id(module): name for name, module in template.named_modules()}
    models = weights.shape[0]
    h: torch.Tensor | None = None  # [B, S, F] once past the first Linear
    for layer in layers:
        if isinstance(layer, nn.Flatten):
            if h is None:
                x = x.flatten(1)
        elif isinstance(layer, nn.Linear):
            name = names[id(layer)]
            w = _stacked_tensor(layout, weights, f"{name}.weight", layer.weight)  # [B, out, in]
            if h is None:  # one GEMM of the shared inputs: [S, in] x [in, B * out]
                h = (x @ w.reshape(-1, w.shape[2]).t()).view(x.shape[0], models, -1).transpose(0, 1)
            else:
                h = torch.bmm(h, w.transpose(1, 2))
            if layer.bias is not None:
                h = h + _stacked_tensor(layout, weights, f"{name}.bias", layer.bias).unsqueeze(1)
        else:
            h = layer(h)  # elementwise activation
    return h


def _stacked_module(template: nn.Module, layout: ParamLayout, weights: torch.Tensor) -> StackedModel | None:
    """The B models as one StackedModel in eval mode (grouped convolutions, per-model BatchNorm statistics), or
    None when the template starts with a Linear layer (the stacked-GEMM path) or has a module it cannot stack."""
    try:
        if sample_dims(template) != 3:
            return None
        stacked = StackedModel([template] * weights.shape[0]).eval().requires_grad_(False)
    except ValueError:
        return None
    tensors = stacked.stacked_tensors()
    for entry in layout.entries:
        tensors[entry.name].copy_(weights[:, entry.offset : entry.offset + entry.numel].view(-1, *entry.shape))
    return stacked


def _vmapped_logits(template: nn.Module, layout: ParamLayout, weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[B, S, C] logits through torch.func.vmap over functional_call (any template)."""
    base = dict(template.named_parameters()) | dict(template.named_buffers())
    stacked = {entry.name: weights[:, entry.offset : entry.offset + entry.numel].reshape(-1, *entry.shape)
               for entry in layout.entries}

    def one(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.func.functional_call(template, base | params, (x,))

    return torch.func.vmap(one)(stacked)


def evaluate(
    template: nn.Module,
    weights: torch.Tensor,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    layout: ParamLayout | None = None,
    batch_size: int | None = None,
) -> Evaluation:
    """Evaluates N models given as flat weights on one test set.

    Args:
        template: the architecture (its tensors outside ``layout`` stay fixed, e.g. BatchNorm statistics or the
            base model of a subset layout); evaluated in eval mode.
        weights: [N, D] float32 flat weights, D = ``layout.size``, on the inputs' device.
        inputs: [S, ...] test inputs the template accepts.
        labels: [S] int64 classes.
        layout: defaults to ``ParamLayout.from_module(template)``.
        batch_size: models per chunk (default: as many as keep about 32M activations in memory).

    Returns:
        Evaluation (predictions, accuracy, loss, packed errors, non-finite flags). Models with NaN/Inf weights
        are evaluated and flagged, never an error.

    Raises:
        TypeError / ValueError: weights not [N, layout.size] floating, inputs or labels of the wrong shape, labels
            out of range for the template's outputs.
    """
    layout = layout or ParamLayout.from_module(template)
    weights = _check.matrix("weights", weights)
    if weights.shape[1] != layout.size:
        raise ValueError(f"weights must be [N, {layout.size}] for this layout; got {tuple(weights.shape)}")
    labels = _check.integer_matrix("labels", labels, 1).long()
    if not isinstance(inputs, torch.Tensor) or inputs.shape[0] != labels.shape[0]:
        got = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be a tensor [S, ...] with S = len(labels) = {labels.shape[0]}; got {got}")
    was_training = template.training
    template.eval()  # the caller's module is put back in its mode afterwards
    try:
        predictions, losses = _evaluate_chunks(template, layout, weights, inputs, labels, batch_size)
    finally:
        template.train(was_training)
    predictions = torch.cat(predictions)
    accuracy = (predictions == labels).float().mean(dim=1)
    return Evaluation(predictions, accuracy, torch.cat(losses), error_masks(predictions, labels),
                      ~torch.isfinite(weights).all(dim=1))


def _evaluate_chunks(template: nn.Module, layout: ParamLayout, weights: torch.Tensor, inputs: torch.Tensor,
                     labels: torch.Tensor, batch_size: int | None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Predictions [B, S] and losses [B] of every chunk of models (template already in eval mode)."""
    with torch.no_grad():
        probe = template(inputs[:1])
    classes = probe.shape[-1]
    if int(labels.min()) < 0 or int(labels.max()) >= classes:
        raise ValueError(f"labels must be class indices in [0, {classes}) for this template; got "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    layers = _linear_stack(template)
    impl = _dispatch.choose("evaluate", inputs.device.type, "auto")
    float32 = inputs.dtype == torch.float32 and weights.dtype == torch.float32
    plan = _two_layer_kernel_plan(layers, template) if impl != "torch" and float32 else None
    if plan is not None:
        flat_inputs = inputs.flatten(1)
        input_norms = torch.linalg.vector_norm(flat_inputs, dim=1, dtype=torch.float64).float()
    cnn = (_small_cnn.plan(template, layout, tuple(inputs.shape[1:]))
           if impl == "cpu" and float32 and layers is None else None)
    if cnn is not None:
        finite_inputs = torch.isfinite(inputs.flatten(1)).all(dim=1)[None]
    # Activations held per model and sample: the widest Linear output of a stack, the logits of the fused CNN
    # kernel, else the widest module output.
    if layers:
        width = max(m.out_features for m in layers if isinstance(m, nn.Linear))
    else:
        width = classes if cnn is not None else activation_width(template, inputs[0])
    chunk = batch_size or max(1, _CHUNK_ELEMENTS // (inputs.shape[0] * width))
    # One model's activations on all inputs may exceed the budget (CNNs): inputs go in slices then.
    sample_chunk = max(1, _CHUNK_ELEMENTS // (chunk * width))
    predictions, losses = [], []
    with torch.no_grad():
        for start in range(0, weights.shape[0], chunk):
            block = weights[start : start + chunk]
            if plan is not None:
                block_predictions, nll, uncertain = _kernel_chunk(impl, plan, template, layout, block, flat_inputs,
                                                                  labels, input_norms)
                block_losses = nll.mean(dim=1, dtype=torch.float64).float()
            else:
                logits = _logits(template, layers, layout, block, inputs, sample_chunk, cnn, impl).float()
                block_predictions = logits.argmax(dim=2)
                uncertain = _near_ties(logits)
                if cnn is not None:  # the kernel's max-pool may drop a NaN that torch passes on
                    uncertain |= ~(torch.isfinite(block).all(dim=1, keepdim=True) & finite_inputs)
                target = labels.expand(logits.shape[0], -1)
                block_losses = F.cross_entropy(logits.transpose(1, 2), target, reduction="none").mean(dim=1)
            _settle(template, layout, block, inputs, uncertain, block_predictions)
            predictions.append(block_predictions)
            losses.append(block_losses)
    return predictions, losses


def _logits(template: nn.Module, layers: list[nn.Module] | None, layout: ParamLayout, weights: torch.Tensor,
            inputs: torch.Tensor, sample_chunk: int, cnn: _small_cnn.SmallCnnPlan | None,
            impl: str) -> torch.Tensor:
    """[B, S, C] logits of B models without the compiled head: stacked GEMMs for Linear stacks, the fused
    small-CNN kernel or a StackedModel (grouped convolutions) for CNNs, else vmap(functional_call); inputs in
    slices of ``sample_chunk`` where activations are held."""
    if layers is not None:
        return _stacked_logits(layers, layout, weights, inputs, template)
    if cnn is not None:
        return _small_cnn.logits(impl, cnn, weights, inputs)
    stacked = _stacked_module(template, layout, weights)
    forward = stacked if stacked is not None else functools.partial(_vmapped_logits, template, layout, weights)
    return torch.cat([forward(inputs[start : start + sample_chunk])
                      for start in range(0, inputs.shape[0], sample_chunk)], dim=1)


# Batched products sum in another order than the per-model forward, which moves a float32 logit by about 1e-6
# of its magnitude; without a certificate (the compiled head has one), a top-2 margin below this share of the
# logits' scale is treated as a possible flip and recomputed.
_NEAR_TIE = 1e-3


def _near_ties(logits: torch.Tensor) -> torch.Tensor:
    """[B, S] bool: the top two logits are within _NEAR_TIE of each other (relative), or not finite."""
    if logits.shape[2] < 2:
        return torch.zeros(logits.shape[:2], dtype=torch.bool, device=logits.device)
    top2 = logits.topk(2, dim=2).values
    scale = 1.0 + logits.abs().amax(dim=2)
    return ~((top2[..., 0] - top2[..., 1]) > _NEAR_TIE * scale)


def _settle(template: nn.Module, layout: ParamLayout, weights: torch.Tensor, inputs: torch.Tensor,
            uncertain: torch.Tensor, predictions: torch.Tensor) -> None:
    """Overwrites the uncertain predictions with those of the per-model forward (the loop twin's arithmetic).

    Each model with uncertain samples is copied into one private copy of the template, as the loop's
    ``load_state_dict`` does, and run on just those inputs: a GEMM computes each output row from its input row
    alone, so the rows come out as in the full-batch forward. A lone row is paired with a neighbour, because a
    one-row batch takes a matrix-vector path with other sums.
    """
    pairs = uncertain.nonzero()  # row-major: grouped by model
    if len(pairs) == 0:
        return
    model = copy.deepcopy(template)
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    samples = inputs.shape[0]
    models, counts = torch.unique_consecutive(pairs[:, 0], return_counts=True)
    for index, rows in zip(models.tolist(), pairs[:, 1].split(counts.tolist())):
        for entry in layout.entries:
            tensors[entry.name].copy_(weights[index, entry.offset : entry.offset + entry.numel].view(entry.shape))
        run = rows if len(rows) > 1 or samples == 1 else torch.cat([rows, (rows + 1) % samples])
        predictions[index, rows] = model(inputs[run])[: len(rows)].argmax(dim=1)
