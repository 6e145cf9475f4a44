"""The epoch of the one-network robust-loss methods (ce, sce, mae, apl): S minimises the
batch mean of the method's per-sample loss over every sample, no selection."""
from __future__ import annotations

from typing import Any, Callable

import torch

from ts3ray.method.base import EpochContext, Net

PerSampleLoss = Callable[[Any, torch.Tensor, torch.Tensor], torch.Tensor]  # (options, logits, y)

ONE_NETWORK_WHY = ("one network: the TS3 paper (Sec. IV-C-4) trains only S for SCE, MAE, APL, "
                   "ITLM")


def robust_epoch(per_sample: PerSampleLoss) -> Callable[[dict[str, Net], EpochContext], None]:
    """The epoch step of a method whose loss is `per_sample(options, logits, labels)`."""

    def epoch(nets: dict[str, Net], ctx: EpochContext) -> None:
        net = nets["S"]
        net.model.train()
        for x, y, _ in ctx.data.batches.epoch(ctx.key):
            loss = per_sample(ctx.options, net.model(x), y).mean()
            net.step(loss)
            ctx.stats.add_loss("S", loss)

    return epoch
