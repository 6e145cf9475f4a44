"""Plain conv-BN-ReLU networks: the CIFAR "eight-layer CNN" and CIFAR-style VGG-16/19.

A plan lists output channels of 3x3 convolutions (padding 1, with bias, then BatchNorm2d and
ReLU) and "M" for a 2x2 max-pool, as in the official code (open_lth ``cifar_vgg``).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

from torch import nn

from ts3ray.errors import ConfigError

POOL = "M"
Plan = Sequence[int | str]

# Six convs + a linear head (the paper's "eight-layer CNN", 518,150 parameters on CIFAR-10).
CIFAR_CNN_PLAN: Plan = (64, 64, POOL, 128, 128, POOL, 196, 16, POOL)
# The standard VGG plans; 4 max-pools, then an average pool to 1x1 (2x2 -> 1x1 on 32x32).
VGG_PLANS: dict[str, Plan] = {
    "vgg16": (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512),
    "vgg19": (64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL,
              512, 512, 512, 512, POOL, 512, 512, 512, 512),
}


class ConvBlock(nn.Sequential):
    """3x3 conv (pad 1, bias) -> BatchNorm2d -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)


def conv_stack(plan: Plan, in_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for spec in plan:
        if spec == POOL:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(ConvBlock(in_channels, spec))
            in_channels = spec
    return nn.Sequential(*layers)


def output_size(arch: str, plan: Plan, image_size: tuple[int, int]) -> tuple[int, int]:
    """Spatial size after the plan's pools; ConfigError if an image is too small for them."""
    height, width = image_size
    for spec in plan:
        if spec == POOL:
            height, width = height // 2, width // 2
            if min(height, width) < 1:
                pools = sum(s == POOL for s in plan)
                raise ConfigError(
                    "arch", arch, f"needs images of at least {2 ** pools}x{2 ** pools} pixels, "
                    f"got {image_size[0]}x{image_size[1]}; use a smaller model"
                )
    return height, width


def _channels(plan: Plan) -> int:
    return [s for s in plan if s != POOL][-1]


def cifar_cnn(*, num_classes: int, in_channels: int, image_size: tuple[int, int]) -> nn.Module:
    """Six conv blocks, three max-pools, flatten (16*4*4 = 256 on 32x32) -> Linear(C)."""
    height, width = output_size("cifar_cnn", CIFAR_CNN_PLAN, image_size)
    return nn.Sequential(
        OrderedDict(
            features=conv_stack(CIFAR_CNN_PLAN, in_channels),
            flatten=nn.Flatten(),
            fc=nn.Linear(_channels(CIFAR_CNN_PLAN) * height * width, num_classes),
        )
    )


def vgg(arch: str):
    """Builder for a CIFAR-style VGG: conv blocks, average pool to 1x1, Linear(512 -> C)."""
    plan = VGG_PLANS[arch]

    def build(*, num_classes: int, in_channels: int, image_size: tuple[int, int]) -> nn.Module:
        output_size(arch, plan, image_size)
        return nn.Sequential(
            OrderedDict(
                features=conv_stack(plan, in_channels),
                pool=nn.AdaptiveAvgPool2d(1),  # = the official AvgPool2d(2) on 32x32 inputs
                flatten=nn.Flatten(),
                fc=nn.Linear(_channels(plan), num_classes),
            )
        )

    build.__doc__ = f"{arch}: {vgg.__doc__}"
    return build
