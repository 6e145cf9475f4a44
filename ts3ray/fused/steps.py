"""The fused epoch steps: each is its unfused method's epoch (method/robust.py for ce,
method/ts3net.py's stages for ts3net) over a leading member axis K, statement for statement,
so that member k computes what its unfused run computes."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ts3ray.fused.functional import FusedNet, rowwise_masked_mean, rowwise_small_loss_mask
from ts3ray.method.losses import small_loss_count
from ts3ray.method import ts3net
from ts3ray.method.variants import ALTERNATE, REFINE, VARIANTS, WARMUP

Nets = dict[str, FusedNet]


def per_sample_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """losses.per_sample_ce per member: (K, B, C), (K, B) -> (K, B)."""
    k, b, c = logits.shape
    return F.cross_entropy(logits.reshape(k * b, c), labels.reshape(k * b),
                           reduction="none").view(k, b)


def per_sample_entropy(logits: torch.Tensor) -> torch.Tensor:
    """losses.per_sample_entropy per member (Eq. 4 summand): (K, B, C) -> (K, B)."""
    log_p = F.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1)


def _member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (K,) per-member constant in the loss's dtype."""
    return values.to(like.dtype)


# -- ce: the mean cross-entropy of every sample (robust.robust_epoch with ce_per_sample) --------
def ce_epoch(nets: Nets, ep) -> None:
    net = nets["S"].train()
    for x, y, _ in ep.batches():
        losses = per_sample_ce(net(x), y).mean(1)
        net.step(losses.sum())
        ep.add_loss("S", losses)


# -- ts3net: Algorithm 1's stages (ts3net.py) --------------------------------------------------
def _keep(ep, batch: int) -> int:
    return small_loss_count(batch, ep.config.effective_select_rate())  # Eq. 2, RateSelector


def warmup_epoch(nets: Nets, ep) -> None:
    """Stage 1 (Eq. 1): CE on every sample for S, then D, per batch."""
    for x, y, _ in ep.batches():
        for name, net in nets.items():
            losses = per_sample_ce(net(x), y).mean(1)
            net.step(losses.sum())
            ep.add_loss(name, losses)


def peer_batch_step(student: FusedNet, peer: FusedNet, x: torch.Tensor, y: torch.Tensor,
                    keep: int, weight: torch.Tensor | None):
    """One batch of Eq. 3-5 for every member, its update included: static shapes (`keep`
    is a Python int from the batch size), no value read back to the host, so it traces as
    one graph (tests/test_fused.py) and can be captured by CUDA graphs. Returns the (K,)
    losses, the peer's small-loss mask and the student's detached per-sample CE."""
    logits = student(x)
    ce = per_sample_ce(logits, y)
    with torch.no_grad():
        peer_ce = per_sample_ce(peer(x), y)
    peer_clean = rowwise_small_loss_mask(peer_ce, keep)  # Eq. 2 by the peer
    losses = rowwise_masked_mean(ce, peer_clean)  # Eq. 3
    if weight is not None:  # + lambda Eq. 4, each member's own lambda
        losses = losses + _member(weight, ce) * rowwise_masked_mean(
            per_sample_entropy(logits), ~peer_clean)
    student.step(losses.sum())
    return losses, peer_clean, ce.detach()


def _learn_from_peer(learner: str, teacher: str, nets: Nets, ep) -> None:
    """One pass updating `learner` with `teacher` fixed (Eq. 3-5), each member with its own
    lambda and the small-loss top-k of its own peer."""
    student, peer = nets[learner], nets[teacher]
    variant = VARIANTS[ep.config.variant]
    scale = ts3net.entropy_scale(ep.config, ep.num_classes)
    weight = ep.array.member_values["lam"] * scale
    any_entropy = any(c.lam * scale > 0 for c in ep.array.configs)  # unfused: lam > 0 only
    peer.eval()  # the fixed peer: BatchNorm by its running statistics, none updated
    student.train()
    entropy = variant.entropy and any_entropy  # + lambda Eq. 4 (lambda = 0 adds exactly 0)
    for x, y, idx in ep.batches():
        keep = _keep(ep, x.shape[1])
        losses, peer_clean, ce = peer_batch_step(student, peer, x, y, keep,
                                                 weight if entropy else None)
        s_clean = peer_clean if teacher == "S" else rowwise_small_loss_mask(ce, keep)
        ep.record_selection(s_clean, idx)
        ep.add_loss(learner, losses)
    peer.train()


def alternate_epoch(nets: Nets, ep) -> None:
    """Stage 2 (`alternate=pass`): a pass updating the first network, then the second."""
    first, second = ("S", "D") if ep.config.order == "sparse_first" else ("D", "S")
    for learner in (first, second):
        _learn_from_peer(learner, "D" if learner == "S" else "S", nets, ep)


def refine_epoch(nets: Nets, ep) -> None:
    """Stage 3 (Eq. 6-7): S alone, each member with its own tau and gamma."""
    sparse = nets["S"]
    tau, gamma = ep.array.member_values["tau"], ep.array.member_values["gamma"]
    for x, y, idx in ep.batches():
        logits = sparse(x)
        ce = per_sample_ce(logits, y)
        clean = rowwise_small_loss_mask(ce.detach(), _keep(ep, ce.shape[1]))
        with torch.no_grad():  # Eq. 6 (losses.relabel)
            confidence, pseudo = F.softmax(logits.detach(), dim=-1).max(dim=-1)
            relabeled = (~clean) & (confidence >= _member(tau, confidence)[:, None])
        losses = rowwise_masked_mean(ce, clean) + _member(gamma, ce) * rowwise_masked_mean(
            per_sample_ce(logits, pseudo), relabeled)  # Eq. 7
        sparse.step(losses.sum())
        ep.record_selection(clean, idx)
        ep.add("relabeled", relabeled.sum(1))
        known = relabeled & ep.array.label_known.gather(1, idx)
        ep.add("relabeled_known", known.sum(1))
        ep.add("relabeled_correct", (known & (pseudo == ep.array.true_y.gather(1, idx))).sum(1))
        ep.add_loss("S", losses)


TS3NET_STAGES = {WARMUP: warmup_epoch, ALTERNATE: alternate_epoch, REFINE: refine_epoch}


def ts3net_epoch(nets: Nets, ep) -> None:
    TS3NET_STAGES[ts3net.stage_at(ep.epoch, ep.config)](nets, ep)


FUSED_STEPS: dict[str, Callable[[Nets, object], None]] = {"ce": ce_epoch,
                                                          "ts3net": ts3net_epoch}
