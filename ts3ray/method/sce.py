"""SCE — Wang et al., Symmetric Cross Entropy for Robust Learning with Noisy Labels, ICCV 2019.

l_sl = alpha * CE + beta * RCE (Sec. 3.2), RCE = -sum_k p_k log q_k with q the one-hot label
and log 0 := A. The paper's text gives A = -4; both authors' codes clip q at 1e-4 before a
natural log, A = ln 1e-4 = -9.21, the units alpha/beta were tuned in: `published` fixes the
codes' A (and their p floor of 1e-7), `shared` keeps the paper's A unless set.
"""
from __future__ import annotations

from dataclasses import dataclass

from ts3ray.method import peer_losses as PL
from ts3ray.method.base import MethodDef, Setting, Tunable, dataset_family
from ts3ray.method.options import check
from ts3ray.method.protocols import Recipe
from ts3ray.method.robust import ONE_NETWORK_WHY, robust_epoch


@dataclass(frozen=True)
class SceOptions:
    alpha: float = 0.1  # weight of CE
    beta: float = 1.0  # weight of RCE
    rce_log_zero: float = PL.RCE_LOG_ZERO_PAPER  # A = log 0 of RCE: paper -4; code ln 1e-4


# (alpha, beta): official train_models.py (MNIST 0.01/1, CIFAR-10 0.1/1, CIFAR-100 6/0.1);
# the APL repo's configs/*/sce.yaml agree and add WebVision-mini 10/1
WEIGHTS = {"mnist": (0.01, 1.0), "cifar10": (0.1, 1.0), "cifar100": (6.0, 0.1),
           "webvision50": (10.0, 1.0)}
NEAREST = {"clothing1m": "cifar10"}
# The official (Keras) code's recipe, train_models.py + util.py get_lr_scheduler: SGD momentum
# 0.9, batch 128, he_normal init (= kaiming), no gradient clip, a step schedule (x0.1 at each
# milestone). Its SGD(decay=...) is Keras' per-iteration lr decay, not weight decay; it and the
# layers' own L2 regularisers are not reproduced (weight decay 0).
OFFICIAL = "YisenWang/symmetric_cross_entropy_for_noisy_labels train_models.py, util.py"
KERAS = {
    "mnist": dict(lr=0.1, milestones=(11 / 50, 31 / 50)),  # 50 epochs
    "cifar10": dict(lr=0.01, milestones=(41 / 120, 81 / 120)),  # 120 epochs
    "cifar100": dict(lr=0.1, milestones=(81 / 150, 121 / 150)),  # 150 epochs
}


def defaults(setting: Setting, overrides: dict) -> dict:
    family = dataset_family(setting.dataset)
    alpha, beta = WEIGHTS[NEAREST.get(family, family)]
    return dict(alpha=alpha, beta=beta)


def recipes(protocol: str, setting: Setting) -> Recipe:
    """The official code's recipe; for Clothing1M and WebVision, which it does not cover,
    the APL repository's (its sce.yaml / archive), the nearest published."""
    units = dict(rce_log_zero=PL.RCE_LOG_ZERO_CODE)
    family = dataset_family(setting.dataset)
    if family in ("clothing1m", "webvision50"):
        from ts3ray.method.apl import apl_repo_recipe

        return apl_repo_recipe(setting, "sce", options=units)
    nearest = "" if setting.dataset in ("mnist", "cifar10", "cifar100") else \
        f" (nearest published: {family})"
    return Recipe(f"{OFFICIAL}{nearest}", batch_size=128, init="kaiming", options=units,
                  **KERAS[family])


def check_options(o: SceOptions, setting: Setting) -> None:
    for key in ("alpha", "beta"):
        check(getattr(o, key) >= 0, key, getattr(o, key), "a finite number >= 0")
    check(o.rce_log_zero < 0, "rce_log_zero", o.rce_log_zero, "a negative number (A < 0)")


def regime(o: SceOptions, config) -> list[str]:
    if o.rce_log_zero != PL.RCE_LOG_ZERO_CODE:
        return [f"sce alpha={o.alpha:g}, beta={o.beta:g} were tuned with A = ln 1e-4 = -9.21; "
                f"rce_log_zero={o.rce_log_zero:g} scales the RCE term by "
                f"{o.rce_log_zero / PL.RCE_LOG_ZERO_CODE:.2f}: protocol=published uses the "
                "authors' units"]
    return []


METHOD = MethodDef(
    name="sce", paper="Wang et al., Symmetric Cross Entropy, ICCV 2019", networks=("S",),
    options=SceOptions,
    epoch=robust_epoch(lambda o, logits, y: PL.sce_per_sample(logits, y, o.alpha, o.beta,
                                                              o.rce_log_zero)),
    recipes=recipes, defaults=defaults, check=check_options, regime=regime,
    tunables=(Tunable("alpha", 0.01, 10.0, log=True), Tunable("beta", 0.1, 10.0, log=True)),
    why_pruned=ONE_NETWORK_WHY)
