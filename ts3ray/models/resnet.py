"""ResNet-18 from torchvision (not pretrained), with an optional small-image stem."""
from __future__ import annotations

from torch import nn

SMALL_STEM_MAX_SIZE = 64  # images up to this many pixels per side get the small stem


def resnet18(
    *,
    num_classes: int,
    in_channels: int,
    image_size: tuple[int, int],
    small_stem: bool | None = None,
) -> nn.Module:
    """torchvision ResNet-18. ``small_stem`` (default: images <= 64 px) swaps the 7x7/2 conv
    and max-pool for a 3x3/1 conv without pooling; other channel counts replace conv1."""
    from torchvision.models import resnet18 as torchvision_resnet18  # heavy import, lazy

    model = torchvision_resnet18(num_classes=num_classes, weights=None)
    if small_stem is None:
        small_stem = max(image_size) <= SMALL_STEM_MAX_SIZE
    width = model.conv1.out_channels
    if small_stem:
        model.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != model.conv1.in_channels:
        model.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
    return model
