"""One training epoch of each stage of Algorithm 1, over device-resident batches.

Each stage function takes the `Pair` of networks being trained and an `EpochContext`, runs
one epoch, and adds its statistics to `ctx.stats` as device tensors (read back once per
epoch, never per batch). Every network does exactly one forward pass per batch; that pass
feeds both its sample selection and its loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ts3ray import pruning
from ts3ray.method import losses as L
from ts3ray.method.variants import ALTERNATE, COTEACH, REFINE, WARMUP, Variant


@dataclass
class Net:
    """A network with its optimiser and (for sparse networks) its pruning masks."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    masks: dict[str, torch.Tensor] | None = None

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.masks is not None:
            pruning.apply_masks(self.model, self.masks)  # pruned weights stay exactly zero


@dataclass
class Pair:
    """S and (unless the variant trains S alone) its peer D."""

    sparse: Net
    dense: Net | None

    def nets(self) -> dict[str, Net]:
        return {"S": self.sparse} | ({"D": self.dense} if self.dense is not None else {})


@dataclass
class EpochStats:
    """Per-epoch sums kept on the device."""

    device: torch.device
    sums: dict[str, torch.Tensor] = field(default_factory=dict)

    def add(self, key: str, value: torch.Tensor) -> None:
        value = value.detach().to(torch.float64)
        self.sums[key] = self.sums[key] + value if key in self.sums else value

    def add_loss(self, name: str, loss: torch.Tensor) -> None:
        """Sum of a network's batch losses and their count, for the epoch's mean loss."""
        self.add(f"loss_{name}", loss)
        self.add(f"steps_{name}", torch.ones((), device=loss.device))

    def read(self) -> dict[str, float]:
        """One host transfer for all statistics of the epoch."""
        if not self.sums:
            return {}
        keys = list(self.sums)
        values = torch.stack([self.sums[k] for k in keys]).cpu().tolist()
        return dict(zip(keys, values))


@dataclass
class EpochContext:
    config: object  # RunConfig
    variant: Variant
    data: object  # TrainingData: batches, labels, is_clean
    selector: object  # RateSelector | GMMSelector
    key: int  # seeds this epoch's batch order and augmentation
    stage_epoch: int  # 0-based epoch within the current stage
    stats: EpochStats


def record_selection(ctx, selected: torch.Tensor, idx: torch.Tensor) -> None:
    """Label precision of a selection (Fig. 11 a/b; the `label_precision` column): the share
    of selected samples whose noisy label is the true one, among the samples whose true label
    the dataset knows (all, for synthetic noise). `ctx`: any epoch context with stats and data."""
    known = selected & ctx.data.label_known[idx]
    ctx.stats.add("selected", known.sum())
    ctx.stats.add("selected_correct", (known & ctx.data.label_is_clean[idx]).sum())


def warmup_epoch(pair: Pair, ctx: EpochContext) -> None:
    """Stage 1: cross-entropy on every sample for both networks (Eq. 1)."""
    for x, y, idx in ctx.data.batches.epoch(ctx.key):
        for name, net in pair.nets().items():
            loss = L.cross_entropy_loss(L.per_sample_ce(net.model(x), y))  # Eq. 1
            net.step(loss)
            ctx.stats.add_loss(name, loss)


def _learn_from_peer(learner: str, teacher: str, pair: Pair, ctx: EpochContext) -> None:
    """One pass over the data updating `learner` with `teacher` fixed (Eq. 3-5)."""
    nets = pair.nets()
    student, peer = nets[learner], nets[teacher]
    cfg = ctx.config
    self_taught = student is peer  # the `sparse` design: S selects for itself
    ctx.selector.begin_pass({n: net.model for n, net in nets.items()}, ctx.data)
    peer.model.eval()  # the fixed peer: no BN statistics updated, deterministic selection
    student.model.train()
    for x, y, idx in ctx.data.batches.epoch(ctx.key):
        logits = student.model(x)
        ce = L.per_sample_ce(logits, y)
        if self_taught:
            peer_ce = ce.detach()
        else:
            with torch.no_grad():
                peer_ce = L.per_sample_ce(peer.model(x), y)
        peer_clean = ctx.selector.clean_mask(teacher, peer_ce, idx)  # Eq. 2 by the peer
        loss = L.semi_supervised_loss(ce, logits, peer_clean, cfg.lam, ctx.variant.entropy)
        if cfg.own_small_loss and not self_taught:  # official-code option
            own_clean = ctx.selector.clean_mask(learner, ce.detach(), idx)
            loss = loss + L.masked_mean(ce, own_clean)
        student.step(loss)
        s_clean = peer_clean if teacher == "S" else None
        if learner == "S" and s_clean is None:
            s_clean = ctx.selector.clean_mask("S", ce.detach(), idx)
        record_selection(ctx, s_clean, idx)
        ctx.stats.add_loss(learner, loss)
    peer.model.train()


