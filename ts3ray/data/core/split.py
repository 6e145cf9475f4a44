"""A seeded hold-out of the noisy training set, stratified by noisy label.

Choices (a search objective, an ASHA rung, a best epoch) must not look at test data. With
``val_fraction = f > 0`` a run holds out, in every class c of the *noisy* labels, round(f * n_c)
of its n_c samples (half rounded up), drawn by a seeded permutation; S and D train on the
rest and never see the held-out part. Accuracy on it is measured against its noisy labels.

Why noisy labels rank models like clean ones (symmetric noise, rate eps, C classes): a held-out
sample keeps its true label with probability 1 - eps and otherwise carries one of the C - 1
wrong labels uniformly, independently of the image. A model with clean accuracy a then agrees
with the noisy label with probability

    val_acc = a (1 - eps) + (1 - a) eps / (C - 1)
            = eps / (C - 1) + a (1 - eps C / (C - 1)),

an increasing affine function of a whenever eps < 1 - 1/C (the range ts3ray allows), so the
model with the higher noisy-validation accuracy has the higher expected clean accuracy. Under
asymmetric or pair-flip noise the slope depends on the class, and the ranking holds only in
expectation over classes of similar accuracy.
"""
from __future__ import annotations

import math

import torch


def holdout_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, held-out indices), both sorted int64 and disjoint, covering all samples.

    Per class of ``labels``, floor(f * n_c + 0.5) samples are held out. The draw depends only
    on (labels, fraction, seed), never on the global RNG.
    """
    labels = labels.cpu()
    n = labels.shape[0]
    if fraction <= 0:
        return torch.arange(n), torch.zeros(0, dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    held = []
    for c in torch.unique(labels).tolist():  # sorted, so the draw order is fixed
        members = (labels == c).nonzero().flatten()
        count = math.floor(fraction * members.numel() + 0.5)
        order = torch.randperm(members.numel(), generator=generator)
        held.append(members[order[:count]])
    val = torch.sort(torch.cat(held)).values
    keep = torch.ones(n, dtype=torch.bool)
    keep[val] = False
    return keep.nonzero().flatten(), val
