"""One model of a zoo: seeded construction, the flat layout of a zoo row, and rebuilding a model from a row
(issue 5).

A zoo row holds every floating-point tensor of the model's state_dict (``zoo_layout``): the parameters and, for
BatchNorm models, the running statistics (``running_mean``, ``running_var``) next to their layer's weight and bias.
The row is therefore enough to rebuild the model exactly, and ``weightmem_fast.evaluate(template, zoo.weights,
..., layout=zoo.layout)`` evaluates each row with its own statistics. ``num_batches_tracked`` (an integer) is left
out; it matters only to BatchNorm with ``momentum=None``, which the zoo architectures do not use. For distances over
parameters alone, take the columns of ``ParamLayout.from_module(model)``'s names.
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import nn

from ..io import Zoo
from ..layout import ParamLayout
from .architectures import ARCHITECTURES

# Weight initialisations a zoo may vary (model-zoo papers vary them). "default" is PyTorch's own; the others redraw
# every Linear and Conv2d weight with the torch.nn.init function of that name; biases and BatchNorm keep defaults.
INITS = ("default", "kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal")


def make_model(arch: str, input_shape: Sequence[int], classes: int, *, seed: int, init: str = "default",
               **arch_kwargs: Any) -> nn.Module:
    """A new model of family ``arch``, initialised from ``seed`` alone.

    The weights are those of ``torch.manual_seed(seed)`` followed by the constructor (then the ``init`` redraw,
    from the same stream), computed on a forked generator so the caller's global RNG state is unchanged.

    Args:
        arch: a key of ``ARCHITECTURES`` ("mlp", "cnn", "cnn_bn").
        input_shape: one sample's shape, e.g. (1, 8, 8) for digits (an MLP takes its product as input size).
        classes: output classes.
        seed: the model's seed.
        init: one of ``INITS``.
        **arch_kwargs: the family's options (``activation``, ``hidden``, ``width``).

    Raises:
        ValueError: unknown ``arch`` or ``init``, or options the family rejects.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}; got {arch!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}; got {init!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = ARCHITECTURES[arch](tuple(int(s) for s in input_shape), classes, **arch_kwargs)
        except TypeError as err:  # an option the family does not take
            raise ValueError(f"arch {arch!r} does not take these options {sorted(arch_kwargs)}: {err}") from err
        if init != "default":
            redraw = getattr(nn.init, f"{init}_")
            for module in model.modules():
                if isinstance(module, (nn.Linear, nn.Conv2d)):
                    redraw(module.weight.data)
    return model


def zoo_layout(model: nn.Module) -> ParamLayout:
    """The layout of a full zoo row: every floating-point tensor of ``model.state_dict()`` in its order (parameters
    and BatchNorm running statistics). Equals ``ParamLayout.from_module(model)`` for models without buffers."""
    return ParamLayout.from_state_dict(model.state_dict())


def model_from_zoo(zoo: Zoo, row: int = 0, template: nn.Module | None = None) -> nn.Module:
    """Rebuilds the model of one zoo row, in eval mode.

    Args:
        zoo: a zoo from ``train_zoo``, ``trajectories`` or ``consecutive_checkpoints``.
        row: which row.
        template: the model that supplies every tensor outside ``zoo.layout`` (a copy is returned; the template is
            unchanged). Needed for subset layouts (``consecutive_checkpoints``: the base model, whose BatchNorm
            statistics are then the ones used, as P-diff evaluates). Without it, the architecture is rebuilt from
            the row's metadata (``arch``, ``input_shape``, ``classes``, ``arch_kwargs``) and every state_dict tensor
            must be in the layout.

    Raises:
        ValueError: no template and the metadata lacks the architecture, or a layout tensor the model lacks, or
            (without template) a model tensor the layout lacks.
    """
    if not isinstance(zoo, Zoo):
        raise TypeError(f"zoo must be a weightmem_fast.io.Zoo; got {type(zoo).__name__}")
    if not -len(zoo) <= row < len(zoo):
        raise IndexError(f"row {row} is out of range for a zoo of {len(zoo)} rows")
    entry = zoo.metadata[row]
    if template is None:
        missing = [key for key in ("arch", "input_shape", "classes", "arch_kwargs") if key not in entry]
        if missing:
            raise ValueError(f"zoo.metadata[{row}] lacks {missing}, so the architecture is unknown; pass template= "
                             "(the base model for subset layouts)")
        model = make_model(entry["arch"], entry["input_shape"], entry["classes"], seed=0, **entry["arch_kwargs"])
        outside = [name for name, t in model.state_dict().items()
                   if torch.is_floating_point(t) and name not in set(zoo.layout.names)]
        if outside:
            raise ValueError(f"zoo.layout lacks the model tensors {outside}; pass template= to supply them")
    else:
        model = copy.deepcopy(template)
    state = zoo.layout.unflatten(zoo.weights[row])[0]
    result = model.load_state_dict({name: t.detach().clone() for name, t in state.items()}, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"zoo.layout names {result.unexpected_keys} that the model does not have")
    return model.eval()
