"""Seeded weight initialisation shared by every backbone (`init=kaiming`, the default).

Follows the official code's choices (open_lth ``kaiming_normal`` + ``uniform`` BN init):
conv/linear weights ~ kaiming-normal (fan_in, ReLU gain sqrt(2)); BatchNorm weight ~ U(0, 1),
BatchNorm bias 0. Conv/linear biases are set to 0 (the official code leaves PyTorch's default
uniform bias; zero makes the initial network depend on fewer random draws).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_WEIGHTED = (nn.Conv2d, nn.Linear)


def initialise(model: nn.Module) -> None:
    """Re-initialise all weights in place from the global RNG (call under a seeded fork)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _WEIGHTED):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, _BATCHNORMS):
                nn.init.uniform_(module.weight, 0.0, 1.0)
                nn.init.zeros_(module.bias)


INITS = ("kaiming", "torch_default")


def seeded(construct: Callable[[], nn.Module], seed: int, init: str = "kaiming") -> nn.Module:
    """Build and initialise a model from `seed` on the CPU, leaving the global RNG untouched.

    `kaiming`: the official code's initialisation (`initialise`). `torch_default`: the layers'
    own reset_parameters() as PyTorch constructs them (kaiming-uniform with a = sqrt(5),
    uniform biases, BatchNorm weight 1), the initialisation of the competitors' codes, under
    which two fresh networks predict nearly the same near-uniform distribution (JoCoR's
    symmetric KL between them ~0.01 against ~2.5 with `kaiming`)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = construct()
        if init == "kaiming":
            initialise(model)
    return model
