"""DivideMix (Li, Socher & Hoi, ICLR 2020) as one epoch step over device-resident data.

Epoch e < warmup_epochs: both networks take CE on every sample (+ the negative-entropy
confidence penalty for asymmetric noise). Later epochs (Algorithm 1):

1. co-divide: each network's per-sample CE over the whole training set (eval mode, no
   augmentation), min-max normalised, is fitted by a 2-component GMM; w_i = posterior of
   the low-mean component. Both divisions are made before either network trains.
2. each network in turn (S, then D) trains on the division made by its PEER's GMM: labelled
   set X = {w > p_threshold} with weights w, unlabelled set U = the rest; the peer is fixed
   (eval mode). Per labelled batch (B samples) and an unlabelled batch (B samples, drawn
   cycling through U), each with two augmented views:
   * label co-refinement: p = mean softmax of the learner over the two views of x,
     y' = Sharpen(w y + (1 - w) p, T);
   * label co-guessing: q = Sharpen(mean softmax of BOTH networks over both views of u, T);
   * MixMatch: lambda ~ Beta(alpha, alpha), lambda' = max(lambda, 1 - lambda), mix the 2B
     labelled and 2B unlabelled inputs/targets with a random permutation of all of them;
   * loss = L_X (soft CE on the mixed labelled part) + lambda_u(t) L_U (squared error on the
     mixed unlabelled part) + lambda_r L_reg (uniform prior on the mean prediction).
Test prediction: S alone (the TS3 paper reports DivideMix "without model ensemble"), or the
sum of both networks' logits (`evaluate="ensemble"`, the authors' test()).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ts3ray.method import peer_losses as PL
from ts3ray.method.losses import per_sample_ce
from ts3ray.method.peer_data import (CyclingBatches, generator, gmm_clean_probability,
                                     numpy_rng, stream_seed, subset_batches, train_losses, view)
from ts3ray.method.peers import PeerContext
from ts3ray.method.stages import record_selection
from ts3ray.method.schedules import linear_rampup
from ts3ray.method.stages import Net


def dividemix_epoch(nets: dict[str, Net], ctx: PeerContext) -> None:
    if ctx.epoch < ctx.options.warmup_epochs:
        warmup_epoch(nets, ctx)
        return
    # co-divide: both divisions from the networks as they are at the start of the epoch
    clean_prob = {name: gmm_clean_probability(train_losses(net.model, ctx.data),
                                              stream_seed(ctx.seed, ctx.key, f"gmm-{name}"))
                  for name, net in nets.items()}
    labelled_s = clean_prob["S"] > ctx.options.p_threshold  # S's division (label precision)
    everyone = torch.arange(labelled_s.shape[0])
    record_selection(ctx, labelled_s.to(ctx.data.device), everyone.to(ctx.data.device))
    for learner, peer in (("S", "D"), ("D", "S")):
        train_on_division(nets[learner], nets[peer], clean_prob[peer], ctx, learner)


def warmup_epoch(nets: dict[str, Net], ctx: PeerContext) -> None:
    """CE on every sample for both networks; + negative entropy for asymmetric noise (the
    authors' NegEntropy penalty, applied in their warmup() when noise_mode == 'asym')."""
    for net in nets.values():
        net.model.train()
    for x, y, _ in ctx.data.batches.epoch(ctx.key):
        for name, net in nets.items():
            logits = net.model(x)
            loss = per_sample_ce(logits, y).mean()
            if ctx.options.confidence_penalty:
                loss = loss + PL.negative_entropy(logits)
            net.step(loss)
            ctx.stats.add_loss(name, loss)


def train_on_division(learner: Net, peer: Net, clean_prob: torch.Tensor, ctx: PeerContext,
                      name: str) -> None:
    """One pass of `learner` over the labelled set of the PEER's division (co-divide)."""
    o, batches = ctx.options, ctx.data.batches
    labelled = torch.nonzero(clean_prob > o.p_threshold).squeeze(1)  # CPU: no device sync
    unlabelled = torch.nonzero(clean_prob <= o.p_threshold).squeeze(1)
    if labelled.numel() == 0:
        return  # nothing labelled: the learner sits this epoch out
    device = ctx.data.device
    weights = clean_prob.to(device)
    labelled, unlabelled = labelled.to(device), unlabelled.to(device)
    gen_x = generator(ctx.seed, ctx.key, f"dividemix-x-{name}")
    gen_u = generator(ctx.seed, ctx.key, f"dividemix-u-{name}")
    gen_mix = generator(ctx.seed, ctx.key, f"dividemix-mix-{name}")
    beta = numpy_rng(ctx.seed, ctx.key, f"dividemix-beta-{name}")
    cycle = None
    if unlabelled.numel():
        cycle = CyclingBatches(batches, unlabelled, batches.batch_size, gen_u)
    num_iter = labelled.numel() // batches.batch_size + 1  # the code's batches per epoch
    learner.model.train()
    peer.model.eval()  # the peer is fixed while the learner trains
    for b, (x1, x2, y, idx) in enumerate(subset_batches(batches, labelled, batches.batch_size,
                                                         gen_x, views=2)):
        u = None
        if cycle is not None:
            u_idx = cycle.next_indices()
            u = (view(batches, u_idx, gen_u), view(batches, u_idx, gen_u))
        inputs, targets = mixmatch_targets(learner.model, peer.model, x1, x2, y, weights[idx],
                                           u, ctx.num_classes, o.temperature)
        lam = PL.mixup_coefficient(float(beta.beta(o.alpha, o.alpha)))
        perm = torch.randperm(inputs.shape[0], generator=gen_mix).to(device)
        mixed_x = lam * inputs + (1 - lam) * inputs[perm]
        mixed_t = lam * targets + (1 - lam) * targets[perm]
        logits = learner.model(mixed_x)
        ramp = linear_rampup(ctx.epoch + b / num_iter, o.warmup_epochs, o.rampup_epochs)
        loss = dividemix_loss(logits, mixed_t, 2 * idx.shape[0], o.lambda_u * ramp, o.lambda_r)
        learner.step(loss)
        ctx.stats.add_loss(name, loss)
    peer.model.train()


@torch.no_grad()
def mixmatch_targets(model, peer_model, x1, x2, y, w, u, num_classes: int, temperature: float):
    """Inputs [x1, x2, u1, u2] and their targets [y', y', q, q] before mixup.

    y' = Sharpen(w y + (1 - w) mean(p(x1), p(x2)), T) with the learner's predictions (label
    co-refinement); q = Sharpen(mean of both networks' p over u1 and u2, T) (co-guessing).
    Like the authors' code, the learner runs these no-grad passes in train mode."""
    px = (F.softmax(model(x1), dim=1) + F.softmax(model(x2), dim=1)) / 2
    w = w.view(-1, 1).to(px.dtype)
    refined = PL.sharpen(w * F.one_hot(y, num_classes).to(px.dtype) + (1 - w) * px, temperature)
    if u is None:
        return torch.cat([x1, x2]), torch.cat([refined, refined])
    u1, u2 = u
    pu = sum(F.softmax(m(v), dim=1) for m in (model, peer_model) for v in (u1, u2)) / 4
    guessed = PL.sharpen(pu, temperature)
    return torch.cat([x1, x2, u1, u2]), torch.cat([refined, refined, guessed, guessed])


def dividemix_loss(logits: torch.Tensor, targets: torch.Tensor, n_labelled: int,
                   lambda_u: float, lambda_r: float) -> torch.Tensor:
    """L_X + lambda_u L_U + lambda_r L_reg over one mixed batch whose first `n_labelled`
    rows come from the labelled set."""
    loss = PL.soft_ce(logits[:n_labelled], targets[:n_labelled])
    if logits.shape[0] > n_labelled:
        loss = loss + lambda_u * PL.mse_probs(logits[n_labelled:], targets[n_labelled:])
    return loss + lambda_r * PL.uniform_prior_penalty(logits)
