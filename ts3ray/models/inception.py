"""Inception-ResNet-v2 (Szegedy et al., AAAI 2017) for WebVision, from timm (optional extra).

The paper follows DivideMix and uses Inception-ResNet-v2 on mini-WebVision; Table VI counts
54.38M parameters, which is timm's ``inception_resnet_v2`` with a 50-class head. It is built
without pretrained weights (nothing is downloaded) and re-initialised by ts3ray's seeded
initialisation like every backbone. Its convolutions and the ``classif`` head are plain
``nn.Conv2d`` / ``nn.Linear`` modules, so the usual pruning rule applies unchanged.

timm is an optional dependency: ``pip install 'ts3ray[timm]'``.
"""
from __future__ import annotations

from torch import nn

from ts3ray.errors import UserError

TIMM_HINT = "arch=inception_resnet_v2 needs timm: pip install 'ts3ray[timm]' (or pip install timm)"


def inception_resnet_v2(*, num_classes: int, in_channels: int, image_size: tuple[int, int]) -> nn.Module:
    """timm's Inception-ResNet-v2 (global average pool, so any input of at least 75 x 75 works)."""
    try:
        import timm
    except ImportError:
        raise UserError(TIMM_HINT) from None
    if min(image_size) < 75:
        raise UserError(f"arch=inception_resnet_v2 needs images of at least 75x75 pixels, got "
                        f"{image_size[0]}x{image_size[1]}")
    return timm.create_model("inception_resnet_v2", pretrained=False, num_classes=num_classes, in_chans=in_channels)
