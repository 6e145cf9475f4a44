"""Losses of the competitor methods as pure functions of logits (no training state).

Every ``*_per_sample`` function returns one value per sample (shape (B,)); the batch-mean
forms are the ``.mean()`` of it, or :func:`ts3ray.method.losses.masked_mean` over a
selection. All are computed from ``log_softmax`` / ``softmax`` of the logits, so no ``log 0``
and no division by zero can occur. docs/METHODS.md gives the sources of every form and
constant.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ts3ray.method.losses import per_sample_ce

# RCE's log 0 := A. The authors' code clips the one-hot label to [1e-4, 1] before the (natural)
# log, so A = ln(1e-4) = -9.2103; the SCE paper's text gives A = -4 (log10 of the clip).
RCE_LOG_ZERO_CODE = math.log(1e-4)
RCE_LOG_ZERO_PAPER = -4.0
PROB_FLOOR = 1e-7  # SCE/APL code clip of the softmax inside RCE (kills gradients below it)


def ce_per_sample(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy -log p_y: the `ce` baseline (TS3 paper Eq. 1 summand)."""
    return per_sample_ce(logits, labels)


def rce_per_sample(logits: torch.Tensor, labels: torch.Tensor,
                   log_zero: float = RCE_LOG_ZERO_PAPER) -> torch.Tensor:
    """Reverse cross-entropy -sum_k p_k log q_k with q the one-hot label and log 0 := A
    (SCE paper Sec. 3.2, A = -4 there; the authors' code clips q at 1e-4, i.e. A = ln 1e-4 =
    RCE_LOG_ZERO_CODE). For a one-hot q this is -A * sum_{k != y} p_k = -A (1 - p_y); p is
    clamped to [1e-7, 1] as in the code, so with A = ln 1e-4 it is exactly the authors'
    -sum_k p_k log clip(q_k, 1e-4, 1)."""
    if not log_zero < 0:
        raise ValueError(f"log_zero (A) must be negative, got {log_zero}")
    p = F.softmax(logits, dim=1).clamp(min=PROB_FLOOR, max=1.0)
    off_label = torch.ones_like(p).scatter_(1, labels.view(-1, 1), 0.0)
    return -log_zero * (p * off_label).sum(dim=1)


def sce_per_sample(logits: torch.Tensor, labels: torch.Tensor, alpha: float, beta: float,
                   log_zero: float = RCE_LOG_ZERO_PAPER) -> torch.Tensor:
    """Symmetric cross-entropy l_sl = alpha * l_ce + beta * l_rce (SCE paper Sec. 3.2)."""
    return alpha * ce_per_sample(logits, labels) + beta * rce_per_sample(logits, labels, log_zero)


def mae_per_sample(logits: torch.Tensor, labels: torch.Tensor, scale: float = 2.0) -> torch.Tensor:
    """Mean absolute error between softmax and one-hot label: Ghosh et al. (2017) and the APL
    paper define MAE = ||e_y - p||_1 = 2 (1 - p_y) (scale=2, the default); the APL authors'
    code, the public PyTorch MAE, uses the "reduced" 1 - p_y (scale=1, option)."""
    p_y = F.softmax(logits, dim=1).gather(1, labels.view(-1, 1)).squeeze(1)
    return scale * (1.0 - p_y)


