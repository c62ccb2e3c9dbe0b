"""Reads the chain of a template ``nn.Sequential`` for ``analyze`` (issue 9, study_spec §2.9).

Supported between Linear / Conv2d layers: elementwise activations, per-channel pooling, Flatten, Dropout and
BatchNorm1d/2d (nested ``nn.Sequential`` containers are walked through). A BatchNorm after a layer acts per unit,
so its tensors move with that layer's units: its weight and bias, and its running statistics, which are buffers.
A permutation of the flat vector can only move tensors the layout holds, so every BatchNorm tensor of a hidden
layer must be in the layout (``zoo.zoo_layout`` includes the running statistics; ``ParamLayout.from_module`` does
not), or the permuted network would normalise its units with another unit's statistics. Residual networks
(``zoo.cnn_bn``) are not chains and are rejected.
"""
from __future__ import annotations

import torch
from torch import nn

from ..layout import ParamLayout
from .chain import ChainLayer, ChainStructure

_LAYERS = (nn.Linear, nn.Conv2d)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
# Map each unit (channel) on its own, so any permutation of units commutes with them.
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.SELU, nn.CELU, nn.SiLU, nn.Mish,
                nn.Softplus, nn.Softsign, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Tanhshrink, nn.LogSigmoid)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
          nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d)
# f(c x) = c f(x) for every c > 0: scaling a unit's inputs by c and its outgoing weights by 1/c preserves the
# function. Max-pooling commutes with positive scaling and averaging is linear, so pools qualify; so does dropout
# (identity in eval mode, a per-unit mask times a constant in train mode).
_HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU) + _POOLS + _PASS_THROUGH


class _Layer:
    """A layer while the walk collects the per-unit modules and scale blockers that follow it."""

    def __init__(self, name: str, module: nn.Module, in_block: int) -> None:
        self.name, self.module, self.in_block = name, module, in_block
        self.batchnorms: list[str] = []
        self.blockers: list[str] = []

    @property
    def units(self) -> int:
        return self.module.out_features if isinstance(self.module, nn.Linear) else self.module.out_channels


def from_template(layout: ParamLayout, template: nn.Module) -> ChainStructure:
    """The chain of ``template`` over ``layout`` (``analyze`` with a template; its docstring has the contract)."""
    if not isinstance(template, nn.Sequential):
        raise ValueError(f"template must be an nn.Sequential chain of Linear / Conv2d layers; got "
                         f"{type(template).__name__}")
    tensors = {name: t for name, t in template.state_dict().items() if torch.is_floating_point(t)}
    for entry in layout.entries:
        if entry.name not in tensors:
            raise ValueError(f"layout names {entry.name!r}, which the template lacks; the template has "
                             f"{sorted(tensors)}")
        if tuple(tensors[entry.name].shape) != entry.shape:
            raise ValueError(f"layout gives {entry.name!r} shape {entry.shape}; the template's is "
                             f"{tuple(tensors[entry.name].shape)}")
    layers = _walk(template)
    if not layers:
        raise ValueError("template has no Linear or Conv2d layer, so there is nothing to permute or scale")
    entries = {entry.name: entry for entry in layout.entries}
    hidden = layers[:-1]
    # Every tensor a transform moves must be in the layout, or it would stay behind and the function change.
    moved = [f"{layer.name}.weight" for layer in layers]
    moved += [f"{layer.name}.bias" for layer in hidden if layer.module.bias is not None]
    moved += [name for layer in hidden for bn in layer.batchnorms for name in tensors if name.startswith(bn + ".")]
    missing = [name for name in moved if name not in entries]
    if missing:
        raise ValueError(f"layout lacks {missing}, which permuting or scaling the hidden units must move (running "
                         "statistics are buffers, outside ParamLayout.from_module); use a layout with every tensor "
                         "of the chain, e.g. weightmem_fast.zoo.zoo_layout(template)")
    return ChainStructure(layout.size, tuple(
        ChainLayer(
            name=layer.name,
            weight=entries[f"{layer.name}.weight"],
            bias=entries.get(f"{layer.name}.bias"),
            unit_tensors=tuple(entries[name] for bn in layer.batchnorms for name in tensors
                               if name.startswith(bn + ".")),
            in_block=layer.in_block,
            scale_blocker="; ".join(layer.blockers) or None,
        )
        for layer in layers
    ))


