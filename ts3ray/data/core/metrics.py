"""Top-k accuracy (Table VI of the paper reports top-1 and top-5 on WebVision and ILSVRC12).

A sample counts as correct at k when its label is among the k largest logits. Ties at the
k-th place are broken by ``torch.topk`` (unspecified order); real logits practically never tie.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from ts3ray.data.core.batches import Batch
from ts3ray.errors import ConfigError


def _check(logits: torch.Tensor, targets: torch.Tensor, ks: Sequence[int]) -> None:
    if logits.dim() != 2 or targets.shape != (logits.shape[0],):
        raise ConfigError("logits", tuple(logits.shape), f"(N, C) logits with N = {targets.shape[0]} targets")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= logits.shape[1]:
            raise ConfigError("k", k, f"an integer in 1..{logits.shape[1]} (the number of classes)")


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = (1, 5)) -> torch.Tensor:
    """How many samples are correct at each k: int64 tensor (len(ks),) on the logits' device.

    No host sync: sum the counts over batches on the device and read them back once.
    """
    _check(logits, targets, ks)
    top = logits.topk(max(ks), dim=1).indices            # (N, kmax), best first
    hit_rank = (top == targets[:, None]).int()           # one 1 at the label's rank, if within kmax
    within = hit_rank.cumsum(dim=1)                      # 1 from the label's rank on
    return torch.stack([within[:, k - 1].sum() for k in ks]).to(torch.int64)


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int = 5) -> float:
    """Fraction of samples whose label is among their k largest logits."""
    if targets.numel() == 0:
        return float("nan")
    return float(topk_correct(logits, targets, (k,))[0]) / targets.numel()


@torch.no_grad()
def evaluate_topk(model: nn.Module, batches: Iterable[Batch], ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Top-k accuracies of ``model`` over evaluation batches (eval mode, restored afterwards)."""
    was_training = model.training
    model.eval()
    correct, total = None, 0
    for x, y, _ in batches:
        counts = topk_correct(model(x), y, ks)
        correct = counts if correct is None else correct + counts
        total += y.shape[0]
    model.train(was_training)
    if correct is None:
        return {k: float("nan") for k in ks}
    return {k: c / total for k, c in zip(ks, correct.tolist())}