def nce_per_sample(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Normalized cross-entropy -log p_y / (-sum_k log p_k) (APL paper, Ma et al. 2020,
    Sec. 3 "normalized loss functions").
    The denominator is >= -log p_y > 0 for any finite logits; clamped against underflow."""
    log_p = F.log_softmax(logits, dim=1)
    numerator = -log_p.gather(1, labels.view(-1, 1)).squeeze(1)
    return numerator / (-log_p.sum(dim=1)).clamp_min(torch.finfo(log_p.dtype).tiny)


def apl_per_sample(logits: torch.Tensor, labels: torch.Tensor, alpha: float, beta: float,
                   passive: str = "mae", mae_scale: float = 2.0,
                   log_zero: float = RCE_LOG_ZERO_PAPER) -> torch.Tensor:
    """Active Passive Loss alpha * NCE + beta * passive (APL paper Sec. 4,
    L_APL = alpha * L_Active + beta * L_Passive), passive = MAE
    (NCE+MAE, the variant the TS3 paper reports) or RCE (NCE+RCE)."""
    if passive == "mae":
        passive_loss = mae_per_sample(logits, labels, mae_scale)
    elif passive == "rce":
        passive_loss = rce_per_sample(logits, labels, log_zero)
    else:
        raise ValueError(f"passive must be 'mae' or 'rce', got {passive!r}")
    return alpha * nce_per_sample(logits, labels) + beta * passive_loss


def kl_per_sample(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) = sum_k p_k (log p_k - log q_k) from log-probabilities (0 log 0 = 0)."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


def jocor_per_sample(logits1: torch.Tensor, logits2: torch.Tensor, labels: torch.Tensor,
                     lam: float) -> torch.Tensor:
    """JoCoR joint loss (Wei et al. 2020, Sec. 3, l = (1 - lam) l_sup + lam l_con):
    (1 - lam) * (CE(p1, y) + CE(p2, y)) + lam * (KL(p1 || p2) + KL(p2 || p1)). Gradients
    flow through both arguments of each KL, as in the paper and the authors' code (whose
    kl_loss_compute(a, b) is KL(p_b || p_a); the sum of both calls is the same symmetric KL)."""
    log_p1, log_p2 = F.log_softmax(logits1, dim=1), F.log_softmax(logits2, dim=1)
    supervised = per_sample_ce(logits1, labels) + per_sample_ce(logits2, labels)
    contrastive = kl_per_sample(log_p1, log_p2) + kl_per_sample(log_p2, log_p1)
    return (1.0 - lam) * supervised + lam * contrastive


# -- DivideMix (Li et al. 2020) -------------------------------------------------------------
def sharpen(p: torch.Tensor, temperature: float) -> torch.Tensor:
    """Sharpen(p, T)_c = p_c^(1/T) / sum_k p_k^(1/T) (MixMatch Eq. 7; DivideMix Sec. 3.3
    co-refinement and co-guessing)."""
    powered = p.pow(1.0 / temperature)
    return powered / powered.sum(dim=1, keepdim=True)


def mixup_coefficient(lam: float) -> float:
    """lambda' = max(lambda, 1 - lambda) for lambda ~ Beta(alpha, alpha) (MixMatch Eq. 9;
    DivideMix Sec. 3.3): the mix stays closer to its first input."""
    return max(lam, 1.0 - lam)


def soft_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L_X: -1/|X'| sum_x sum_c p_c log p_model_c (DivideMix Sec. 3.3) with soft targets."""
    return -(F.log_softmax(logits, dim=1) * targets).sum(dim=1).mean()


def mse_probs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L_U: mean squared error between softmax and guessed targets, averaged over samples
    and classes, i.e. 1/(C |U'|) sum ||p - p_model||^2 (MixMatch Eq. 4, the authors' code)."""
    return (F.softmax(logits, dim=1) - targets).pow(2).mean()


def uniform_prior_penalty(logits: torch.Tensor) -> torch.Tensor:
    """L_reg = sum_c pi_c log(pi_c / mean_x p_model_c(x)), pi_c = 1/C (DivideMix Sec. 3.3):
    KL from the uniform prior to the batch-mean prediction over the mixed batch."""
    mean_p = F.softmax(logits, dim=1).mean(dim=0)
    num_classes = logits.shape[1]
    log_prior = -math.log(num_classes)
    log_mean = mean_p.clamp_min(torch.finfo(mean_p.dtype).tiny).log()
    return (math.exp(log_prior) * (log_prior - log_mean)).sum()


def negative_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Batch mean of sum_c p_c log p_c (= -H): DivideMix's warm-up confidence penalty for
    asymmetric noise (Sec. 3.3, after Pereyra et al. 2017); adding it maximises entropy."""
    log_p = F.log_softmax(logits, dim=1)
    return (log_p.exp() * log_p).sum(dim=1).mean()
