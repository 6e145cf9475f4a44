"""ITLM — Shen & Sanghavi, Learning with Bad Training Data via Iterative Trimmed Loss
Minimization, ICML 2019.

Algorithm 1 alternates (a) S_t = the alpha n samples of the WHOLE training set with the
smallest loss under theta_t (alpha = 1 - r) and (b) training on S_t. The authors' scheme
(yanyao-shen/ITLM-simplecode): round 0 on every sample, then rounds that each rank every
training sample by the previous round's model, keep the smallest share and retrain from
re-initialised weights, each with its own lr schedule. Inside an IMP level of E epochs:
`warmup_epochs` (default E1) on every sample, then `rounds` rounds sharing the remaining
epochs equally; at the start of each round S_t is re-selected and, with `reinit` (default),
S goes back to the level's masked initial weights with a fresh optimiser; the protocol's lr
schedule restarts every round (`segment`). `reinit=false, rounds=E-warmup_epochs` is the
older per-epoch re-selection without re-initialisation (plain global small-loss SGD).
The authors' early stopping on a noisy copy of the test set is not reproduced (choices never
see test data).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ts3ray.method.base import EpochContext, MethodDef, Net, Setting, record_selection
from ts3ray.method.losses import per_sample_ce, small_loss_count
from ts3ray.method.options import check
from ts3ray.method.peer_data import generator, subset_batches, train_losses
from ts3ray.method.protocols import Recipe
from ts3ray.method.robust import ONE_NETWORK_WHY


@dataclass(frozen=True)
class ItlmOptions:
    warmup_epochs: int = 10  # round 0 on every sample (default: the run's E1)
    rounds: int = 3  # trimmed rounds after the warm-up, sharing the level's other epochs
    reinit: bool = True  # each round retrains from the level's masked initial weights


def round_bounds(o: ItlmOptions, epochs: int) -> list[tuple[int, int]]:
    """(start, length) of the warm-up and of every round within a level of `epochs`."""
    rest = epochs - o.warmup_epochs
    starts = [o.warmup_epochs + (k * rest) // o.rounds for k in range(o.rounds + 1)]
    rounds = [(a, b - a) for a, b in zip(starts, starts[1:])]
    return ([(0, o.warmup_epochs)] if o.warmup_epochs else []) + rounds


def segment(epoch: int, o: ItlmOptions, epochs: int) -> tuple[int, int]:
    """The warm-up or round that `epoch` belongs to: the lr schedule restarts in each."""
    for start, length in round_bounds(o, epochs):
        if start <= epoch < start + length:
            return start, length
    return 0, epochs


def itlm_subset(model: nn.Module, data, rate: float) -> torch.Tensor:
    """Step (a): the ceil((1 - r) N) samples of the WHOLE training set with the smallest loss
    under the current model (eval mode, no augmentation), as sorted indices on the device."""
    losses = train_losses(model, data)
    keep = small_loss_count(losses.shape[0], rate)
    return torch.topk(losses, keep, largest=False, sorted=False).indices.sort().values


def itlm_epoch(nets: dict[str, Net], ctx: EpochContext) -> None:
    net, o = nets["S"], ctx.options
    net.model.train()
    if ctx.epoch < o.warmup_epochs:  # round 0: every sample
        for x, y, _ in ctx.data.batches.epoch(ctx.key):
            loss = per_sample_ce(net.model(x), y).mean()
            net.step(loss)
            ctx.stats.add_loss("S", loss)
        return
    start, _ = segment(ctx.epoch, o, ctx.config.epochs)
    if ctx.epoch == start or "itlm_subset" not in ctx.state:  # a round begins: step (a)
        ctx.state["itlm_subset"] = itlm_subset(net.model, ctx.data, ctx.select_rate)
        if o.reinit and ctx.epoch == start:
            ctx.reinit("S")  # retrain from the level's masked initial weights
    subset = ctx.state["itlm_subset"]
    record_selection(ctx, torch.ones_like(subset, dtype=torch.bool), subset)
    batches = ctx.data.batches
    gen = generator(ctx.seed, ctx.key, "itlm")
    for x, y, _ in subset_batches(batches, subset, batches.batch_size, gen):  # step (b)
        loss = per_sample_ce(net.model(x), y).mean()
        net.step(loss)
        ctx.stats.add_loss("S", loss)


DEFAULT_ROUNDS = 3  # ts3ray's choice: three trimmed rounds per level (fewer in short levels)


def defaults(setting: Setting, overrides: dict) -> dict:
    """Warm-up: the TS3 warm-up window E1 (ts3ray's choice); rounds: 3, or as many as the
    level's epochs after the warm-up allow."""
    warmup = overrides.get("warmup_epochs", setting.e1)
    return dict(warmup_epochs=warmup,
                rounds=max(1, min(DEFAULT_ROUNDS, setting.epochs - warmup)))


def recipes(protocol: str, setting: Setting) -> Recipe:
    """ITLM-simplecode's scripted recipe (script-cifar10.sh, cifar_mnist_noisy_module.py):
    Gluon 'sgd' with its learning rate only (no momentum, no weight decay), lr 0.1, x0.2 at
    60% of every round, batch 256. Its only MNIST hint is a comment (batch 1000, lr 0.5):
    the scripted CIFAR-10 recipe is used everywhere, the nearest published setting. Its
    initialisation, MXNet's Normal(0.02), belongs to its Wide ResNet with BatchNorm: on the
    BatchNorm-free LeNet-300-100 it leaves training at chance (digits sym-40%, the quick
    compare preset: 9.7% dense), so the run's architecture keeps its own (kaiming) init
    (`init=normal` is there to try)."""
    return Recipe("yanyao-shen/ITLM-simplecode script-cifar10.sh (per round)", lr=0.1,
                  batch_size=256, momentum=0.0, weight_decay=0.0, milestones=(0.6,),
                  lr_decay_factor=0.2, init="kaiming")


def stage(epoch: int, o: ItlmOptions) -> str | None:
    return "warmup" if epoch < o.warmup_epochs else None


def check_options(o: ItlmOptions, setting: Setting) -> None:
    check(o.warmup_epochs >= 0, "warmup_epochs", o.warmup_epochs, "an integer >= 0")
    check(o.warmup_epochs < setting.epochs, "warmup_epochs", o.warmup_epochs,
          f"fewer than the level's epochs={setting.epochs} (no trimmed round would train)")
    rest = setting.epochs - o.warmup_epochs
    check(1 <= o.rounds <= rest, "rounds", o.rounds,
          f"1 to {rest} (epochs - warmup_epochs: each round trains at least one epoch)")


METHOD = MethodDef(
    name="itlm", paper="Shen & Sanghavi, Iterative Trimmed Loss Minimization, ICML 2019",
    networks=("S",), options=ItlmOptions, epoch=itlm_epoch, recipes=recipes,
    defaults=defaults, stage=stage, check=check_options, segment=segment,
    uses_select_rate=True, needs_resident_data=True, why_pruned=ONE_NETWORK_WHY)
