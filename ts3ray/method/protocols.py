"""Protocols: how a method is trained, resolved into a run's configuration in one place.

A comparison names its protocol (names.PROTOCOLS):

* `published` — each method with its authors' training recipe (`Recipe`): optimiser (SGD or
  Adam, momentum, nesterov, betas and a beta1 plan), lr, weight decay, lr schedule, batch
  size, gradient clip, initialisation, and the method's constants in the units they were
  tuned in. Each method module declares its recipes per dataset (`MethodDef.recipes`);
  where the authors published nothing for a dataset, the nearest published setting, named
  as such in `Recipe.source`. TS3-Net's own published recipe is the paper's Sec. IV-A.
  The authors' schedule is fitted into every IMP level: milestones are fractions of the
  level's E epochs and restart with every level.
* `code` — `published` plus the behaviours of the authors' released code where it differs
  from their paper (TS3-Net: the official code's refinement loss, dense reset, entropy
  scale, own small-loss term, parity alternation and learning rate).
* `shared` — the run's SGD schedule for every method: the recipe keys as the user sets
  them, by default TS3-Net's Sec. IV-A recipe for the dataset.
* `controlled` — the shared SGD, with each method's optimiser-coupled constants re-tuned on
  the noisy validation split under an equal budget (`MethodDef.tunables`; the compare sweep
  with `--protocol controlled` does the tuning and records its picks).

Under `published` and `code` the recipe owns its keys: a value the user sets for one of
them is refused unless it equals the recipe's (one line naming the protocol that would take
it). The resolved values are written into the RunConfig, so `run_id` hashes them and every
Parquet row records them (`protocol`, `optimizer`, `lr`, ...).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ts3ray.models.init import INITS  # noqa: F401  (the initialisations a recipe names)

# RunConfig keys a recipe fixes
RECIPE_KEYS = ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "adam_beta1",
               "adam_beta2", "beta1_decayed", "lr_schedule", "lr_decay_epochs",
               "lr_decay_factor", "lr_floor", "batch_size", "grad_clip", "init")
OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("step", "cosine", "linear", "exponential")
OWNING = ("published", "code")  # protocols whose recipe owns its keys


@dataclass(frozen=True)
class Recipe:
    """How one method is trained under one protocol in one setting."""

    source: str  # where the values come from (repository file, paper section, "nearest: ...")
    lr: float
    batch_size: int
    optimizer: str = "sgd"
    momentum: float = 0.9  # SGD momentum (Adam: unused)
    nesterov: bool = False
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    beta1_decayed: float | None = None  # Adam's beta1 from the start of a linear decay
    lr_schedule: str = "step"
    milestones: tuple[float, ...] = ()  # fractions of E: step decays / the linear decay start
    lr_decay_factor: float = 0.1  # step: x it at each milestone; exponential: x it per epoch
    lr_floor: float = 0.0  # cosine: eta_min as a fraction of lr
    grad_clip: float | None = None  # global gradient-norm clip
    init: str = "kaiming"
    options: dict[str, Any] = field(default_factory=dict)  # method options it fixes (units)
    config: dict[str, Any] = field(default_factory=dict)  # further config keys it fixes

    def config_values(self, epochs: int) -> dict[str, Any]:
        """The RunConfig values of the recipe for levels of `epochs` epochs."""
        values = {k: getattr(self, k) for k in RECIPE_KEYS if k != "lr_decay_epochs"}
        values["lr_decay_epochs"] = milestone_epochs(self.milestones, epochs)
        return {**values, **self.config}

    def describe(self) -> str:
        """`adam lr 0.001 (beta1 0.9 -> 0.1), linear decay from 40% of E, batch 128`."""
        if self.optimizer == "adam":
            opt = f"adam lr {self.lr:g}"
            if self.beta1_decayed is not None:
                opt += f" (beta1 {self.adam_beta1:g} -> {self.beta1_decayed:g})"
        else:
            opt = f"sgd lr {self.lr:g} momentum {self.momentum:g}"
            opt += " nesterov" if self.nesterov else ""
        opt += f" wd {self.weight_decay:g}" if self.weight_decay else ""
        at = ", ".join(f"{100 * m:g}%" for m in self.milestones)
        schedule = {"step": f"x{self.lr_decay_factor:g} at {at} of E" if at else "constant",
                    "cosine": "cosine over E" + (f" to {self.lr_floor:g} lr" if self.lr_floor
                                                 else ""),
                    "linear": f"linear decay to 0 from {at or '100%'} of E",
                    "exponential": f"x{self.lr_decay_factor:g} per epoch"}[self.lr_schedule]
        clip = f", grad clip {self.grad_clip:g}" if self.grad_clip else ""
        return f"{opt}, {schedule}, batch {self.batch_size}{clip}, init {self.init}"


def milestone_epochs(fractions: tuple[float, ...], epochs: int) -> tuple[int, ...]:
    """Milestones as fractions of a level -> 0-based epochs within it (at least 1)."""
    return tuple(sorted({max(1, int(round(f * epochs))) for f in fractions}))


def recipe_of_config(config: Any, source: str) -> Recipe:
    """The recipe a configuration's own values make (the shared and controlled protocols)."""
    return Recipe(source=source, lr=config.lr, batch_size=config.batch_size,
                  optimizer=config.optimizer, momentum=config.momentum,
                  nesterov=config.nesterov, weight_decay=config.weight_decay,
                  adam_beta1=config.adam_beta1, adam_beta2=config.adam_beta2,
                  beta1_decayed=config.beta1_decayed, lr_schedule=config.lr_schedule,
                  milestones=tuple(m / config.epochs for m in config.lr_decay_epochs),
                  lr_decay_factor=config.lr_decay_factor, lr_floor=config.lr_floor,
                  grad_clip=config.grad_clip,
                  init=config.init)


