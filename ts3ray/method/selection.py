"""Clean/noisy division of a batch: by a known rate (Eq. 2) or by a GMM (unknown eps).

A selector is asked once at the start of every training pass (`begin_pass`) and then per
batch (`clean_mask`). The rate selector needs nothing up front; the GMM selector fits a
two-component Gaussian mixture to each network's per-sample losses over the whole training
set (DivideMix style: min-max normalised CE, clean = posterior of the low-mean component
> 0.5) and then looks the batch up by sample index. In alternate learning the peer whose
division is used is fixed during the pass, so its division is exact for that pass; where a
network selects for itself while training (refinement, `own_small_loss`, S's label
precision) the division is the one from the start of the pass, as DivideMix divides once
per epoch.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ts3ray.method.losses import per_sample_ce, small_loss_mask


class RateSelector:
    """Eq. 2 with r = eps (or eps/2 for asymmetric noise)."""

    def __init__(self, rate: float):
        self.rate = rate

    def begin_pass(self, nets: dict[str, nn.Module], data) -> None:
        return None

    def clean_mask(self, name: str, losses: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return small_loss_mask(losses.detach(), self.rate)


class GMMSelector:
    """The paper's unknown-eps setting (Sec. IV-C 2, after DivideMix)."""

    def __init__(self, seed: int = 0, threshold: float = 0.5):
        self.seed, self.threshold = seed, threshold
        self.masks: dict[str, torch.Tensor] = {}

    def begin_pass(self, nets: dict[str, nn.Module], data) -> None:
        self.masks = {name: self._divide(net, data) for name, net in nets.items()}

    def clean_mask(self, name: str, losses: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return self.masks[name][idx]

    @torch.no_grad()
    def _divide(self, net: nn.Module, data) -> torch.Tensor:
        from sklearn.mixture import GaussianMixture

        was_training = net.training
        net.eval()
        losses = torch.cat(
            [per_sample_ce(net(x), y) for x, y in data.train_eval_batches()]
        ).cpu().double().numpy()
        net.train(was_training)
        spread = losses.max() - losses.min()
        normalised = (losses - losses.min()) / (spread if spread > 0 else 1.0)
        gmm = GaussianMixture(
            n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=self.seed
        ).fit(normalised.reshape(-1, 1))
        clean_component = int(np.argmin(gmm.means_.ravel()))
        posterior = gmm.predict_proba(normalised.reshape(-1, 1))[:, clean_component]
        return torch.from_numpy(posterior > self.threshold).to(data.device)


def make_selector(config) -> RateSelector | GMMSelector:
    factories = {
        "rate": lambda: RateSelector(config.effective_select_rate()),
        "gmm": lambda: GMMSelector(seed=config.seed),
    }
    return factories[config.selection]()
