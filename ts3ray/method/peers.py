"""One training epoch of each competitor method, on the data interface of stages.py.

An epoch step is ``step(nets, ctx) -> None``: `nets` maps network names ("S", and "D" for
two-network methods) to :class:`~ts3ray.method.stages.Net` objects (model + optimiser +
masks; pruned weights are re-zeroed after every optimiser step), `ctx` is a
:class:`PeerContext`. Statistics go to ``ctx.stats`` (an ``EpochStats``) as device tensors,
read back once per epoch by the caller. Randomness beyond `DeviceBatches.epoch(ctx.key)`
comes from generators seeded by (ctx.seed, ctx.key, purpose), never from the global RNG.

DivideMix lives in ts3ray/method/dividemix.py; the registry with each method's networks,
pruning, optimiser and evaluation rules in ts3ray/method/peer_registry.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ts3ray import pruning
from ts3ray.method import peer_losses as PL
from ts3ray.method.losses import masked_mean, per_sample_ce, small_loss_count, small_loss_mask
from ts3ray.method.peer_data import generator, subset_batches, train_losses
from ts3ray.method.schedules import forget_rate
from ts3ray.method.stages import EpochStats, Net, record_selection


@dataclass
class PeerContext:
    """What one epoch of a competitor method reads besides its networks."""

    data: Any  # TrainingData (ts3ray.run): batches, train_eval_batches(), label_is_clean, ...
    options: Any  # the method's options dataclass (ts3ray.method.peer_options)
    key: int  # seeds this epoch's batch order and augmentation (run.py: the global epoch)
    epoch: int  # 0-based epoch within the IMP level: drives warm-ups, ramps, schedules
    select_rate: float  # r = RunConfig.effective_select_rate() (eps, or eps/2 for asym)
    seed: int  # root of the method's own random streams (e.g. derive_seed(seed, "method"))
    stats: EpochStats
    state: dict[str, torch.Tensor] = field(default_factory=dict)  # kept across the epochs
    # of one level (ITLM's trimmed set when reselect_every > 1); save it with checkpoints,
    # clear it when a level starts

    @property
    def num_classes(self) -> int:
        return self.data.num_classes


# -- optimiser steps ------------------------------------------------------------------------
def _clip(nets: list[Net], max_norm: float) -> None:
    """Clip the global gradient norm of the networks' (unpruned) parameters. Gradients of
    pruned weights are zeroed first: they never change a weight (the masks re-zero it), so
    they must not shrink the step of the surviving ones."""
    params = []
    for net in nets:
        named = dict(net.model.named_parameters())
        for name, mask in (net.masks or {}).items():
            if named[name].grad is not None:
                named[name].grad.mul_(mask)
        params.extend(p for p in net.model.parameters() if p.grad is not None)
    torch.nn.utils.clip_grad_norm_(params, max_norm)


def step(net: Net, loss: torch.Tensor, grad_clip: float | None = None) -> None:
    """`Net.step`, with the SCE/APL code's gradient-norm clip when `grad_clip` is set."""
    if grad_clip is None:
        net.step(loss)
        return
    joint_step([net], loss, grad_clip)


def joint_step(nets: list[Net], loss: torch.Tensor, grad_clip: float | None = None) -> None:
    """One backward pass and one step of the optimiser the networks share (JoCoR), then
    every network's masks re-applied so pruned weights stay exactly zero."""
    optimizer = nets[0].optimizer
    if any(net.optimizer is not optimizer for net in nets):
        raise ValueError("joint_step needs networks that share one optimiser")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        _clip(nets, grad_clip)
    optimizer.step()
    for net in nets:
        if net.masks is not None:
            pruning.apply_masks(net.model, net.masks)


