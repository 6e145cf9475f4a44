"""Every method the IMP loop (Algorithm 2, ts3ray/run.py) can train, behind one interface.

`resolve_method(config) -> ImpMethod` turns a RunConfig into what the loop needs:

* `networks` — the networks it trains: ("S",) or ("S", "D"); S is the network IMP prunes
  and the tables report;
* `pruned` — the networks IMP prunes, each by its own weights' magnitudes (Algorithm 2
  line 4); every other network is a dense peer reset to its own initial weights each level;
* `joint_optimizer` — one optimiser over all networks' parameters (JoCoR) instead of one
  per network;
* `evaluated` — the networks whose summed logits are the method's prediction (S alone,
  or S + D for DivideMix's `evaluate=ensemble`); recorded as the `*acc_eval` columns;
* `stage(epoch)` — the `stage` column of 0-based epoch `epoch` of a level;
* `step(nets, ctx)` — one training epoch (`ctx` a `MethodEpoch`).

TS3-Net (`method=ts3net`) is one method among them: its Table VII / X `variant` picks the
stages (stages.py), whether D exists (`sparse`: no) and whether D is pruned too
(`sparse+sparse`). The competitors (`ce, sce, apl, mae, itlm, coteaching, jocor,
dividemix`) come from peer_registry.METHODS with their options from `method_options`
("key=value,...", typed by the method's options dataclass; docs/METHODS.md lists them) plus
one key of the loop's own, `prune=S|both`, for the two-network methods.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ts3ray.config import METHOD_NAMES, RunConfig, parse_text
from ts3ray.errors import ConfigError
from ts3ray.method.peer_options import OPTION_CLASSES, make_options
from ts3ray.method.peer_registry import METHODS, PRUNE_CHOICES, MethodSpec
from ts3ray.method.peers import PeerContext
from ts3ray.method.stages import STAGES, EpochContext, EpochStats, Net, Pair
from ts3ray.method.variants import VARIANTS, Variant

TS3NET = "ts3net"
PRUNE_KEY = "prune"  # method_options key of the IMP loop itself (two-network methods)
if set(METHOD_NAMES) != {TS3NET, *METHODS}:  # config.py keeps the names as plain data
    raise RuntimeError("config.METHOD_NAMES and the method registry disagree")


@dataclass
class MethodEpoch:
    """What the IMP loop hands a method for one epoch."""

    config: RunConfig
    data: Any  # ts3ray.run.TrainingData
    selector: Any  # TS3-Net's clean/noisy division (selection.py); unused by competitors
    key: int  # seeds batch order and augmentation: the global epoch
    epoch: int  # 0-based epoch within the IMP level (schedules restart every level)
    stats: EpochStats
    seed: int  # root of a competitor's own random streams (derive_seed(seed, "method"))
    state: dict[str, torch.Tensor] = field(default_factory=dict)  # kept within a level


@dataclass(frozen=True)
class ImpMethod:
    name: str
    networks: tuple[str, ...]
    pruned: tuple[str, ...]
    evaluated: tuple[str, ...]
    stage: Callable[[int], str]
    step: Callable[[dict[str, Net], MethodEpoch], None]
    joint_optimizer: bool = False
    options: Any = None  # a competitor's options dataclass; None for TS3-Net
    select_rate: float | None = None  # r of a competitor that selects by a rate (Eq. 2 rules)
    why_pruned: str = ""

    @property
    def needs_resident_data(self) -> bool:
        """ITLM trains on a subset and DivideMix draws second views, both by sample index from
        the device-resident images (peer_data.py): not from a stream."""
        return self.name in ("itlm", "dividemix")


# -- TS3-Net ------------------------------------------------------------------------------
def _ts3net(config: RunConfig) -> ImpMethod:
    variant = VARIANTS[config.variant]
    networks = ("S", "D") if variant.has_dense else ("S",)
    pruned = ("S", "D") if variant.peer == "sparse" else ("S",)  # Table X sparse+sparse

    def stage(epoch: int) -> str:
        return variant.stage_at(epoch, config.e1, config.e2)

    def step(nets: dict[str, Net], ctx: MethodEpoch) -> None:
        _ts3net_epoch(variant, nets, ctx)

    return ImpMethod(TS3NET, networks, pruned, ("S",), stage, step,
                     why_pruned="Algorithm 2: S is pruned, D is the dense peer (Table X "
                                "sparse+sparse prunes D too)")


def _ts3net_epoch(variant: Variant, nets: dict[str, Net], ctx: MethodEpoch) -> None:
    """One epoch of the stage of Algorithm 1 that the variant trains at this epoch."""
    c = ctx.config
    stage = variant.stage_at(ctx.epoch, c.e1, c.e2)
    stage_start = ctx.epoch  # the stage may span several windows (e.g. `semi`)
    while stage_start > 0 and variant.stage_at(stage_start - 1, c.e1, c.e2) == stage:
        stage_start -= 1
    epoch_ctx = EpochContext(config=c, variant=variant, data=ctx.data, selector=ctx.selector,
                             key=ctx.key, stage_epoch=ctx.epoch - stage_start, stats=ctx.stats)
    STAGES[stage](Pair(sparse=nets["S"], dense=nets.get("D")), epoch_ctx)


# -- the competitors ----------------------------------------------------------------------
def _peer(config: RunConfig) -> ImpMethod:
    spec: MethodSpec = METHODS[config.method]
    overrides = parse_method_options(config.method_options, config.method)
    prune = overrides.pop(PRUNE_KEY, "S")
    if spec.name == "itlm" and "warmup_epochs" not in overrides:
        # ITLM's round 0 on all samples = the TS3 warm-up window E1 (docs/METHODS.md)
        overrides["warmup_epochs"] = config.e1
    options = make_options(spec.name, config.dataset, config.noise, config.noise_rate,
                           overrides)
    # the same eps rules as TS3-Net: r = eps, eps/2 for asymmetric noise (not CIFAR-100),
    # or the config's select_rate
    select_rate = config.effective_select_rate() if spec.uses_select_rate else None

    def stage(epoch: int) -> str:
        return spec.stage(epoch, options)

    def step(nets: dict[str, Net], ctx: MethodEpoch) -> None:
        spec.epoch(nets, PeerContext(ctx.data, options, key=ctx.key, epoch=ctx.epoch,
                                     select_rate=select_rate or 0.0, seed=ctx.seed,
                                     stats=ctx.stats,
                                     state=ctx.state))

    return ImpMethod(spec.name, spec.networks, spec.pruned_networks(prune),
                     spec.evaluated(options), stage, step, spec.joint_optimizer, options,
                     select_rate, spec.why_pruned)


def resolve_method(config: RunConfig) -> ImpMethod:
    """The IMP interface of `config.method` (ConfigError for unknown names or options)."""
    if config.method == TS3NET:
        return _ts3net(config)
    if config.method not in METHODS:
        raise ConfigError("method", config.method, f"one of {', '.join(METHOD_NAMES)}")
    return _peer(config)


def check_method(config: RunConfig) -> None:
    """Config checks that need the registry: TS3-Net's own fields only with TS3-Net, and a
    competitor's options known and valid. Raises ConfigError (one line)."""
    if config.method == TS3NET:
        if config.method_options:
            raise ConfigError("method_options", config.method_options,
                              "empty for ts3net (its options are config keys: lam, tau, ...)")
        return
    if config.variant != "full":
        raise ConfigError("variant", config.variant, f"full for method={config.method} "
                          "(variants are TS3-Net's ablations)")
    if config.selection != "rate":
        raise ConfigError("selection", config.selection, f"rate for method={config.method} "
                          "(its selection rate follows eps, or select_rate)")
    resolve_method(config)


# -- method_options ----------------------------------------------------------------------
def parse_method_options(text: str, method: str) -> dict[str, Any]:
    """"lam=0.5,forget_schedule=code" -> typed values by the method's options dataclass,
    plus `prune` (S | both) for two-network methods. One-line ConfigError otherwise."""
    cls = OPTION_CLASSES[method]
    types = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    two_nets = len(METHODS[method].networks) > 1
    out: dict[str, Any] = {}
    for item in split_options(text):
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise ConfigError("method_options", item, "key=value items separated by commas")
        if key == PRUNE_KEY and two_nets:
            if raw not in PRUNE_CHOICES:
                raise ConfigError("prune", raw, "S (prune S, D a dense peer) or both")
            out[key] = raw
            continue
        if key not in types:
            names = ", ".join(known + ([PRUNE_KEY] if two_nets else []))
            raise ConfigError(key, raw, f"unknown option of {method}; known: {names}")
        out[key] = _typed(key, raw, types[key])
    return out


def split_options(text: str) -> list[str]:
    return [item.strip() for item in text.replace(" ", ",").split(",") if item.strip()]


def _typed(key: str, raw: str, kind) -> Any:
    return parse_text(key, raw, kind, none_words=("", "none", "off"))
