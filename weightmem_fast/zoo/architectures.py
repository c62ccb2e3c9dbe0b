"""The study's network families, scaled to the data (issue 5, study_spec §1.1).

- ``mlp``: G.pt's MNIST MLP, in -> 10 (activation) -> 10. 784 -> 10 -> 10 has 7,960 parameters; 64 -> 10 -> 10 on
  digits has 760. Layout: 0.weight, 0.bias, 2.weight, 2.bias.
- ``cnn``: the Hyper-Representations zoo CNN, a plain ``nn.Sequential`` with the study's module indices (parameters
  at 0, 3, 6, 9, 11) and, at every input size from 4x4 to 28x28, the study's flat layout of D = 2,464.
- ``cnn_bn``: a small ResNet with BatchNorm; P-diff generates the affine parameters of its last two BatchNorm
  layers (``pdiff_subset``).

``ARCHITECTURES`` maps each name to a builder ``(input_shape, classes, **kwargs) -> nn.Module`` (the zoo builders'
``arch`` argument). Every family takes an ``activation`` from ``ACTIVATIONS``.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

# Elementwise activations by name: the module for templates, the function for batched evaluation.
ACTIVATIONS: dict[str, tuple[Callable[[], nn.Module], Callable[[torch.Tensor], torch.Tensor]]] = {
    "relu": (nn.ReLU, F.relu),
    "leaky_relu": (nn.LeakyReLU, F.leaky_relu),
    "tanh": (nn.Tanh, torch.tanh),
    "gelu": (nn.GELU, F.gelu),
    "sigmoid": (nn.Sigmoid, torch.sigmoid),
}


def _activation_module(name: str) -> nn.Module:
    """A new module of the named activation; ValueError lists the choices."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {name!r}")
    return ACTIVATIONS[name][0]()


def mlp(in_features: int, hidden: int = 10, out_features: int = 10, activation: str = "relu") -> nn.Sequential:
    """Linear(in, hidden) -> activation -> Linear(hidden, out): G.pt's MLP family.

    Parameters: hidden * (in + 1) + out * (hidden + 1); 7,960 for 784 -> 10 -> 10, 760 for digits' 64 -> 10 -> 10.
    """
    return nn.Sequential(nn.Linear(in_features, hidden), _activation_module(activation),
                         nn.Linear(hidden, out_features))


# The study's HR CNN reaches fc1 with a 4 x 3 x 3 feature map on 28 x 28 inputs (study_spec §1.1).
_HR_FINAL_SIDE = 3
_HR_KERNELS = (5, 5, 2)


def _hr_side(image_size: int, pad1: int, pad2: int) -> int:
    """Side of the map leaving conv3: conv k5 (pad1) -> pool 2 -> conv k5 (pad2) -> pool 2 -> conv k2."""
    side = (image_size + 2 * pad1 - _HR_KERNELS[0] + 1) // 2
    side = (side + 2 * pad2 - _HR_KERNELS[1] + 1) // 2
    return side - _HR_KERNELS[2] + 1


def hr_padding(image_size: int) -> tuple[int, int]:
    """Zero padding of conv1 and conv2 in ``cnn`` for square inputs of side ``image_size``.

    Inputs of 28 and more get none (28 x 28 is the study's network). Smaller inputs get the least total padding
    (ties: less on conv1), each at most 4 = kernel - 1 so every output still sees an input pixel, that brings the
    map entering fc1 to 4 x 3 x 3, so the flat layout and D = 2,464 are the study's. Digits' 8 x 8 gives (2, 4):
    conv1 keeps 8 x 8, pooling gives 4 x 4, conv2 grows it to 8 x 8, pooling 4 x 4, conv3 3 x 3.

    Raises:
        ValueError: ``image_size`` < 4 (no padding reaches 3 x 3) or not an int.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int):
        raise ValueError(f"image_size must be an int; got {image_size!r}")
    if image_size >= 28:
        return 0, 0
    options = [(pad1 + pad2, pad1, pad2) for pad1 in range(5) for pad2 in range(5)
               if _hr_side(image_size, pad1, pad2) == _HR_FINAL_SIDE]
    if not options:
        raise ValueError(f"image_size must be at least 4 for the HR CNN (the map entering fc1 must reach 3 x 3); "
                         f"got {image_size}")
    _, pad1, pad2 = min(options)
    return pad1, pad2


def cnn(in_channels: int = 1, image_size: int = 28, classes: int = 10, activation: str = "leaky_relu") -> nn.Sequential:
    """The Hyper-Representations zoo CNN (study_spec §1.1, §3.1) for square inputs.

    conv in->8 k5 -> maxpool 2 -> act -> conv 8->6 k5 -> maxpool 2 -> act -> conv 6->4 k2 -> act -> flatten ->
    fc ->20 -> act -> fc 20->classes, as one ``nn.Sequential`` (parameters at indices 0, 3, 6, 9, 11, as the study's
    evaluation expects). Inputs smaller than 28 x 28 are zero-padded in conv1 and conv2 (``hr_padding``) so the
    flattened map is 4 x 3 x 3 at every size from 4 to 28: with one input channel and 10 classes the layout is the
    study's 2,464 parameters (0.weight [8,1,5,5], 0.bias, 3.weight [6,8,5,5], 3.bias, 6.weight [4,6,2,2], 6.bias,
    9.weight [20,36], 9.bias, 11.weight [10,20], 11.bias), on 28 x 28 MNIST-size and 8 x 8 digits alike. Larger
    inputs are not padded and fc1 takes 4 * side * side features.

    The study does not record the zoo's activation (study_spec §1.1); the default is the HR class default,
    LeakyReLU, which is positively homogeneous (the scaling symmetry needs that).
    """
    pad1, pad2 = hr_padding(image_size)
    side = _hr_side(image_size, pad1, pad2)
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, _HR_KERNELS[0], padding=pad1), nn.MaxPool2d(2), _activation_module(activation),
        nn.Conv2d(8, 6, _HR_KERNELS[1], padding=pad2), nn.MaxPool2d(2), _activation_module(activation),
        nn.Conv2d(6, 4, _HR_KERNELS[2]), _activation_module(activation),
        nn.Flatten(),
        nn.Linear(4 * side * side, 20), _activation_module(activation),
        nn.Linear(20, classes),
    )


class BasicBlock(nn.Module):
    """ResNet's basic block: conv3x3-BN-act-conv3x3-BN, plus the input (through a 1x1 conv-BN when the shape
    changes), then act. Submodule names follow torchvision (conv1, bn1, conv2, bn2, downsample)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, activation: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.act = _activation_module(activation)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        reshapes = stride != 1 or in_channels != out_channels
        self.downsample = (nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                         nn.BatchNorm2d(out_channels)) if reshapes else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Children combined only by addition and the elementwise activation, so stacked models can run it
        # unchanged on channel-stacked inputs (zoo.stacked).
        out = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(out)) + self.downsample(x))


