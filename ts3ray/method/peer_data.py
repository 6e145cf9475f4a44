"""Data plumbing the competitor methods need beyond `DeviceBatches.epoch(key)`.

* Seeded random streams: every draw of a method comes from a CPU generator seeded from
  (seed, key, purpose) (:func:`generator`, :func:`numpy_rng`); the global RNG is never used,
  so an epoch is reproducible from those integers alone (also after a resume).
* Batches over an index subset (ITLM's trimmed set, DivideMix's labelled and unlabelled sets)
  with one or more independently augmented views of the same samples (DivideMix's two
  views), gathered and augmented on the device in batch like `DeviceBatches.epoch`.
* Per-sample losses over the whole training set (ITLM's global selection, DivideMix's GMM)
  and the two-component GMM clean posterior.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ts3ray.data.core.batches import CROP_PADDING, DeviceBatches, crop_and_flip

# GMM of the per-sample losses as in DivideMix's eval_train (and ts3ray's GMMSelector)
GMM_KW = dict(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4)


def stream_seed(seed: int, key: int, purpose: str) -> int:
    """A 63-bit seed for the random stream `purpose` of epoch `key`; stable everywhere."""
    text = f"ts3ray.method:{seed}:{key}:{purpose}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def generator(seed: int, key: int, purpose: str) -> torch.Generator:
    """A fresh CPU torch generator for one stream of one epoch."""
    return torch.Generator().manual_seed(stream_seed(seed, key, purpose))


def numpy_rng(seed: int, key: int, purpose: str) -> np.random.Generator:
    """A fresh numpy generator (for draws torch cannot seed locally, e.g. Beta)."""
    return np.random.default_rng(stream_seed(seed, key, purpose))


def view(batches: DeviceBatches, idx: torch.Tensor, gen: torch.Generator,
         shift: int = 0) -> torch.Tensor:
    """One view of samples `idx`: gathered on the device, randomly cropped and flipped (when
    the dataset augments, with the same crop+flip as `DeviceBatches.epoch`) and normalised.
    Two calls with the same generator give two independent views of the same samples. On data
    without augmentation, `shift` > 0 translates each view by up to `shift` pixels (zero
    padding, no flip); 0 leaves the views identical."""
    x = batches.x[idx]
    if batches.augment or shift > 0:
        n = idx.shape[0]
        padding = CROP_PADDING if batches.augment else shift
        offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=gen).to(x.device)
        flips = torch.randint(0, 2, (n,), generator=gen).bool().to(x.device)
        if not batches.augment:
            flips = torch.zeros_like(flips)
        x = crop_and_flip(x, offsets[:, 0], offsets[:, 1], flips, padding)
    # DeviceBatches keeps its normaliser private; using it keeps the pixels bit-identical
    # to the epoch batches (a public `DeviceBatches.normalize` would make this cleaner).
    return batches._normalize(x)


def shuffled(subset: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """`subset` in a seeded random order (the permutation is drawn on the CPU)."""
    return subset[torch.randperm(subset.shape[0], generator=gen).to(subset.device)]


def subset_batches(batches: DeviceBatches, subset: torch.Tensor, batch_size: int,
                   gen: torch.Generator, views: int = 1, shift: int = 0) -> Iterator[tuple]:
    """One pass over `subset` (sample indices on the device) in a seeded order, in batches of
    `batch_size` (the last one smaller): yields (view_1, ..., view_views, y, idx)."""
    order = shuffled(subset, gen)
    for start in range(0, order.shape[0], batch_size):
        idx = order[start:start + batch_size]
        yield (*(view(batches, idx, gen, shift) for _ in range(views)), batches.labels[idx], idx)


class CyclingBatches:
    """Endless batches over `subset`, reshuffled whenever a pass ends (DivideMix draws its
    unlabelled batches this way, restarting its loader when it runs out)."""

    def __init__(self, batches: DeviceBatches, subset: torch.Tensor, batch_size: int,
                 gen: torch.Generator):
        self.batches, self.subset, self.batch_size, self.gen = batches, subset, batch_size, gen
        self.order, self.pos = subset[:0], 0

    def next_indices(self) -> torch.Tensor:
        if self.pos >= self.order.shape[0]:
            self.order, self.pos = shuffled(self.subset, self.gen), 0
        idx = self.order[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx


@torch.no_grad()
def train_losses(model: nn.Module, data) -> torch.Tensor:
    """Per-sample CE of `model` on every training sample with its noisy label, in index
    order, without augmentation, in eval mode (as DivideMix's eval_train): a device tensor."""
    was_training = model.training
    model.eval()
    losses = torch.cat([F.cross_entropy(model(x), y, reduction="none")
                        for x, y in data.train_eval_batches()])
    model.train(was_training)
    return losses


def gmm_clean_probability(losses: torch.Tensor, seed: int) -> torch.Tensor:
    """Posterior of the low-mean component of a 2-component GMM fitted to the min-max
    normalised losses (DivideMix Sec. 3.2, "co-divide by loss modeling"); one host transfer.
    The authors' GMM is unseeded; here `random_state` is the seed. Returns a float32 CPU
    tensor, so that splitting it into index sets needs no further device sync."""
    from sklearn.mixture import GaussianMixture

    values = losses.detach().double().cpu().numpy()
    spread = values.max() - values.min()
    normalised = ((values - values.min()) / (spread if spread > 0 else 1.0)).reshape(-1, 1)
    gmm = GaussianMixture(random_state=seed % 2**32, **GMM_KW).fit(normalised)
    clean = int(np.argmin(gmm.means_.ravel()))
    posterior = gmm.predict_proba(normalised)[:, clean]
    return torch.from_numpy(posterior).to(torch.float32)
