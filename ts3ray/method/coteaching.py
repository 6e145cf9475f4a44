"""Co-teaching — Han et al., Co-teaching: Robust Training of Deep Neural Networks with
Extremely Noisy Labels, NeurIPS 2018.

Algorithm 1: per batch each network keeps the R(T) share with the smallest loss by ITS OWN
CE (steps 4-5) and is updated on its PEER's picks (steps 6-7); R(T) ramps over T_k epochs
(schedules.forget_rate). Published recipe (bhanML/Co-teaching main.py): two Adams, lr 1e-3,
batch 128, 200 epochs; from epoch 80 the lr decays linearly to 0 and beta1 drops 0.9 -> 0.1;
PyTorch's default initialisation (CIFAR-100: decay from epoch 100). Inside IMP the schedule
is fitted into each level: the decay starts at 40% (50%) of E. Not reproduced: the code divides
its mean loss by the kept count once more (a constant factor per epoch, which Adam's update
ignores), its 401-iteration cap per epoch, its unnormalised inputs.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ts3ray.method.base import (TWO_NETWORKS_WHY, EpochContext, MethodDef, Net, Setting, Tunable,
                                check_prune, dataset_family, pruned_by_option,
                                record_selection)
from ts3ray.method.losses import masked_mean, per_sample_ce, small_loss_mask
from ts3ray.method.protocols import Recipe
from ts3ray.method.schedules import ForgetOptions, check_forget, forget_rate


@dataclass(frozen=True)
class CoteachingOptions(ForgetOptions):
    pass


def adam_linear_decay(source: str, setting: Setting) -> Recipe:
    """The Co-teaching / JoCoR codes' optimiser: Adam lr 1e-3, no weight decay, batch 128,
    PyTorch's default init; lr constant until `epoch_decay_start` of 200 epochs (80; 100 for
    CIFAR-100), then (200 - e) / (200 - start) lr, and beta1 0.9 -> 0.1 from then on."""
    start = 100 if dataset_family(setting.dataset) == "cifar100" else 80
    return Recipe(f"{source}, decay from epoch {start} of 200", lr=1e-3, batch_size=128,
                  optimizer="adam", momentum=0.0, adam_beta1=0.9, adam_beta2=0.999,
                  beta1_decayed=0.1, lr_schedule="linear", milestones=(start / 200,),
                  init="torch_default")


def recipes(protocol: str, setting: Setting) -> Recipe:
    recipe = adam_linear_decay("bhanML/Co-teaching main.py", setting)
    if protocol == "code":  # the code's ramp: linspace(0, tau, T_k) read from epoch 1
        return dataclasses.replace(recipe, options=dict(forget_schedule="code"))
    return recipe


def coteaching_epoch(nets: dict[str, Net], ctx: EpochContext) -> None:
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


def check_options(o: CoteachingOptions, setting: Setting) -> None:
    check_forget(o, setting)
    check_prune(o)


METHOD = MethodDef(
    name="coteaching", paper="Han et al., Co-teaching, NeurIPS 2018", networks=("S", "D"),
    options=CoteachingOptions, epoch=coteaching_epoch, recipes=recipes, check=check_options,
    pruned=pruned_by_option, uses_select_rate=True,
    tunables=(Tunable("t_k", 1, 20, integer=True),), why_pruned=TWO_NETWORKS_WHY)
