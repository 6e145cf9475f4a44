"""Which parameters of a backbone are prunable, and which one is the output layer.

Rule shared by every model (Section III-C / official code): the weights of conv and linear
layers are prunable; biases and BatchNorm parameters never are. The output layer is the last
linear layer in registration order (the classifier head of every registered model).
"""
from __future__ import annotations

from torch import nn

PRUNABLE_LAYERS = (nn.Conv2d, nn.Linear)


def prunable_names(model: nn.Module) -> list[str]:
    """Names of the conv and linear weight parameters, in module order."""
    return [
        f"{name}.weight" if name else "weight"
        for name, module in model.named_modules()
        if isinstance(module, PRUNABLE_LAYERS)
    ]


def output_name(model: nn.Module) -> str:
    """Name of the output (last linear) layer's weight parameter."""
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linear:
        raise ValueError(f"{type(model).__name__} has no linear output layer")
    return f"{linear[-1]}.weight" if linear[-1] else "weight"
