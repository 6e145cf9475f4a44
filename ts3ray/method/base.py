"""What every method shares: a network with its optimiser (`Net`), the statistics of an
epoch (`EpochStats`), the one context an epoch step receives (`EpochContext`), and the
declaration of a method (`MethodDef`), which each method module fills in once.

A method module (ce.py, jocor.py, ts3net.py, ...) holds everything about its method: its
options dataclass, its published training protocols per dataset (`recipes`), its networks,
which of them IMP prunes, its epoch step and its evaluation rule. registry.py lists them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ts3ray import pruning


# -- networks and steps -----------------------------------------------------------------------
@dataclass
class Net:
    """A network with its optimiser, its pruning masks (sparse networks) and the gradient-norm
    clip of the run's protocol (None: no clip)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    masks: dict[str, torch.Tensor] | None = None
    grad_clip: float | None = None

    def step(self, loss: torch.Tensor) -> None:
        joint_step([self], loss)


def joint_step(nets: list[Net], loss: torch.Tensor) -> None:
    """One backward pass and one step of the optimiser the networks share (one network, or
    JoCoR's two), the protocol's gradient-norm clip in between, then every network's masks
    re-applied so that pruned weights stay exactly zero (momentum and weight decay move
    them during the step)."""
    optimizer = nets[0].optimizer
    if any(net.optimizer is not optimizer for net in nets):
        raise ValueError("joint_step needs networks that share one optimiser")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if nets[0].grad_clip is not None:
        clip_gradients(nets, nets[0].grad_clip)
    optimizer.step()
    for net in nets:
        if net.masks is not None:
            pruning.apply_masks(net.model, net.masks)


def clip_gradients(nets: list[Net], max_norm: float) -> None:
    """Clip the global gradient norm of the networks' surviving parameters (the SCE/APL
    codes' clip_grad_norm_). Gradients of pruned weights are zeroed first: they never change
    a weight (the masks re-zero it), so they must not shrink the step of the others."""
    params = []
    for net in nets:
        named = dict(net.model.named_parameters())
        for name, mask in (net.masks or {}).items():
            if named[name].grad is not None:
                named[name].grad.mul_(mask)
        params.extend(p for p in net.model.parameters() if p.grad is not None)
    torch.nn.utils.clip_grad_norm_(params, max_norm)


# -- statistics -------------------------------------------------------------------------------
@dataclass
class EpochStats:
    """Per-epoch sums kept on the device, read back once per epoch (no host sync per batch)."""

    device: torch.device
    sums: dict[str, torch.Tensor] = field(default_factory=dict)

    def add(self, key: str, value: torch.Tensor) -> None:
        value = value.detach().to(torch.float64)
        self.sums[key] = self.sums[key] + value if key in self.sums else value

    def add_loss(self, name: str, loss: torch.Tensor) -> None:
        """Sum of a network's batch losses and their count, for the epoch's mean loss."""
        self.add(f"loss_{name}", loss)
        self.add(f"steps_{name}", torch.ones((), device=loss.device))

    def read(self) -> dict[str, float]:
        """One host transfer for all statistics of the epoch."""
        if not self.sums:
            return {}
        keys = list(self.sums)
        values = torch.stack([self.sums[k] for k in keys]).cpu().tolist()
        return dict(zip(keys, values))


def record_selection(ctx: "EpochContext", selected: torch.Tensor, idx: torch.Tensor) -> None:
    """Label precision of a selection (Fig. 11 a/b; the `label_precision` column): the share
    of selected samples whose noisy label is the true one, among the samples whose true label
    the dataset knows (all, for synthetic noise)."""
    known = selected & ctx.data.label_known[idx]
    ctx.stats.add("selected", known.sum())
    ctx.stats.add("selected_correct", (known & ctx.data.label_is_clean[idx]).sum())


# -- the context of one epoch -----------------------------------------------------------------
@dataclass
class EpochContext:
    """What the IMP loop (run.py) hands a method's epoch step besides its networks."""

    config: Any  # the RunConfig
    data: Any  # ts3ray.run.TrainingData: batches, labels, eval sets
    options: Any  # the method's options dataclass (TS3-Net: the RunConfig itself)
    key: int  # seeds this epoch's batch order and augmentation: the global epoch
    epoch: int  # 0-based epoch within the IMP level (schedules restart every level)
    stats: EpochStats
    seed: int = 0  # root of the method's own random streams (derive_seed(seed, "method"))
    select_rate: float = 0.0  # r of the rate rules (Eq. 2: eps, eps/2 for asymmetric noise)
    selector: Any = None  # TS3-Net's clean/noisy division (selection.py)
    state: dict[str, torch.Tensor] = field(default_factory=dict)  # kept within a level,
    # saved with checkpoints, cleared when a level starts (ITLM's trimmed set)
    reinit: Callable[[str], None] | None = None  # reset a network to the level's masked
    # initial weights with a fresh optimiser (ITLM's rounds)
    stage_epoch: int = 0  # 0-based epoch within the method's current stage (set by the method)

    @property
    def num_classes(self) -> int:
        return self.data.num_classes


