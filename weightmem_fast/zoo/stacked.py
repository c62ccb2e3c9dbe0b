"""B independent models of one architecture run as one module: stacked tensors, one forward and backward for all
(issue 5).

Inside, spatial activations are channel-stacked, ``[S, B * C, H, W]`` with model b's channels at ``b*C .. (b+1)*C -
1``: a convolution is one grouped convolution (B times its own groups), BatchNorm normalises per model-channel
(training mode: over that model's own batch; running statistics per model), and pooling and elementwise
activations apply unchanged. Dense activations are ``[B, S, F]``: a Linear layer is one batched matrix product.
``nn.Flatten`` turns the first form into the second.

Model b's parameters and buffers are slice ``[b]`` of the stacked tensors and no operation mixes models, so the
summed loss of the B models gives each exactly its own gradient, and an elementwise optimiser (Adam, AdamW, SGD)
keeps the runs independent.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..layout import ParamLayout
from .architectures import ACTIVATIONS, BasicBlock

# Modules without state that act per channel or per element, so channel stacking leaves them correct.
_CHANNELWISE = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Identity) + tuple(
    module for module, _ in ACTIVATIONS.values())
# Containers whose forward combines children only by elementwise operations (BasicBlock: the residual sum).
_CONTAINERS = (nn.Sequential, BasicBlock)


class StackedModel(nn.Module):
    """B models of one architecture as one module.

    Supported modules: Linear, Conv2d (zero padding), BatchNorm2d (affine, tracked running statistics, a set
    momentum), Flatten (``start_dim=1``), max/average pooling, the ``ACTIVATIONS``, Identity, inside
    ``nn.Sequential`` or ``BasicBlock`` containers. The models are copied; they are left as they are.

    Attributes:
        net: the architecture with every Linear, Conv2d and BatchNorm2d replaced by its stacked form; its
            ``named_parameters()`` / ``named_buffers()`` carry the template's state_dict names with a leading
            model dimension B.
        models: B.
        sample_dims: 1 for models that start with a Linear layer (inputs [F]), 3 for a Conv2d (inputs [C, H, W]).

    Raises:
        ValueError: no models, models of different architectures (their reprs or tensor shapes differ), or a
            module this class cannot stack (the message names it).
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("models must hold at least one nn.Module; got an empty sequence")
        _check_same_architecture(models)
        self.models = len(models)
        self.sample_dims = sample_dims(models[0])
        self.net = _stack(models, "")
        self.train(models[0].training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs of the B models.

        Args:
            x: [S, *sample] inputs shared by every model, or [B, S, *sample] a batch per model (sample = [F] or
                [C, H, W], see ``sample_dims``).

        Returns:
            [B, S, *output] (logits [B, S, classes] for a classifier).
        """
        dims, b = self.sample_dims, self.models
        per_model = x.dim() == dims + 2
        if not (per_model or x.dim() == dims + 1) or (per_model and x.shape[0] != b):
            raise ValueError(f"x must be [S, *sample] or [B={b}, S, *sample] with a {dims}-D sample for these "
                             f"models; got shape {tuple(x.shape)}")
        if dims == 1:
            out = self.net(x if per_model else x.expand(b, -1, -1))
        else:
            out = self.net(x.transpose(0, 1).flatten(1, 2) if per_model else x.repeat(1, b, 1, 1))
        if out.dim() == 3:
            return out
        return out.unflatten(1, (b, -1)).transpose(0, 1)

    def stacked_tensors(self) -> dict[str, torch.Tensor]:
        """Every parameter and buffer under its template state_dict name, shaped [B, *shape]; the parameters are the
        module's own leaves (hand them to an optimiser)."""
        return dict(self.net.named_parameters()) | dict(self.net.named_buffers())

    def flat(self, layout: ParamLayout) -> torch.Tensor:
        """[B, D] flat weights of the models in ``layout`` (whose names may include BatchNorm running statistics).

        Raises:
            ValueError: a layout tensor these models do not have.
        """
        tensors = self.stacked_tensors()
        missing = [name for name in layout.names if name not in tensors]
        if missing:
            raise ValueError(f"layout names {missing} are not tensors of these models; they have {list(tensors)}")
        return torch.cat([tensors[name].detach().reshape(self.models, -1) for name in layout.names], dim=1)

    def state_dicts(self) -> list[dict[str, torch.Tensor]]:
        """The B models' state_dicts (copies), loadable into the template with ``load_state_dict``."""
        tensors = self.stacked_tensors()
        return [{name: t[b].detach().clone() for name, t in tensors.items()} for b in range(self.models)]


def sample_dims(model: nn.Module) -> int:
    """Dimensions of one input sample: 1 when the first layer with parameters is Linear, 3 when it is Conv2d.

    Raises:
        ValueError: the model has neither as its first parametrised layer.
    """
    for module in model.modules():
        if isinstance(module, nn.Linear):
            return 1
        if isinstance(module, nn.Conv2d):
            return 3
        if next(module.parameters(recurse=False), None) is not None:
            break
    raise ValueError(f"StackedModel needs a model that starts with a Linear or Conv2d layer; got "
                     f"{type(model).__name__}")


def _check_same_architecture(models: list[nn.Module]) -> None:
    first, shapes = repr(models[0]), {k: v.shape for k, v in models[0].state_dict().items()}
    for index, model in enumerate(models[1:], start=1):
        if repr(model) != first or {k: v.shape for k, v in model.state_dict().items()} != shapes:
            raise ValueError(f"models must share one architecture; model {index} differs from model 0 "
                             f"({type(model).__name__}: {repr(model)[:200]} vs {first[:200]})")


def _stack(models: list[nn.Module], name: str) -> nn.Module:
    """The stacked form of module ``name`` of every model (the models share an architecture)."""
    first = models[0]
    kind = type(first)
    if kind in _STACKED:
        return _STACKED[kind](models, name)
    if isinstance(first, _CHANNELWISE):
        return copy.deepcopy(first)
    if isinstance(first, nn.Flatten):
        return _StackedFlatten(first, len(models), name)
    if kind in _CONTAINERS:
        container = copy.deepcopy(first)
        for child in first._modules:
            container._modules[child] = _stack([m._modules[child] for m in models], f"{name}.{child}".lstrip("."))
        return container
    raise ValueError(f"StackedModel cannot stack module {name or '<root>'!r} of type {kind.__name__}; supported: "
                     f"Linear, Conv2d, BatchNorm2d, Flatten, {', '.join(t.__name__ for t in _CHANNELWISE)} inside "
                     f"{', '.join(t.__name__ for t in _CONTAINERS)}")


def _stacked_parameter(tensors: list[torch.Tensor | None]) -> nn.Parameter | None:
    if tensors[0] is None:
        return None
    return nn.Parameter(torch.stack([t.detach() for t in tensors]))


class _StackedLinear(nn.Module):
    """B Linear layers: weight [B, out, in], bias [B, out]; [B, S, in] -> [B, S, out]."""

    def __init__(self, layers: list[nn.Linear], name: str) -> None:
        super().__init__()
        self.weight = _stacked_parameter([layer.weight for layer in layers])
        self.bias = _stacked_parameter([layer.bias for layer in layers])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.bmm(x, self.weight.transpose(1, 2))
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class _StackedConv2d(nn.Module):
    """B Conv2d layers as one grouped convolution: weight [B, out, in / groups, kh, kw], bias [B, out];
    [S, B * in, H, W] -> [S, B * out, H', W'].

    A full convolution (stride 1, padding = dilation * (kernel - 1), one group; ``cnn``'s conv2 on small inputs)
    runs as the equal transposed convolution with the flipped kernel, which skips the products with padding zeros
    (twice as fast for ``cnn`` on digits).
    """

    def __init__(self, layers: list[nn.Conv2d], name: str) -> None:
        super().__init__()
        first = layers[0]
        if first.padding_mode != "zeros":
            raise ValueError(f"StackedModel supports Conv2d with padding_mode='zeros'; {name!r} has "
                             f"{first.padding_mode!r}")
        self.weight = _stacked_parameter([layer.weight for layer in layers])
        self.bias = _stacked_parameter([layer.bias for layer in layers])
        self.stride, self.padding, self.dilation = first.stride, first.padding, first.dilation
        self.groups = len(layers) * first.groups
        full = tuple(d * (k - 1) for d, k in zip(first.dilation, first.kernel_size))
        self.full = first.stride == (1, 1) and first.padding == full and first.groups == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.flatten()
        if self.full:
            kernel = self.weight.flip(-2, -1).transpose(1, 2).flatten(0, 1)  # [B * in, out, kh, kw]
            return F.conv_transpose2d(x, kernel, bias, groups=self.groups, dilation=self.dilation)
        return F.conv2d(x, self.weight.flatten(0, 1), bias, self.stride, self.padding, self.dilation, self.groups)


class _StackedBatchNorm2d(nn.Module):
    """B BatchNorm2d layers over [S, B * C, H, W]: weight, bias, running_mean, running_var [B, C],
    num_batches_tracked [B]. Training mode normalises each model-channel over its own batch and updates that
    model's running statistics, as nn.BatchNorm2d does."""

    def __init__(self, layers: list[nn.BatchNorm2d], name: str) -> None:
        super().__init__()
        first = layers[0]
        if not first.affine or not first.track_running_stats or first.momentum is None:
            raise ValueError(f"StackedModel supports BatchNorm2d with affine=True, track_running_stats=True and a "
                             f"momentum; {name!r} is {first!r}")
        self.weight = _stacked_parameter([layer.weight for layer in layers])
        self.bias = _stacked_parameter([layer.bias for layer in layers])
        for buffer in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(buffer, torch.stack([getattr(layer, buffer).detach() for layer in layers]))
        self.eps, self.momentum = first.eps, first.momentum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        # The flat views share storage with the [B, C] buffers, so F.batch_norm's in-place update reaches them.
        return F.batch_norm(x, self.running_mean.view(-1), self.running_var.view(-1), self.weight.flatten(),
                            self.bias.flatten(), self.training, self.momentum, self.eps)


class _StackedFlatten(nn.Module):
    """nn.Flatten(start_dim=1) of B models: [S, B * C, H, W] -> [B, S, C * H * W] (each model's C-major order)."""

    def __init__(self, layer: nn.Flatten, models: int, name: str) -> None:
        super().__init__()
        if layer.start_dim != 1 or layer.end_dim != -1:
            raise ValueError(f"StackedModel supports Flatten(start_dim=1, end_dim=-1); {name!r} is {layer!r}")
        self.models = models

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"a stacked Flatten expects channel-stacked maps [S, B * C, H, W]; got {tuple(x.shape)}")
        return x.reshape(x.shape[0], self.models, -1).transpose(0, 1)


_STACKED = {nn.Linear: _StackedLinear, nn.Conv2d: _StackedConv2d, nn.BatchNorm2d: _StackedBatchNorm2d}
