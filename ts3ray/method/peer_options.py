"""Options of the competitor methods: one frozen dataclass per method, paper defaults per
dataset, validation with one-line ConfigErrors.

`make_options(method, dataset, noise, noise_rate, overrides)` resolves, in order: the
dataclass defaults < the per-dataset/per-noise defaults of `dataset_defaults` < `overrides`.
Sources of every value are in docs/METHODS.md; comments here name them briefly.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ts3ray.errors import ConfigError
from ts3ray.method.peer_losses import RCE_LOG_ZERO_PAPER
from ts3ray.method.schedules import FORGET_FORMS

ROBUST_LOSSES = ("ce", "sce", "mae", "apl")
PASSIVE_LOSSES = ("mae", "rce")
EVALUATIONS = ("single", "ensemble")
MNIST_LIKE = ("digits", "mnist", "fashion-mnist", "synthetic")


def dataset_family(dataset: str) -> str:
    """Which published hyperparameter column a dataset uses: mnist, cifar10 or cifar100.
    MNIST-like sets (incl. ts3ray's digits and synthetic) use MNIST's values; datasets the
    papers do not tune for (e.g. synthetic-cifar, ANIMAL-10N) fall back to CIFAR-10's."""
    if dataset in MNIST_LIKE:
        return "mnist"
    return "cifar100" if dataset == "cifar100" else "cifar10"


@dataclass(frozen=True)
class RobustLossOptions:
    """ce / sce / mae / apl: one network trained with a robust loss on every sample."""

    loss: str = "ce"  # which loss: ce | sce | mae | apl
    alpha: float = 1.0  # SCE: weight of CE; APL: weight of the active loss NCE
    beta: float = 1.0  # SCE: weight of RCE; APL: weight of the passive loss
    passive: str = "mae"  # APL passive loss: mae (NCE+MAE, as the TS3 paper reports) | rce
    mae_scale: float = 2.0  # 2: ||e_y - p||_1 (Ghosh et al. 2017, APL paper); 1: 1 - p_y (APL code)
    rce_log_zero: float = RCE_LOG_ZERO_PAPER  # A = log 0 of RCE: paper -4; code ln(1e-4) = -9.2103
    grad_clip: float | None = None  # SCE/APL code: clip_grad_norm_(..., 5.0) every step


@dataclass(frozen=True)
class ForgetOptions:
    """The small-loss ramp of Co-teaching and JoCoR: R(T) with T_k and exponent c."""

    t_k: int = 10  # epochs of the linear ramp (Co-teaching Sec. 4, JoCoR Sec. 4)
    c: float = 1.0  # exponent c of T^c
    forget_schedule: str = "paper"  # paper | code (see schedules.forget_rate)


@dataclass(frozen=True)
class CoteachingOptions(ForgetOptions):
    pass


@dataclass(frozen=True)
class JocorOptions(ForgetOptions):
    lam: float = 0.9  # lambda of the joint loss; per dataset in dataset_defaults


@dataclass(frozen=True)
class ItlmOptions:
    warmup_epochs: int = 10  # first epochs on all samples (the code's round 0)
    reselect_every: int = 1  # epochs between whole-set re-selections (ModelUpdate length)


@dataclass(frozen=True)
class DivideMixOptions:
    warmup_epochs: int = 10  # CE warm-up of both nets (code: 10 CIFAR-10, 30 CIFAR-100)
    alpha: float = 4.0  # Beta(alpha, alpha) of mixup
    temperature: float = 0.5  # sharpening T
    lambda_u: float = 25.0  # weight of L_U (code default; per setting in dataset_defaults)
    rampup_epochs: float = 16.0  # code: lambda_u ramps linearly over 16 epochs after warm-up
    lambda_r: float = 1.0  # weight of the uniform-prior penalty L_reg
    p_threshold: float = 0.5  # clean if the GMM clean posterior > p_threshold
    confidence_penalty: bool = False  # warm-up CE + negative entropy (asymmetric noise)
    evaluate: str = "single"  # single: S alone (TS3 paper); ensemble: sum of both nets' logits


OPTION_CLASSES: dict[str, type] = {
    "ce": RobustLossOptions,
    "sce": RobustLossOptions,
    "mae": RobustLossOptions,
    "apl": RobustLossOptions,
    "itlm": ItlmOptions,
    "coteaching": CoteachingOptions,
    "jocor": JocorOptions,
    "dividemix": DivideMixOptions,
}

# (alpha, beta) per dataset family. SCE: official code train_models.py (MNIST 0.01/1,
# CIFAR-10 0.1/1, CIFAR-100 6/0.1) = APL repo configs. APL: APL repo configs/<ds>/sym/*.yaml.
SCE_WEIGHTS = {"mnist": (0.01, 1.0), "cifar10": (0.1, 1.0), "cifar100": (6.0, 0.1)}
APL_WEIGHTS = {
    "mae": {"mnist": (1.0, 10.0), "cifar10": (1.0, 1.0), "cifar100": (10.0, 1.0)},
    "rce": {"mnist": (1.0, 10.0), "cifar10": (1.0, 1.0), "cifar100": (10.0, 0.1)},
}
# JoCoR lambda: README (CIFAR-10 0.9, CIFAR-100 0.85), example.sh (MNIST 0.95)
JOCOR_LAMBDA = {"mnist": 0.95, "cifar10": 0.9, "cifar100": 0.85}
# warm-up epochs: DivideMix Train_cifar.py (10 / 30); MNIST is ts3ray's choice (TS3's E1)
DIVIDEMIX_WARMUP = {"mnist": 10, "cifar10": 10, "cifar100": 30}
# ITLM: the code's round 0 (80 epochs on all samples) is longer than a ts3ray level; ts3ray
# uses the TS3 paper's warm-up window E1 (10 MNIST, 20 CIFAR)
ITLM_WARMUP = {"mnist": 10, "cifar10": 20, "cifar100": 20}


def dividemix_lambda_u(family: str, noise: str, noise_rate: float) -> float:
    """lambda_u from {0, 25, 50, 150} as DivideMix's Appendix B (Table 7) sets it: CIFAR-10
    sym 20% 0, 50-80% 25, 90% 50, asym 0; CIFAR-100 20% 25, >= 50% 150. Between tabulated
    levels (e.g. 40%) the nearest level's value; CIFAR-100 asym (not in the paper) follows
    CIFAR-10's asym rule 0; MNIST-like sets use the CIFAR-10 column."""
    if noise == "asym":
        return 0.0
    if family == "cifar100":
        return 25.0 if noise_rate < 0.35 else 150.0
    if noise_rate < 0.35:
        return 0.0
    return 25.0 if noise_rate < 0.85 else 50.0


def dataset_defaults(method: str, dataset: str, noise: str, noise_rate: float) -> dict[str, Any]:
    """The published value of every per-dataset option of `method` for this setting."""
    family = dataset_family(dataset)
    if method == "sce":
        alpha, beta = SCE_WEIGHTS[family]
        return dict(loss="sce", alpha=alpha, beta=beta)
    if method == "apl":
        alpha, beta = APL_WEIGHTS["mae"][family]
        return dict(loss="apl", passive="mae", alpha=alpha, beta=beta)
    if method in ("ce", "mae"):
        return dict(loss=method)
    if method == "jocor":
        return dict(lam=JOCOR_LAMBDA[family])
    if method == "itlm":
        return dict(warmup_epochs=ITLM_WARMUP[family])
    if method == "dividemix":
        return dict(warmup_epochs=DIVIDEMIX_WARMUP[family],
                    lambda_u=dividemix_lambda_u(family, noise, noise_rate),
                    p_threshold=0.6 if noise_rate >= 0.85 else 0.5,
                    confidence_penalty=noise == "asym")
    return {}


def make_options(method: str, dataset: str, noise: str = "sym", noise_rate: float = 0.0,
                 overrides: dict[str, Any] | None = None):
    """Options of `method` for a setting: defaults < published per-dataset values < overrides.
    Choosing APL's passive loss re-resolves alpha/beta from that variant's published column
    unless they are overridden too."""
    if method not in OPTION_CLASSES:
        raise ConfigError("method", method, f"one of {', '.join(OPTION_CLASSES)}")
    cls = OPTION_CLASSES[method]
    overrides = dict(overrides or {})
    known = {f.name for f in dataclasses.fields(cls)}
    for key in overrides:
        if key not in known:
            raise ConfigError(key, overrides[key],
                              f"unknown option of {method}; known: {', '.join(sorted(known))}")
    values = dataset_defaults(method, dataset, noise, noise_rate)
    if method == "apl" and overrides.get("passive") in PASSIVE_LOSSES:
        alpha, beta = APL_WEIGHTS[overrides["passive"]][dataset_family(dataset)]
        values.update(alpha=alpha, beta=beta)
    values.update(overrides)
    options = cls(**values)
    validate_options(method, options)
    return options


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)


