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
sum of both networks' logits (`evaluate="ensemble"`, the authors' test(); on under `code`).

Published recipe (LiJunnan1992/DivideMix): CIFAR SGD lr 0.02 momentum 0.9 wd 5e-4, /10 at
epoch 150 of 300, batch 64; Clothing1M lr 0.002, wd 1e-3, /10 at 40 of 80, batch 32, warm-up 1
with the negative-entropy penalty, lambda_u 0 (its loss has no L_U), alpha 0.5 (its ImageNet-
pretrained ResNet-50 is not reproduced: no weights are downloaded, the run's architecture
starts from PyTorch's default init); WebVision lr 0.01, wd 5e-4, /10 at 40 of 80, batch 32,
warm-up 1, lambda_u 0, alpha 0.5. MNIST-like data is not in the paper: the nearest published setting
(CIFAR-10). On data without augmentation its two views are identical unless `view_shift`
translates them (ts3ray's documented choice: 0, so that no method sees an augmentation the
dataset's protocol does not have).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ts3ray.method import peer_losses as PL
from ts3ray.method.base import (TWO_NETWORKS_WHY, EpochContext, MethodDef, Net, Setting, Tunable,
                                check_prune, dataset_family, pruned_by_option, record_selection)
from ts3ray.method.losses import per_sample_ce
from ts3ray.method.options import check
from ts3ray.method.peer_data import (CyclingBatches, generator, gmm_clean_probability,
                                     numpy_rng, stream_seed, subset_batches, train_losses, view)
from ts3ray.method.protocols import Recipe
from ts3ray.method.schedules import linear_rampup

EVALUATIONS = ("single", "ensemble")


@dataclass(frozen=True)
class DivideMixOptions:
    warmup_epochs: int = 10  # CE warm-up of both nets (code: 10 CIFAR-10, 30 CIFAR-100)
    alpha: float = 4.0  # Beta(alpha, alpha) of mixup
    temperature: float = 0.5  # sharpening T
    lambda_u: float = 25.0  # weight of L_U (code default; per setting in defaults)
    rampup_epochs: float = 16.0  # code: lambda_u ramps linearly over 16 epochs after warm-up
    lambda_r: float = 1.0  # weight of the uniform-prior penalty L_reg
    p_threshold: float = 0.5  # clean if the GMM clean posterior > p_threshold
    confidence_penalty: bool = False  # warm-up CE + negative entropy (asymmetric noise)
    evaluate: str = "single"  # single: S alone (TS3 paper); ensemble: sum of both nets' logits
    view_shift: int = 0  # data without augmentation: views translated by up to N pixels
    prune: str = "S"  # S: D a dense peer | both: D pruned too


def dividemix_epoch(nets: dict[str, Net], ctx: EpochContext) -> None:
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


def warmup_epoch(nets: dict[str, Net], ctx: EpochContext) -> None:
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


def train_on_division(learner: Net, peer: Net, clean_prob: torch.Tensor, ctx: EpochContext,
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
                                                         gen_x, views=2, shift=o.view_shift)):
        u = None
        if cycle is not None:
            u_idx = cycle.next_indices()
            u = (view(batches, u_idx, gen_u, o.view_shift), view(batches, u_idx, gen_u, o.view_shift))
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


# -- settings ----------------------------------------------------------------------------------
def lambda_u_for(family: str, noise: str, noise_rate: float) -> float:
    """lambda_u from {0, 25, 50, 150} as DivideMix's Appendix B (Table 7) sets it: CIFAR-10
    sym 20% 0, 50-80% 25, 90% 50, asym 0; CIFAR-100 20% 25, >= 50% 150. Between tabulated
    levels (e.g. 40%) the nearest level's value; CIFAR-100 asym (not in the paper) follows
    CIFAR-10's asym rule 0; MNIST-like sets use the CIFAR-10 column; Clothing1M and
    WebVision 0 (Train_clothing1M.py, Train_webvision.py)."""
    if noise == "asym" or family in ("clothing1m", "webvision50"):
        return 0.0
    if family == "cifar100":
        return 25.0 if noise_rate < 0.35 else 150.0
    if noise_rate < 0.35:
        return 0.0
    return 25.0 if noise_rate < 0.85 else 50.0


WARMUP = {"mnist": 10, "cifar10": 10, "cifar100": 30, "clothing1m": 1, "webvision50": 1}
ALPHA = {"clothing1m": 0.5, "webvision50": 0.5}  # else the CIFAR runs' 4


def defaults(setting: Setting, overrides: dict) -> dict:
    family = dataset_family(setting.dataset)
    return dict(warmup_epochs=WARMUP[family], alpha=ALPHA.get(family, 4.0),
                lambda_u=lambda_u_for(family, setting.noise, setting.noise_rate),
                p_threshold=0.6 if setting.noise_rate >= 0.85 else 0.5,
                # CIFAR: for asymmetric noise only; Train_clothing1M.py: always
                confidence_penalty=setting.noise == "asym" or family == "clothing1m")


def recipes(protocol: str, setting: Setting) -> Recipe:
    family = dataset_family(setting.dataset)
    repo = "LiJunnan1992/DivideMix"
    if family == "clothing1m":
        recipe = Recipe(f"{repo} Train_clothing1M.py", lr=0.002, batch_size=32,
                        weight_decay=1e-3, milestones=(40 / 80,), init="torch_default")
    elif family == "webvision50":
        recipe = Recipe(f"{repo} Train_webvision.py", lr=0.01, batch_size=32,
                        weight_decay=5e-4, milestones=(40 / 80,), init="torch_default")
    else:
        nearest = "" if family in ("cifar10", "cifar100") else " (nearest published: CIFAR-10)"
        recipe = Recipe(f"{repo} Train_cifar.py{nearest}", lr=0.02, batch_size=64,
                        weight_decay=5e-4, milestones=(150 / 300,), init="torch_default")
    if protocol == "code":
        return dataclasses.replace(recipe, options=dict(evaluate="ensemble"))
    return recipe


def check_options(o: DivideMixOptions, setting: Setting) -> None:
    check(o.warmup_epochs >= 0, "warmup_epochs", o.warmup_epochs, "an integer >= 0")
    check(o.warmup_epochs < setting.epochs, "warmup_epochs", o.warmup_epochs,
          f"fewer than the level's epochs={setting.epochs} (a warm-up as long as the level "
          "leaves no DivideMix epoch)")
    check(o.alpha > 0, "alpha", o.alpha, "a positive number (Beta(alpha, alpha))")
    check(o.temperature > 0, "temperature", o.temperature, "a positive number")
    for key in ("lambda_u", "lambda_r", "rampup_epochs"):
        check(getattr(o, key) >= 0, key, getattr(o, key), "a number >= 0")
    check(0.0 <= o.p_threshold < 1.0, "p_threshold", o.p_threshold, "a number in [0, 1)")
    check(o.evaluate in EVALUATIONS, "evaluate", o.evaluate, "single or ensemble")
    check(0 <= o.view_shift <= 8, "view_shift", o.view_shift, "an integer in [0, 8] (pixels)")
    check_prune(o)


def evaluated(o: DivideMixOptions) -> tuple[str, ...]:
    return ("S", "D") if o.evaluate == "ensemble" else ("S",)


def stage(epoch: int, o: DivideMixOptions) -> str | None:
    return "warmup" if epoch < o.warmup_epochs else None


METHOD = MethodDef(
    name="dividemix", paper="Li, Socher & Hoi, DivideMix, ICLR 2020", networks=("S", "D"),
    options=DivideMixOptions, epoch=dividemix_epoch, recipes=recipes, defaults=defaults,
    stage=stage, check=check_options, pruned=pruned_by_option, evaluated=evaluated,
    needs_resident_data=True, tunables=(Tunable("lambda_u", 0.0, 150.0),),
    why_pruned=TWO_NETWORKS_WHY, notes=("selects by GMM, not by the rate r",))
