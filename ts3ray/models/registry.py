"""Backbones by name: ``build_model(arch, ...)`` returns a seeded, initialised nn.Module."""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ts3ray.errors import ConfigError
from ts3ray.models.convnets import cifar_cnn, vgg
from ts3ray.models.inception import inception_resnet_v2
from ts3ray.models.init import seeded
from ts3ray.models.mlp import lenet_300_100
from ts3ray.models.resnet import resnet18

Builder = Callable[..., nn.Module]

BUILDERS: dict[str, Builder] = {
    "lenet_300_100": lenet_300_100,
    "cifar_cnn": cifar_cnn,
    "vgg16": vgg("vgg16"),
    "vgg19": vgg("vgg19"),
    "resnet18": resnet18,
    "inception_resnet_v2": inception_resnet_v2,  # WebVision; needs the optional timm extra
}
MODEL_NAMES: tuple[str, ...] = tuple(BUILDERS)


def _pair(image_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    height, width = image_size
    return int(height), int(width)


def build_model(
    arch: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int | tuple[int, int],
    seed: int,
    init: str = "kaiming",
    **options: Any,
) -> nn.Module:
    """Build `arch` on the CPU in float32, initialised from `seed` (global RNG untouched).

    `image_size` is (H, W) or one int for square images; `options` go to the builder
    (e.g. ``small_stem`` for resnet18); `init` is models/init.py's kaiming or torch_default."""
    if arch not in BUILDERS:
        raise ConfigError("arch", arch, f"one of {', '.join(MODEL_NAMES)}")
    shape = dict(num_classes=num_classes, in_channels=in_channels, image_size=_pair(image_size))
    return seeded(lambda: BUILDERS[arch](**shape, **options), seed, init)
