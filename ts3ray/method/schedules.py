"""Per-epoch schedules of the competitor methods (pure functions of the epoch index).

`epoch` is always the 0-based epoch within the current IMP level (training round), so every
level repeats the same schedule from its start, as each level is a full retraining.
"""
from __future__ import annotations

from dataclasses import dataclass

from ts3ray.errors import ConfigError

FORGET_FORMS = ("paper", "code")


def forget_rate(epoch: int, rate: float, t_k: int = 10, c: float = 1.0,
                form: str = "paper") -> float:
    """Fraction of each mini-batch dropped as large-loss in 0-based epoch `epoch`.

    paper: Co-teaching (Han et al. 2018) Algorithm 1 keeps the R(T) smallest-loss share of
    each batch and, at the END of epoch T (step 8), updates R(T) = 1 - min(T^c / T_k, 1) tau
    (Sec. 4: c = 1, T_k = 10, tau = eps); the value set after epoch T is used in epoch T+1,
    and the first epoch keeps everything. So the forget rate of 0-based epoch e is
    tau * min(e^c / T_k, 1): 0 in epoch 0, tau from epoch T_k on. JoCoR (Wei et al. 2020)
    uses the same R(T).

    code: both authors' main.py build `linspace(0, tau**c, T_k)` (entry i for i < T_k, tau
    after) and read it at training epochs i = 1, 2, ... (epoch 0 only evaluates the random
    init), so 0-based training epoch e drops tau^c * (e + 1) / (T_k - 1) while e + 1 < T_k
    and tau from then on: the ramp starts at tau/(T_k - 1) and is full two epochs earlier.
    """
    if form not in FORGET_FORMS:
        raise ConfigError("forget_schedule", form, f"one of {', '.join(FORGET_FORMS)}")
    if t_k < 1:
        raise ConfigError("t_k", t_k, "an integer >= 1")
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    if form == "paper":
        return rate * min(epoch**c / t_k, 1.0)
    step = epoch + 1  # the code's first training epoch reads rate_schedule[1]
    if step >= t_k:
        return rate
    return rate**c * step / (t_k - 1) if t_k > 1 else rate


def linear_rampup(progress: float, start: float, length: float) -> float:
    """clip((progress - start) / length, 0, 1): DivideMix code's ramp of lambda_u over
    `length` epochs after the warm-up (`progress` = epoch + batch / batches_per_epoch)."""
    if length <= 0:
        return 1.0 if progress >= start else 0.0
    return min(max((progress - start) / length, 0.0), 1.0)


@dataclass(frozen=True)
class ForgetOptions:
    """The small-loss ramp of Co-teaching and JoCoR, R(T) with T_k and exponent c, and the
    two-network methods' `prune`."""

    t_k: int = 10  # epochs of the linear ramp (Co-teaching Sec. 4, JoCoR Sec. 4)
    c: float = 1.0  # exponent c of T^c
    forget_schedule: str = "paper"  # paper | code (see forget_rate)
    prune: str = "S"  # S: D a dense peer | both: D pruned too, by its own magnitudes


def check_forget(o: ForgetOptions, setting) -> None:
    if o.t_k < 1:
        raise ConfigError("t_k", o.t_k, "an integer >= 1")
    if o.c <= 0:
        raise ConfigError("c", o.c, "a positive number")
    if o.forget_schedule not in FORGET_FORMS:
        raise ConfigError("forget_schedule", o.forget_schedule, f"one of {', '.join(FORGET_FORMS)}")