# -- ce, sce, mae, apl: one network, a robust loss on every sample --------------------------
def robust_loss_per_sample(o, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The per-sample loss named by ``o.loss`` (RobustLossOptions)."""
    if o.loss == "ce":
        return PL.ce_per_sample(logits, labels)
    if o.loss == "sce":
        return PL.sce_per_sample(logits, labels, o.alpha, o.beta, o.rce_log_zero)
    if o.loss == "mae":
        return PL.mae_per_sample(logits, labels, o.mae_scale)
    if o.loss == "apl":
        return PL.apl_per_sample(logits, labels, o.alpha, o.beta, o.passive, o.mae_scale,
                                 o.rce_log_zero)
    raise ValueError(f"unknown robust loss {o.loss!r}")


def robust_loss_epoch(nets: dict[str, Net], ctx: PeerContext) -> None:
    """S minimises the batch mean of its loss over every sample (no selection)."""
    net, o = nets["S"], ctx.options
    net.model.train()
    for x, y, _ in ctx.data.batches.epoch(ctx.key):
        loss = robust_loss_per_sample(o, net.model(x), y).mean()
        step(net, loss, o.grad_clip)
        ctx.stats.add_loss("S", loss)


# -- Co-teaching (Han et al. 2018) ------------------------------------------------------------
def coteaching_epoch(nets: dict[str, Net], ctx: PeerContext) -> None:
    """Algorithm 1: per batch, each network keeps the R(T) share of samples with the smallest
    loss by ITS OWN CE (steps 4-5); each is then updated on its PEER's picks (steps 6-7)."""
    o = ctx.options
    rate = forget_rate(ctx.epoch, ctx.select_rate, o.t_k, o.c, o.forget_schedule)
    for net in nets.values():
        net.model.train()
    for x, y, idx in ctx.data.batches.epoch(ctx.key):
        ce = {name: per_sample_ce(net.model(x), y) for name, net in nets.items()}
        picks = {name: small_loss_mask(ce[name].detach(), rate) for name in nets}
        for learner, peer in (("S", "D"), ("D", "S")):
            loss = masked_mean(ce[learner], picks[peer])  # learner trained on the peer's picks
            nets[learner].step(loss)
            ctx.stats.add_loss(learner, loss)
        record_selection(ctx, picks["S"], idx)


# -- JoCoR (Wei et al. 2020) ------------------------------------------------------------------
def jocor_epoch(nets: dict[str, Net], ctx: PeerContext) -> None:
    """Algorithm 1: the joint loss of both networks per sample, the R(T) share with the
    smallest joint loss kept, one step of the ONE optimiser over both networks."""
    o = ctx.options
    rate = forget_rate(ctx.epoch, ctx.select_rate, o.t_k, o.c, o.forget_schedule)
    s, d = nets["S"], nets["D"]
    s.model.train()
    d.model.train()
    for x, y, idx in ctx.data.batches.epoch(ctx.key):
        joint = PL.jocor_per_sample(s.model(x), d.model(x), y, o.lam)
        picked = small_loss_mask(joint.detach(), rate)  # small-loss on the joint loss
        loss = masked_mean(joint, picked)
        joint_step([s, d], loss)
        for name in ("S", "D"):  # one loss trains both: it is each network's loss
            ctx.stats.add_loss(name, loss)
        record_selection(ctx, picked, idx)


# -- ITLM (Shen & Sanghavi 2019) ----------------------------------------------------------------
def itlm_subset(model: nn.Module, data, rate: float) -> torch.Tensor:
    """ITLM Algorithm 1 step 'S_t = argmin_{|S| = alpha n} sum_{i in S} f(theta_t; s_i)': the
    ceil((1 - r) N) samples of the WHOLE training set with the smallest loss under the
    current model (eval mode, no augmentation), as sorted indices on the device."""
    losses = train_losses(model, data)
    keep = small_loss_count(losses.shape[0], rate)
    return torch.topk(losses, keep, largest=False, sorted=False).indices.sort().values


def itlm_epoch(nets: dict[str, Net], ctx: PeerContext) -> None:
    """Warm-up epochs train on every sample (the code's round 0); afterwards, every
    `reselect_every` epochs the trimmed set is re-selected over the whole training set and
    the network takes an epoch of CE on that set only (ModelUpdate on S_t)."""
    net, o = nets["S"], ctx.options
    net.model.train()
    if ctx.epoch < o.warmup_epochs:
        for x, y, _ in ctx.data.batches.epoch(ctx.key):
            loss = per_sample_ce(net.model(x), y).mean()
            net.step(loss)
            ctx.stats.add_loss("S", loss)
        return
    due = (ctx.epoch - o.warmup_epochs) % o.reselect_every == 0
    if due or "itlm_subset" not in ctx.state:
        ctx.state["itlm_subset"] = itlm_subset(net.model, ctx.data, ctx.select_rate)
    subset = ctx.state["itlm_subset"]
    record_selection(ctx, torch.ones_like(subset, dtype=torch.bool), subset)
    batches = ctx.data.batches
    gen = generator(ctx.seed, ctx.key, "itlm")
    for x, y, _ in subset_batches(batches, subset, batches.batch_size, gen):
        loss = per_sample_ce(net.model(x), y).mean()
        net.step(loss)
        ctx.stats.add_loss("S", loss)


# -- evaluation -------------------------------------------------------------------------------
@torch.no_grad()
def predict(models: dict[str, nn.Module], names: tuple[str, ...], x: torch.Tensor) -> torch.Tensor:
    """Logits of the networks `names`, summed: one network's own logits, or the two-network
    ensemble of DivideMix's test() (outputs1 + outputs2, argmax of the sum)."""
    out = models[names[0]](x)
    for name in names[1:]:
        out = out + models[name](x)
    return out


def accuracy(data, models: dict[str, nn.Module], names: tuple[str, ...]) -> torch.Tensor:
    """Test accuracy of `predict` as a 0-dim device tensor (eval mode; modes restored):
    `TrainingData.accuracies` over the networks `names`, on the test set."""
    return data.accuracies(models, names)["test"]
