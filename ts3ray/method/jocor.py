"""JoCoR — Wei et al., Combating Noisy Labels by Agreement: A Joint Training Method with
Co-Regularization, CVPR 2020.

Per sample l = (1 - lam)(CE(p1, y) + CE(p2, y)) + lam (KL(p1||p2) + KL(p2||p1)) (Sec. 3); the
R(T) share with the smallest joint loss is kept and its mean minimised with ONE optimiser
over both networks. Published recipe (hongxin001/JoCoR main.py): one Adam, lr 1e-3, Co-teaching's
decay plan, batch 128, PyTorch's default initialisation — under which two fresh networks
nearly agree, so the KL term starts small; lam (MNIST 0.95, CIFAR-10 0.9, CIFAR-100 0.85) was
tuned there. Under SGD lam >= 0.8 scales the label signal by 1 - lam (a warning says so).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ts3ray.method import peer_losses as PL
from ts3ray.method.base import (TWO_NETWORKS_WHY, EpochContext, MethodDef, Net, Setting, Tunable,
                                check_prune, dataset_family, joint_step, pruned_by_option,
                                record_selection)
from ts3ray.method.coteaching import adam_linear_decay
from ts3ray.method.losses import masked_mean, small_loss_mask
from ts3ray.method.options import check
from ts3ray.method.protocols import Recipe
from ts3ray.method.schedules import ForgetOptions, check_forget, forget_rate


@dataclass(frozen=True)
class JocorOptions(ForgetOptions):
    lam: float = 0.9  # lambda of the joint loss; per dataset in defaults


# lambda: README (CIFAR-10 0.9, CIFAR-100 0.85), example.sh (MNIST 0.95); real-world sets:
# nearest published (Clothing1M/WebVision: CIFAR-100's)
LAMBDA = {"mnist": 0.95, "cifar10": 0.9, "cifar100": 0.85, "clothing1m": 0.85,
          "webvision50": 0.85}
SGD_REGIME_LAMBDA = 0.8  # at or above it, SGD gives the CE term <= 20% of the gradient


def defaults(setting: Setting, overrides: dict) -> dict:
    family = dataset_family(setting.dataset)
    if family == "cifar10" and setting.noise_rate >= 0.8:
        return dict(lam=0.65)  # README: CIFAR-10 at 80% noise
    return dict(lam=LAMBDA[family])


def recipes(protocol: str, setting: Setting) -> Recipe:
    recipe = adam_linear_decay("hongxin001/JoCoR main.py (one Adam over both networks)", setting)
    if protocol == "code":
        return dataclasses.replace(recipe, options=dict(forget_schedule="code"))
    return recipe


def jocor_epoch(nets: dict[str, Net], ctx: EpochContext) -> None:
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


def check_options(o: JocorOptions, setting: Setting) -> None:
    check_forget(o, setting)
    check_prune(o)
    check(0.0 <= o.lam <= 1.0, "lam", o.lam, "a number in [0, 1]")


def regime(o: JocorOptions, config) -> list[str]:
    if config.optimizer == "sgd" and o.lam >= SGD_REGIME_LAMBDA:
        return [f"jocor lam={o.lam:g} was tuned under Adam (lr 1e-3) with near-agreeing "
                f"initial networks; under SGD the label term gets {1 - o.lam:.0%} of the "
                "gradient: use protocol=published, or re-tune it (protocol=controlled)"]
    return []


METHOD = MethodDef(
    name="jocor", paper="Wei et al., JoCoR, CVPR 2020", networks=("S", "D"),
    options=JocorOptions, epoch=jocor_epoch, recipes=recipes, defaults=defaults,
    check=check_options, regime=regime, pruned=pruned_by_option, joint_optimizer=True,
    uses_select_rate=True,
    tunables=(Tunable("lam", 0.0, 0.95), Tunable("t_k", 1, 20, integer=True)),
    why_pruned=TWO_NETWORKS_WHY)