def cnn_bn(in_channels: int = 1, classes: int = 10, width: int = 8, activation: str = "relu") -> nn.Sequential:
    """A small ResNet with BatchNorm, P-diff's family (study_spec §6.1) at digits size.

    conv1 3x3 (in -> width) -> bn1 -> act -> layer1 = [BasicBlock(width, width)] -> layer2 = [BasicBlock(width,
    2 width, stride 2, with a 1x1 downsample), BasicBlock(2 width, 2 width)] -> global average pool -> flatten ->
    fc (2 width -> classes). Like ResNet-18's layer4.1, the last block has no downsample, so its bn1 and bn2
    (``layer2.1.bn1``, ``layer2.1.bn2``) are the model's last two BatchNorm layers: P-diff's generated subset
    (``pdiff_subset``), 4 * 2 * width values (64 at the default width).

    Parameters (1 input channel, 10 classes): 9,794 at width 8, 38,266 at width 16. The BatchNorm running
    statistics are 2 more values per BatchNorm channel (208 at width 8, 416 at width 16). Any input size of at
    least 2 x 2 works (global pooling).
    """
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int; got {width!r}")
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
        bn1=nn.BatchNorm2d(width),
        act=_activation_module(activation),
        layer1=nn.Sequential(BasicBlock(width, width, 1, activation)),
        layer2=nn.Sequential(BasicBlock(width, 2 * width, 2, activation),
                             BasicBlock(2 * width, 2 * width, 1, activation)),
        avgpool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(),
        fc=nn.Linear(2 * width, classes),
    ))


def pdiff_subset(model: nn.Module) -> list[str]:
    """Names of the model's last two BatchNorm layers, in module order: P-diff's generated subset.

    Pass them as ``include`` to ``ParamLayout.from_module`` (their weight and bias; running statistics are buffers
    and come from the base model) or to ``consecutive_checkpoints``. For ``cnn_bn`` they are ``layer2.1.bn1`` and
    ``layer2.1.bn2`` (ResNet-18's ``layer4.1.bn1`` / ``bn2`` in the study).

    Raises:
        ValueError: the model has fewer than two BatchNorm layers.
    """
    names = [name for name, module in model.named_modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    if len(names) < 2:
        raise ValueError(f"model must have at least two BatchNorm layers for P-diff's subset; "
                         f"{type(model).__name__} has {names}")
    return names[-2:]


def _mlp_for(input_shape: tuple[int, ...], classes: int, **kwargs) -> nn.Module:
    return mlp(math.prod(input_shape), out_features=classes, **kwargs)


def _cnn_for(input_shape: tuple[int, ...], classes: int, **kwargs) -> nn.Module:
    channels, height, width = _image_shape(input_shape, "cnn")
    if height != width:
        raise ValueError(f"cnn needs square images; got input shape {input_shape}")
    return cnn(channels, height, classes, **kwargs)


def _cnn_bn_for(input_shape: tuple[int, ...], classes: int, **kwargs) -> nn.Module:
    return cnn_bn(_image_shape(input_shape, "cnn_bn")[0], classes, **kwargs)


def _image_shape(input_shape: tuple[int, ...], arch: str) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(f"{arch} needs image inputs [C, H, W]; the data's input shape is {tuple(input_shape)}")
    return input_shape


# arch name -> builder (input_shape of one sample, classes, **arch_kwargs) -> nn.Module
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"mlp": _mlp_for, "cnn": _cnn_for, "cnn_bn": _cnn_bn_for}
