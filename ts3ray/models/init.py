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


def apl_initialise(model: nn.Module) -> None:
    """The APL repository's initialisation (models.py `_reset_prams`): conv weights
    kaiming-uniform (fan_in, ReLU), linear weights xavier-uniform; biases and BatchNorm keep
    PyTorch's defaults."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)


def normal_initialise(model: nn.Module, std: float = 0.02) -> None:
    """MXNet's Normal(0.02) (the ITLM code's force_reinit): conv/linear weights ~ N(0, 0.02^2),
    their biases 0, BatchNorm weight 1 and bias 0."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _WEIGHTED):
                nn.init.normal_(module.weight, 0.0, std)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, _BATCHNORMS):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


# `init`: the official TS3/open_lth code's (kaiming), the layers' own PyTorch defaults, the
# APL repository's, MXNet's Normal(0.02) (ITLM)
INITIALISERS: dict[str, Callable[[nn.Module], None] | None] = {
    "kaiming": initialise, "torch_default": None, "apl": apl_initialise,
    "normal": normal_initialise,
}
INITS = tuple(INITIALISERS)


def seeded(construct: Callable[[], nn.Module], seed: int, init: str = "kaiming") -> nn.Module:
    """Build and initialise a model from `seed` on the CPU, leaving the global RNG untouched.

    `kaiming`: the official code's initialisation (`initialise`). `torch_default`: the layers'
    own reset_parameters() as PyTorch constructs them (kaiming-uniform with a = sqrt(5),
    uniform biases, BatchNorm weight 1), the initialisation of the Co-teaching, JoCoR and
    DivideMix codes, under which two fresh networks predict nearly the same near-uniform
    distribution (JoCoR's symmetric KL between them ~0.01 against ~2.5 with `kaiming`).
    `apl`, `normal`: see apl_initialise, normal_initialise."""
    if init not in INITIALISERS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = construct()
        if INITIALISERS[init] is not None:
            INITIALISERS[init](model)
    return model