# -- the schedule ------------------------------------------------------------------------------
def schedule_position(epoch: int, segment: tuple[int, int], epochs: int) -> float:
    """Where 0-based epoch `epoch` of a level sits on the level's schedule. A method whose
    training restarts within a level (ITLM's rounds) runs the schedule once per segment
    (start, length): the segment is mapped onto the level's E epochs."""
    start, length = segment
    return (epoch - start) * epochs / length if length > 0 else 0.0


def lr_factor(config: Any, position: float) -> float:
    """lr / base lr at `position` (epochs into the level's schedule, see schedule_position).

    step: x lr_decay_factor at each milestone reached (TS3-Net Sec. IV-A, DivideMix, ITLM, the
    SCE code); cosine: f + (1 - f) 0.5 (1 + cos(pi t / E)) with the floor f = lr_floor
    (CosineAnnealingLR with T_max = E, eta_min = f lr, stepped per epoch: the APL repo);
    linear: constant until the first milestone, then (E - t) / (E - start) (Co-teaching/JoCoR
    codes' alpha_plan); exponential: lr_decay_factor ** t (StepLR(1, gamma): APL WebVision)."""
    if config.lr_schedule == "cosine":
        floor = config.lr_floor
        return floor + (1 - floor) * 0.5 * (1.0 + math.cos(math.pi * position / config.epochs))
    if config.lr_schedule == "exponential":
        return config.lr_decay_factor ** position
    if config.lr_schedule == "linear":
        start = config.lr_decay_epochs[0] if config.lr_decay_epochs else config.epochs
        if position < start:
            return 1.0
        return max(0.0, (config.epochs - position) / (config.epochs - start))
    drops = sum(1 for m in config.lr_decay_epochs if position >= m)
    return config.lr_decay_factor ** drops


def beta1_at(config: Any, position: float) -> float:
    """Adam's beta1: `beta1_decayed` from the start of a linear decay (Co-teaching/JoCoR
    codes' beta1_plan: 0.9 -> 0.1), else adam_beta1."""
    start = config.lr_decay_epochs[0] if config.lr_decay_epochs else config.epochs
    if config.beta1_decayed is not None and position >= start:
        return config.beta1_decayed
    return config.adam_beta1


def make_optimizer(params, config: Any):
    """The protocol's optimiser over `params` (fresh state: every level retrains)."""
    import torch

    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay,
                                betas=(config.adam_beta1, config.adam_beta2))
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay, nesterov=config.nesterov)


def apply_schedule(optimizers, config: Any, position: float) -> float:
    """Set every optimiser's lr (and Adam's beta1) for `position`; returns the lr."""
    lr = config.lr * lr_factor(config, position)
    beta1 = beta1_at(config, position)
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr
            if "betas" in group:
                group["betas"] = (beta1, group["betas"][1])
    return lr
