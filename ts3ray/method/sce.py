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
# the APL repo's configs/*/sce.yaml agree
WEIGHTS = {"mnist": (0.01, 1.0), "cifar10": (0.1, 1.0), "cifar100": (6.0, 0.1)}
NEAREST = {"clothing1m": "cifar10", "webvision50": "cifar100"}


def defaults(setting: Setting, overrides: dict) -> dict:
    family = dataset_family(setting.dataset)
    alpha, beta = WEIGHTS[NEAREST.get(family, family)]
    return dict(alpha=alpha, beta=beta)


def recipes(protocol: str, setting: Setting) -> Recipe:
    from ts3ray.method.apl import apl_repo_recipe

    return apl_repo_recipe(setting, "sce", options=dict(rce_log_zero=PL.RCE_LOG_ZERO_CODE))


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
