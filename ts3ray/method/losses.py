"""The losses of Algorithm 1 as pure functions of logits (no training state).

Every reduction over a subset of the batch is a masked mean over the whole batch, so no
boolean indexing creates dynamically shaped tensors and nothing waits on the device
(no host sync in the hot loop).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def per_sample_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-y_i^T log f(x_i) for each sample: the summand of Eq. 1 and Eq. 3."""
    return F.cross_entropy(logits, labels, reduction="none")


def per_sample_entropy(logits: torch.Tensor) -> torch.Tensor:
    """-f(x_i)^T log f(x_i) for each sample: the summand of Eq. 4."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over `mask`; 0 when the mask is empty (the term then vanishes)."""
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def small_loss_count(batch_size: int, rate: float) -> int:
    """|B_k| of Eq. 2: the smallest size with |B'| >= (1 - eps)|B| (the paper's rule).

    The official code keeps int((1 - r)B), one fewer when (1 - r)B is fractional.
    """
    return min(batch_size, max(0, math.ceil((1.0 - rate) * batch_size - 1e-9)))


def small_loss_mask(losses: torch.Tensor, rate: float) -> torch.Tensor:
    """Eq. 2: the ceil((1 - r)|B|) samples with the smallest loss are 'clean' (labeled)."""
    keep = small_loss_count(losses.shape[0], rate)
    mask = torch.zeros_like(losses, dtype=torch.bool)
    if keep:
        # topk is stable enough for selection; ties broken by the kernel, deterministic on CPU
        mask[torch.topk(losses, keep, largest=False, sorted=False).indices] = True
    return mask


def cross_entropy_loss(ce: torch.Tensor) -> torch.Tensor:
    """Eq. 1: mean cross-entropy over the whole batch (warm-up stage)."""
    return ce.mean()


def semi_supervised_loss(
    ce: torch.Tensor,
    logits: torch.Tensor,
    peer_clean: torch.Tensor,
    lam: float,
    use_entropy: bool = True,
) -> torch.Tensor:
    """Eq. 5 = Eq. 3 (CE on the peer's small-loss set B_k')
    + lambda * Eq. 4 (entropy of own predictions on the peer's large-loss set B~_k')."""
    loss = masked_mean(ce, peer_clean)  # Eq. 3
    if use_entropy and lam > 0:
        loss = loss + lam * masked_mean(per_sample_entropy(logits), ~peer_clean)  # Eq. 4
    return loss


def relabel(logits: torch.Tensor, clean: torch.Tensor, tau: float, *, strict: bool = False):
    """Eq. 6: large-loss samples whose max predicted probability is >= tau get the argmax
    as pseudo-label (`strict`: > tau, the official code's test). Returns (pseudo_labels,
    relabel_mask); computed without gradient."""
    with torch.no_grad():
        confidence, pseudo = F.softmax(logits.detach(), dim=1).max(dim=1)
        confident = confidence > tau if strict else confidence >= tau
        return pseudo, (~clean) & confident


def refinement_loss(
    ce: torch.Tensor,
    logits: torch.Tensor,
    clean: torch.Tensor,
    pseudo: torch.Tensor,
    relabeled: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """Eq. 7: CE on S's own small-loss set + gamma * CE on the relabeled set B~'_S."""
    loss = masked_mean(ce, clean)
    if gamma > 0:
        loss = loss + gamma * masked_mean(per_sample_ce(logits, pseudo), relabeled)
    return loss


def refinement_loss_code(logits: torch.Tensor, labels: torch.Tensor, clean: torch.Tensor,
                         pseudo: torch.Tensor, relabeled: torch.Tensor,
                         weight: float) -> torch.Tensor:
    """The official code's form of Eq. 7 (`refine_loss=code`): cross-entropy applied to the
    softmax *outputs* (softmax twice, CE(softmax(f(x)), y)), its mean over S's small-loss
    set, plus `weight` (0.001, fixed) times the SUM over the relabeled set of the same
    twice-softmaxed CE against the pseudo-labels. Its gradient is bounded and vanishes for
    confident samples, so the refinement barely moves S."""
    probs = F.softmax(logits, dim=1)
    loss = masked_mean(F.cross_entropy(probs, labels, reduction="none"), clean)
    relabel_ce = F.cross_entropy(probs, pseudo, reduction="none")
    return loss + weight * (relabel_ce * relabeled.to(relabel_ce.dtype)).sum()
