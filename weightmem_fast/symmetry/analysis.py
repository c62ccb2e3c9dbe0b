"""``analyze``: the chain structure of a flat layout, from the template module or from the layout alone (issue 9).

With a template (``template.from_template``) the chain is read from the module, which also tells where BatchNorm
layers sit and which activations lie between layers. From the layout alone a plain chain is assumed (tensors
grouped by module prefix, each group one weight [units, fan_in, ...] and at most one bias [units]; the next fan-in a
multiple of the units, giving the flatten block); the activations are then unknown, so scaling needs the template.
"""
from __future__ import annotations

from torch import nn

from ..layout import ParamLayout, layer_groups
from .chain import ChainLayer, ChainStructure
from .template import from_template


def analyze(layout: ParamLayout, template: nn.Module | None = None) -> ChainStructure:
    """The chain structure of ``layout`` (see the module docstring).

    Args:
        layout: the flat layout of the weights to transform.
        template: the network (an ``nn.Sequential`` chain) whose tensors the layout names. Needed for BatchNorm
            layers and for ``scale`` (it tells which activations lie between layers); without it the layout must
            be a plain chain of weights and biases.

    Returns:
        ChainStructure; ``hidden`` may be empty (``require_hidden`` rejects that where units must exist).

    Raises:
        TypeError: ``layout`` is not a ParamLayout or ``template`` not an nn.Module.
        ValueError: the layout (or template) is not a supported chain; the message names the offending tensor or
            module.
    """
    if not isinstance(layout, ParamLayout):
        raise TypeError(f"layout must be a weightmem_fast.layout.ParamLayout; got {type(layout).__name__}")
    if template is None:
        return _from_layout(layout)
    if not isinstance(template, nn.Module):
        raise TypeError(f"template must be an nn.Module (the network the layout describes); got "
                        f"{type(template).__name__}")
    return from_template(layout, template)


_NO_TEMPLATE = ("the activations between layers are unknown without template=; pass the network so scale can check "
                "that they are positively homogeneous")


def _from_layout(layout: ParamLayout) -> ChainStructure:
    """A plain chain from module prefixes alone: per group one weight [units, fan_in, ...] and an optional bias."""
    layers: list[ChainLayer] = []
    for name, entries in layer_groups(layout).items():
        weights = [e for e in entries if len(e.shape) >= 2]
        biases = [e for e in entries if len(e.shape) == 1]
        if len(weights) != 1 or len(biases) > 1 or len(weights) + len(biases) != len(entries) or \
                (biases and biases[0].shape[0] != weights[0].shape[0]):
            shapes = {e.name: e.shape for e in entries}
            raise ValueError(f"layout: module {name!r} has tensors {shapes}, not one weight [units, fan_in, ...] and "
                             "at most one bias [units]; for BatchNorm layers pass template= (the network) so "
                             "their place in the chain is known")
        weight = weights[0]
        in_block = 1
        if layers:
            previous = layers[-1]
            if weight.shape[1] % previous.units:
                raise ValueError(f"layout: {weight.name} has fan-in {weight.shape[1]}, not a multiple of the "
                                 f"{previous.units} units of {previous.weight.name}, so the layout is not a chain "
                                 "of Linear / Conv layers")
            in_block = weight.shape[1] // previous.units
        layers.append(ChainLayer(name, weight, biases[0] if biases else None, (), in_block, _NO_TEMPLATE))
    return ChainStructure(layout.size, tuple(layers))