def alternate_epoch(pair: Pair, ctx: EpochContext) -> None:
    """Stage 2, semi-supervised alternate learning (Algorithm 1, lines 'Fix D ... Fix S').

    Paper (`alternate=pass`): one pass updating S with D fixed, then one pass updating D
    with S fixed, over the same mini-batches. Official code (`alternate=parity`): even
    stage epochs update S, odd ones update D. `order=dense_first` swaps the roles.
    """
    if pair.dense is None:  # `sparse` design: S teaches itself, one pass
        _learn_from_peer("S", "S", pair, ctx)
        return
    first, second = ("S", "D") if ctx.config.order == "sparse_first" else ("D", "S")
    if ctx.config.alternate == "parity":
        learner = first if ctx.stage_epoch % 2 == 0 else second
        _learn_from_peer(learner, "D" if learner == "S" else "S", pair, ctx)
        return
    for learner in (first, second):
        _learn_from_peer(learner, "D" if learner == "S" else "S", pair, ctx)


def coteach_epoch(pair: Pair, ctx: EpochContext) -> None:
    """Table X's `dense+sparse (co-teaching)`: both nets updated together on every batch,
    each on the samples its peer ranks small-loss by its own CE (Co-teaching, no entropy)."""
    nets = pair.nets()
    ctx.selector.begin_pass({n: net.model for n, net in nets.items()}, ctx.data)
    for x, y, idx in ctx.data.batches.epoch(ctx.key):
        logits = {n: net.model(x) for n, net in nets.items()}
        ce = {n: L.per_sample_ce(v, y) for n, v in logits.items()}
        clean = {n: ctx.selector.clean_mask(n, ce[n].detach(), idx) for n in nets}
        for name, peer in (("S", "D"), ("D", "S")):
            loss = L.masked_mean(ce[name], clean[peer])  # Eq. 3 with the peer's selection
            nets[name].step(loss)
            ctx.stats.add_loss(name, loss)
        record_selection(ctx, clean["S"], idx)


def refine_epoch(pair: Pair, ctx: EpochContext) -> None:
    """Stage 3, label refinement: only S is updated (Eq. 6-7); D stays fixed."""
    sparse = pair.sparse
    ctx.selector.begin_pass({"S": sparse.model}, ctx.data)
    for x, y, idx in ctx.data.batches.epoch(ctx.key):
        logits = sparse.model(x)
        ce = L.per_sample_ce(logits, y)
        clean = ctx.selector.clean_mask("S", ce.detach(), idx)  # Eq. 2 by S itself
        pseudo, relabeled = L.relabel(logits, clean, ctx.config.tau)  # Eq. 6
        loss = L.refinement_loss(ce, logits, clean, pseudo, relabeled, ctx.config.gamma)  # Eq. 7
        sparse.step(loss)
        record_selection(ctx, clean, idx)
        ctx.stats.add("relabeled", relabeled.sum())
        known = relabeled & ctx.data.label_known[idx]  # relabel accuracy over known labels
        ctx.stats.add("relabeled_known", known.sum())
        ctx.stats.add("relabeled_correct", (known & (pseudo == ctx.data.true_y[idx])).sum())
        ctx.stats.add_loss("S", loss)


STAGES: dict[str, Callable[[Pair, EpochContext], None]] = {
    WARMUP: warmup_epoch,
    ALTERNATE: alternate_epoch,
    COTEACH: coteach_epoch,
    REFINE: refine_epoch,
}
