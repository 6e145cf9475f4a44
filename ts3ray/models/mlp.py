"""LeNet-300-100: the fully connected MNIST network of the lottery-ticket papers."""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

HIDDEN = (300, 100)


def lenet_300_100(*, num_classes: int, in_channels: int, image_size: tuple[int, int]) -> nn.Module:
    """flatten -> 300 -> 100 -> C with ReLU; the input width follows the images (784 for MNIST)."""
    widths = (in_channels * image_size[0] * image_size[1], *HIDDEN)
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:]), start=1):
        layers[f"fc{i}"] = nn.Linear(fan_in, fan_out)
        layers[f"relu{i}"] = nn.ReLU(inplace=True)
    layers["fc"] = nn.Linear(widths[-1], num_classes)
    return nn.Sequential(layers)