# -- the declaration of a method --------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """What a method's published constants depend on."""

    dataset: str
    noise: str
    noise_rate: float
    epochs: int
    e1: int
    e2: int


@dataclass(frozen=True)
class Tunable:
    """A constant the `controlled` protocol re-tunes on validation data (equal budget for
    every method): an option of the method (TS3-Net: a config key), its range, its scale."""

    name: str
    low: float
    high: float
    log: bool = False
    integer: bool = False


MNIST_LIKE = ("digits", "mnist", "fashion-mnist", "synthetic")


def dataset_family(dataset: str) -> str:
    """Which published column a dataset uses: mnist (MNIST-like sets, incl. ts3ray's digits and
    synthetic), cifar100, clothing1m, webvision50, or cifar10 for the rest (CIFAR-10 itself,
    synthetic-cifar, ANIMAL-10N: 32-64 px natural images, the nearest published setting)."""
    if dataset in MNIST_LIKE:
        return "mnist"
    if dataset in ("cifar100", "clothing1m", "webvision50"):
        return dataset
    return "cifar10"


def _single(options: Any) -> tuple[str, ...]:
    return ("S",)


@dataclass(frozen=True)
class MethodDef:
    """One method as the IMP loop (Algorithm 2, run.py) sees it."""

    name: str  # registry key; also the `stage` label of its (non-warm-up) epochs
    paper: str  # the method's paper
    networks: tuple[str, ...]  # ("S",) or ("S", "D"); S is the network IMP reports on
    options: type | None  # its options dataclass; None: its options are config keys (TS3-Net)
    epoch: Callable[[dict[str, Net], EpochContext], None]  # one training epoch
    recipes: Callable[[str, Setting], Any]  # (protocol, setting) -> protocols.Recipe
    defaults: Callable[[Setting, dict], dict[str, Any]] = lambda setting, overrides: {}
    # the published constants of a setting (they may depend on other options given)
    stage: Callable[[int, Any], str | None] | None = None  # stage label of epoch e (None: name)
    pruned: Callable[[Any], tuple[str, ...]] = _single  # networks IMP prunes (own magnitudes)
    evaluated: Callable[[Any], tuple[str, ...]] = _single  # networks whose summed logits predict
    joint_optimizer: bool = False  # one optimiser over all networks' parameters (JoCoR)
    uses_select_rate: bool = False  # reads ctx.select_rate
    needs_resident_data: bool = False  # reads training images by index (not from a stream)
    tunables: tuple[Tunable, ...] = ()  # what `controlled` re-tunes
    regime: Callable[[Any, Any], list[str]] = lambda options, config: []  # warnings
    check: Callable[[Any, Setting], None] = lambda options, setting: None  # refuses values
    # that contradict each other or the setting (ConfigError)
    segment: Callable[[int, Any, int], tuple[int, int]] | None = None  # (start, length) of the
    # schedule segment of epoch e (ITLM rounds restart the lr schedule); None: the level
    networks_rule: Callable[[Any], tuple[str, ...]] | None = None  # networks by options
    # (TS3-Net's `sparse` variant trains S alone)
    why_pruned: str = ""
    notes: tuple[str, ...] = ()

    def networks_for(self, options: Any) -> tuple[str, ...]:
        return self.networks_rule(options) if self.networks_rule is not None else self.networks

    @property
    def in_paper_imp(self) -> bool:
        """Whether the TS3 paper ran this method inside IMP (else: ts3ray's extension)."""
        from ts3ray.method.names import IN_PAPER_IMP

        return self.name in IN_PAPER_IMP

    def stage_of(self, epoch: int, options: Any) -> str:
        """The `stage` column of 0-based epoch `epoch` of a level."""
        label = self.stage(epoch, options) if self.stage is not None else None
        return label or self.name

    def segment_of(self, epoch: int, options: Any, epochs: int) -> tuple[int, int]:
        return self.segment(epoch, options, epochs) if self.segment is not None else (0, epochs)


def option_fields(cls: type | None) -> dict[str, Any]:
    """{name: type} of an options dataclass (empty for None)."""
    if cls is None:
        return {}
    import typing

    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def warmup_stage(option: str) -> Callable[[int, Any], str | None]:
    """A stage function labelling epochs before `options.<option>` as "warmup"."""
    def stage(epoch: int, options: Any) -> str | None:
        return "warmup" if epoch < getattr(options, option) else None

    return stage


PRUNE_CHOICES = ("S", "both")  # two-network methods' `prune` option
TWO_NETWORKS_WHY = ("S is pruned and reported; D is its dense peer, reset to its own init each "
                    "level (TS3 paper Sec. IV-C-4: 'Co-teaching and MSL train both S and D'); "
                    "prune=both prunes D too, by its own magnitudes")


def pruned_by_option(options: Any) -> tuple[str, ...]:
    """Networks IMP prunes for a two-network method: S (default) or both (`prune=both`)."""
    return ("S", "D") if options.prune == "both" else ("S",)


def check_prune(options: Any) -> None:
    if options.prune not in PRUNE_CHOICES:
        from ts3ray.errors import ConfigError

        raise ConfigError("prune", options.prune, "S (prune S, D a dense peer) or both")
