"""The fused small-CNN kernel of ``evaluate`` (csrc/eval/small_cnn.h): which templates it runs, and the call.

It runs plain ``nn.Sequential`` CNNs of the Hyper-Representations family: Conv2d (stride 1, one group, square
kernel, zero padding, bias), MaxPool2d (kernel = stride, no padding), ReLU, LeakyReLU (slope 0.01), Flatten and
Linear (bias), float32, with every parameter in the layout. Anything else goes through the other paths.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import _ext
from ..layout import ParamLayout

# csrc/eval/small_cnn.h CnnOp codes and the kAct activation codes.
_CONV, _MAX_POOL, _ACT, _LINEAR = 0, 1, 2, 3
_RELU, _LEAKY_RELU = 0, 1


@dataclass(frozen=True)
class SmallCnnPlan:
    """The kernel's layer table (int64 [count, 12], see csrc/binders.h) and its largest map per sample."""

    layers: torch.Tensor
    max_map: int


def plan(template: nn.Module, layout: ParamLayout, sample_shape: tuple[int, ...]) -> SmallCnnPlan | None:
    """The kernel's plan for ``template`` on samples of ``sample_shape`` [C, H, W], or None if it does not apply."""
    if not isinstance(template, nn.Sequential) or len(sample_shape) != 3:
        return None
    offsets = {entry.name: entry.offset for entry in layout.entries}
    if any(name not in offsets for name, _ in template.named_parameters()):
        return None  # a tensor fixed by the template: the kernel reads every parameter from the flat row
    rows, (c, h, w) = [], sample_shape
    max_map = c * h * w
    for name, module in template.named_children():
        row = _layer_row(module, name, (c, h, w), offsets)
        if row is None:
            return None
        if row:
            rows.append(row)
            c, h, w = row[5:8]
        elif isinstance(module, nn.Flatten):
            c, h, w = c * h * w, 1, 1  # the kernel's maps are C-major, already flat
        max_map = max(max_map, c * h * w)
    if not rows or rows[-1][0] != _LINEAR:
        return None
    return SmallCnnPlan(torch.tensor(rows, dtype=torch.int64), max_map)


def _layer_row(module: nn.Module, name: str, shape: tuple[int, int, int],
               offsets: dict[str, int]) -> list[int] | None:
    """The kernel row of one layer ([] for a Flatten, which changes no memory), or None if unsupported."""
    c, h, w = shape
    if isinstance(module, nn.Conv2d):
        k, pad = module.kernel_size[0], module.padding
        if (module.kernel_size != (k, k) or module.stride != (1, 1) or module.dilation != (1, 1)
                or module.groups != 1 or module.padding_mode != "zeros" or not isinstance(pad, tuple)
                or pad[0] != pad[1] or module.bias is None or module.in_channels != c):
            return None
        out_h, out_w = h + 2 * pad[0] - k + 1, w + 2 * pad[0] - k + 1
        return [_CONV, 0, c, h, w, module.out_channels, out_h, out_w, k, pad[0], offsets[f"{name}.weight"],
                offsets[f"{name}.bias"]]
    if isinstance(module, nn.MaxPool2d):
        k = module.kernel_size
        if (not isinstance(k, int) or module.stride not in (k, (k, k)) or module.padding not in (0, (0, 0))
                or module.dilation not in (1, (1, 1)) or module.ceil_mode or module.return_indices):
            return None
        return [_MAX_POOL, 0, c, h, w, c, h // k, w // k, k, 0, 0, 0]
    if isinstance(module, (nn.ReLU, nn.LeakyReLU)):
        if isinstance(module, nn.LeakyReLU) and module.negative_slope != 0.01:
            return None
        return [_ACT, _RELU if isinstance(module, nn.ReLU) else _LEAKY_RELU, c, h, w, c, h, w, 0, 0, 0, 0]
    if isinstance(module, nn.Flatten):
        return [] if module.start_dim == 1 and module.end_dim == -1 else None
    if isinstance(module, nn.Linear):
        if module.bias is None or module.in_features != c * h * w:
            return None
        return [_LINEAR, 0, c * h * w, 1, 1, module.out_features, 1, 1, 0, 0, offsets[f"{name}.weight"],
                offsets[f"{name}.bias"]]
    return None


def logits(impl: str, cnn: SmallCnnPlan, weights: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """[B, S, C] float32 logits of the B models (rows of ``weights``) on ``inputs`` [S, C, H, W]."""
    classes = int(cnn.layers[-1, 5])
    flat_inputs = inputs.reshape(inputs.shape[0], -1).contiguous()
    out = torch.empty(weights.shape[0], inputs.shape[0], classes, dtype=torch.float32, device=inputs.device)
    _ext.call(impl, "small_cnn_logits", cnn.layers, cnn.max_map, weights.contiguous(), flat_inputs,
              out.view(-1, classes))
    return out
