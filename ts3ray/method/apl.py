"""APL — Ma et al., Normalized Loss Functions for Deep Learning with Noisy Labels, ICML 2020.

L_APL = alpha * L_active + beta * L_passive (Sec. 4); NCE = -log p_y / (-sum_k log p_k)
(Sec. 3). Passive MAE (NCE+MAE, the variant the TS3 paper reports) or RCE (NCE+RCE). Its
authors' repository (HanxunH/Active-Passive-Losses) also holds the configs that SCE, MAE and CE
were run with there: `apl_repo_recipe` is that repository's training recipe, one place for all
four.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ts3ray.method import peer_losses as PL
from ts3ray.method.base import MethodDef, Setting, Tunable, dataset_family
from ts3ray.method.options import check
from ts3ray.method.protocols import Recipe
from ts3ray.method.robust import ONE_NETWORK_WHY, robust_epoch

PASSIVE_LOSSES = ("mae", "rce")
APL_REPO = "HanxunH/Active-Passive-Losses"


@dataclass(frozen=True)
class AplOptions:
    alpha: float = 1.0  # weight of the active loss NCE
    beta: float = 1.0  # weight of the passive loss
    passive: str = "mae"  # mae (NCE+MAE) | rce (NCE+RCE)
    mae_scale: float = 2.0  # 2: ||e_y - p||_1 (MAE and APL papers); 1: 1 - p_y (APL code)
    rce_log_zero: float = PL.RCE_LOG_ZERO_PAPER  # A of RCE: paper -4; code ln 1e-4


# (alpha, beta) per passive loss and family: APL repo configs/<dataset>/sym/*.yaml (asym alike)
WEIGHTS = {
    "mae": {"mnist": (1.0, 10.0), "cifar10": (1.0, 1.0), "cifar100": (10.0, 1.0),
            "webvision50": (50.0, 1.0)},
    "rce": {"mnist": (1.0, 10.0), "cifar10": (1.0, 1.0), "cifar100": (10.0, 0.1),
            "webvision50": (50.0, 0.1)},
}
NEAREST = {"clothing1m": "cifar10"}  # no published constants: the nearest, CIFAR-10's

# The repository's released configs (configs/<dataset>/{sym,asym}/<loss>.yaml, identical for
# every loss; trainer.py, main.py): SGD momentum 0.9, batch 128, clip_grad_norm 5 every
# step, the repository's init (models.py: kaiming-uniform conv, xavier-uniform linear), and:
_REPO = {
    "mnist": dict(lr=0.01, nesterov=True, weight_decay=1e-2, lr_schedule="cosine",
                  lr_floor=0.1),  # cosine over 50 epochs to eta_min 0.001
    "cifar10": dict(lr=0.01, weight_decay=1e-4, lr_schedule="cosine"),  # 120 epochs
    "cifar100": dict(lr=0.1, weight_decay=1e-5, lr_schedule="cosine"),  # 200 epochs
    # webvision_mini: lr 0.4, nesterov, wd 3e-5, x0.97 per epoch, batch 512, 250 epochs
    "webvision50": dict(lr=0.4, nesterov=True, weight_decay=3e-5, lr_schedule="exponential",
                        lr_decay_factor=0.97, batch_size=512),
    # Clothing1M: no released config; the repository's archive/train.py: lr 0.01, wd 1e-3,
    # x0.1 at epochs 5 and 10 of 20
    "clothing1m": dict(lr=0.01, weight_decay=1e-3, milestones=(5 / 20, 10 / 20)),
}
CONFIG_DIRS = {"mnist": "mnist", "cifar10": "cifar10", "cifar100": "cifar100",
               "webvision50": "webvision_mini", "clothing1m": "archive/train.py (clothing1m)"}


def apl_repo_recipe(setting: Setting, loss: str, options: dict[str, Any] | None = None) -> Recipe:
    family = dataset_family(setting.dataset)
    where = CONFIG_DIRS[family]
    source = (f"{APL_REPO} {where}" if family == "clothing1m"
              else f"{APL_REPO} configs/{where}/sym/{loss}.yaml")
    if family == "cifar10" and setting.dataset != "cifar10":
        source += " (nearest published: CIFAR-10)"
    values = {"batch_size": 128, **_REPO[family]}
    return Recipe(source, grad_clip=5.0, init="apl", options=dict(options or {}), **values)


def weights(family: str, passive: str) -> tuple[float, float]:
    check(passive in PASSIVE_LOSSES, "passive", passive, "mae or rce")
    return WEIGHTS[passive][NEAREST.get(family, family)]


def defaults(setting: Setting, overrides: dict) -> dict:
    alpha, beta = weights(dataset_family(setting.dataset), overrides.get("passive", "mae"))
    return dict(alpha=alpha, beta=beta)


def recipes(protocol: str, setting: Setting) -> Recipe:
    return apl_repo_recipe(setting, "nce+mae",
                           options=dict(mae_scale=1.0, rce_log_zero=PL.RCE_LOG_ZERO_CODE))


def check_options(o: AplOptions, setting: Setting) -> None:
    check(o.passive in PASSIVE_LOSSES, "passive", o.passive, "mae or rce")
    for key in ("alpha", "beta", "mae_scale"):
        check(getattr(o, key) >= 0, key, getattr(o, key), "a finite number >= 0")
    check(o.rce_log_zero < 0, "rce_log_zero", o.rce_log_zero, "a negative number (A < 0)")


def regime(o: AplOptions, config) -> list[str]:
    if o.passive == "mae" and o.mae_scale != 1.0:
        return [f"apl beta={o.beta:g} was tuned with the code's MAE = 1 - p_y; mae_scale="
                f"{o.mae_scale:g} runs an effective beta of {o.beta * o.mae_scale:g}: "
                "protocol=published uses the authors' units"]
    return []


METHOD = MethodDef(
    name="apl", paper="Ma et al., Normalized Loss Functions (APL), ICML 2020", networks=("S",),
    options=AplOptions,
    epoch=robust_epoch(lambda o, logits, y: PL.apl_per_sample(
        logits, y, o.alpha, o.beta, o.passive, o.mae_scale, o.rce_log_zero)),
    recipes=recipes, defaults=defaults, check=check_options, regime=regime,
    tunables=(Tunable("alpha", 0.1, 100.0, log=True), Tunable("beta", 0.1, 100.0, log=True)),
    why_pruned=ONE_NETWORK_WHY)