def _leaves(module: nn.Sequential, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """(state_dict prefix, module) of every non-Sequential module, in forward order."""
    leaves = []
    for name, child in module.named_children():
        full = f"{prefix}{name}"
        leaves += _leaves(child, full + ".") if isinstance(child, nn.Sequential) else [(full, child)]
    return leaves


def _walk(template: nn.Sequential) -> list[_Layer]:
    """The template's layers, each with the BatchNorms and scale blockers between it and the next layer."""
    layers: list[_Layer] = []
    flattened = False  # a Flatten since the last layer
    for name, module in _leaves(template):
        previous = layers[-1] if layers else None
        if isinstance(module, _LAYERS):
            layers.append(_Layer(name, module, _in_block(previous, name, module, flattened)))
            flattened = False
        elif isinstance(module, nn.Flatten):
            if (module.start_dim, module.end_dim) != (1, -1):
                raise ValueError(f"template: Flatten {name!r} must keep the batch dim (start_dim=1, end_dim=-1); got "
                                 f"start_dim={module.start_dim}, end_dim={module.end_dim}")
            flattened = True
        elif isinstance(module, _BATCHNORMS):
            if previous is not None:  # before the first layer it normalises the inputs, which never move
                if module.num_features != previous.units:
                    raise ValueError(f"template: {type(module).__name__} {name!r} has {module.num_features} "
                                     f"features but follows {previous.name!r} with {previous.units} units")
                previous.batchnorms.append(name)
                previous.blockers.append(
                    f"{type(module).__name__} {name!r} follows layer {previous.name!r}: scaling the layer's units "
                    "changes what BatchNorm normalises in train mode and would need rescaled running statistics in "
                    "eval mode, so it is not function-preserving")
        elif isinstance(module, _ELEMENTWISE + _POOLS + _PASS_THROUGH):
            if previous is not None and not isinstance(module, _HOMOGENEOUS):
                previous.blockers.append(
                    f"activation {type(module).__name__} ({name!r}) after layer {previous.name!r} is not positively "
                    "homogeneous; scaling needs f(c x) = c f(x) for c > 0 (ReLU, LeakyReLU or no activation)")
        else:
            raise ValueError(f"template: module {name!r} ({type(module).__name__}) is not supported in a chain; "
                             "supported are Linear, Conv2d, BatchNorm1d/2d, elementwise activations, pooling, "
                             "Flatten and Dropout (residual blocks are not chains)")
    return layers


def _in_block(previous: _Layer | None, name: str, module: nn.Module, flattened: bool) -> int:
    """Input columns of ``module`` per unit of ``previous``: H * W after a conv's flatten, else 1."""
    if isinstance(module, nn.Conv2d) and module.groups != 1:
        raise ValueError(f"template: Conv2d {name!r} has groups={module.groups}; only groups=1 is supported "
                         "(permuting channels across groups changes the function)")
    if previous is None:
        return 1
    prev_conv = isinstance(previous.module, nn.Conv2d)
    if isinstance(module, nn.Conv2d):
        if not prev_conv or flattened:
            raise ValueError(f"template: Conv2d {name!r} follows {previous.name!r} "
                             f"({type(previous.module).__name__}{', flattened' if flattened else ''}); a conv must "
                             "follow a conv directly (through activations, pooling or BatchNorm)")
        fan_in = module.in_channels
    else:
        if prev_conv and not flattened:
            raise ValueError(f"template: Linear {name!r} follows Conv2d {previous.name!r} without a Flatten")
        fan_in = module.in_features
    # Only a flatten of a conv's map gives several columns per unit (channel-major, H * W each).
    if fan_in % previous.units or (fan_in != previous.units and not (prev_conv and flattened)):
        raise ValueError(f"template: {name!r} takes {fan_in} inputs, not a multiple of the {previous.units} units "
                         f"of {previous.name!r}")
    return fan_in // previous.units