def validate_options(method: str, o) -> None:
    """ConfigError on the first option value that is not allowed."""
    if isinstance(o, RobustLossOptions):
        _check(o.loss == method, "loss", o.loss, f"{method!r} for method {method}")
        _check(o.loss in ROBUST_LOSSES, "loss", o.loss, f"one of {', '.join(ROBUST_LOSSES)}")
        _check(o.passive in PASSIVE_LOSSES, "passive", o.passive, "mae or rce")
        for key in ("alpha", "beta", "mae_scale"):
            value = getattr(o, key)
            _check(value >= 0 and math.isfinite(value), key, value, "a finite number >= 0")
        _check(o.rce_log_zero < 0, "rce_log_zero", o.rce_log_zero, "a negative number (A < 0)")
        if o.grad_clip is not None:
            _check(o.grad_clip > 0, "grad_clip", o.grad_clip, "a positive number or None")
    if isinstance(o, ForgetOptions):
        _check(o.t_k >= 1, "t_k", o.t_k, "an integer >= 1")
        _check(o.c > 0, "c", o.c, "a positive number")
        _check(o.forget_schedule in FORGET_FORMS, "forget_schedule", o.forget_schedule,
               f"one of {', '.join(FORGET_FORMS)}")
    if isinstance(o, JocorOptions):
        _check(0.0 <= o.lam <= 1.0, "lam", o.lam, "a number in [0, 1]")
    if isinstance(o, ItlmOptions):
        _check(o.warmup_epochs >= 0, "warmup_epochs", o.warmup_epochs, "an integer >= 0")
        _check(o.reselect_every >= 1, "reselect_every", o.reselect_every, "an integer >= 1")
    if isinstance(o, DivideMixOptions):
        _check(o.warmup_epochs >= 0, "warmup_epochs", o.warmup_epochs, "an integer >= 0")
        _check(o.alpha > 0, "alpha", o.alpha, "a positive number (Beta(alpha, alpha))")
        _check(o.temperature > 0, "temperature", o.temperature, "a positive number")
        for key in ("lambda_u", "lambda_r", "rampup_epochs"):
            _check(getattr(o, key) >= 0, key, getattr(o, key), "a number >= 0")
        _check(0.0 <= o.p_threshold < 1.0, "p_threshold", o.p_threshold, "a number in [0, 1)")
        _check(o.evaluate in EVALUATIONS, "evaluate", o.evaluate, "single or ensemble")
