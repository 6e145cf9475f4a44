"""Seeded synthetic label noise from a transition matrix T (paper Sec. IV-A).

``T[i, j]`` is the probability that true class ``i`` is given label ``j``. Two ways to
draw noisy labels from T:

- ``convention="sample"`` (default): every label is drawn independently from row ``T[y]``.
  This is what the TS3-Net official code and Co-teaching do and what the paper describes
  ("each sample is independently assigned"), so results are comparable with its tables;
  the realised rate scatters around eps by about sqrt(eps(1-eps)/N).
- ``convention="exact"`` (SCE/APL style): in each class c exactly round(eps_c * n_c)
  samples (half rounded up) are flipped, eps_c = 1 - T[c, c], each to a target drawn from
  the off-diagonal part of row c; so the realised rate matches eps up to rounding.

All randomness comes from a ``torch.Generator`` seeded with ``seed``; the global RNG is
never touched.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ts3ray.errors import ConfigError

SYNTHETIC_KINDS = ("none", "sym", "asym", "pairflip")  # drawn from a transition matrix T here
NOISE_KINDS = (*SYNTHETIC_KINDS, "human")  # human: labels read from files (ts3ray.data.sources.human)
CONVENTIONS = ("sample", "exact")

# Asymmetric maps (source class -> the similar class it is flipped to), from the official code.
_MNIST_DIGITS = {7: 1, 2: 7, 5: 6, 6: 5, 3: 8}
ASYM_MAPS: dict[str, dict[int, int]] = {
    "mnist": _MNIST_DIGITS,
    "digits": _MNIST_DIGITS,  # the same ten digit classes
    "cifar10": {9: 1, 2: 0, 3: 5, 5: 3, 4: 7},  # truck->automobile, bird->airplane, cat<->dog, deer->horse
    "cifar100": {i: 5 * (i // 5) + (i + 1) % 5 for i in range(100)},  # next class in its block of 5
}


@dataclass(frozen=True)
class NoisyLabels:
    labels: torch.Tensor       # int64 (N,), the labels training sees
    is_noisy: torch.Tensor     # bool (N,), labels != true labels
    realized_rate: float       # fraction of all samples whose label changed
    transition: torch.Tensor   # float64 (C, C), the T the labels were drawn from


def _flip_map(mapping: dict[int, int], num_classes: int, rate: float) -> torch.Tensor:
    """T_ss = 1 - eps and T_st = eps for every source s -> target t; identity elsewhere."""
    t = torch.eye(num_classes, dtype=torch.float64)
    for source, target in mapping.items():
        t[source, source], t[source, target] = 1.0 - rate, rate
    return t


def _identity(num_classes: int, rate: float, dataset: str | None) -> torch.Tensor:
    return torch.eye(num_classes, dtype=torch.float64)


def _symmetric(num_classes: int, rate: float, dataset: str | None) -> torch.Tensor:
    # Sec. IV-A: T_ij = eps / (C - 1) for j != i (true class excluded), T_ii = 1 - eps
    t = torch.full((num_classes, num_classes), rate / (num_classes - 1), dtype=torch.float64)
    return t.fill_diagonal_(1.0 - rate)


def _asymmetric(num_classes: int, rate: float, dataset: str | None) -> torch.Tensor:
    # Sec. IV-A: T_ij = eps for one similar class j of each mapped class i
    mapping = ASYM_MAPS.get(dataset)
    if mapping is None:
        raise ConfigError("noise", "asym", f"asym has class maps only for datasets {', '.join(ASYM_MAPS)} "
                                           f"(dataset={dataset!r})")
    needed = 1 + max(max(mapping), max(mapping.values()))
    if num_classes < needed:
        raise ConfigError("noise", "asym", f"the {dataset} asym map needs >= {needed} classes, got {num_classes}")
    return _flip_map(mapping, num_classes, rate)


def _pairflip(num_classes: int, rate: float, dataset: str | None) -> torch.Tensor:
    return _flip_map({i: (i + 1) % num_classes for i in range(num_classes)}, num_classes, rate)


TRANSITIONS = {"none": _identity, "sym": _symmetric, "asym": _asymmetric, "pairflip": _pairflip}


def _validate(kind: str, rate: float, num_classes: int, convention: str) -> None:
    if kind == "human":
        raise ConfigError("noise", kind, f"one of {', '.join(SYNTHETIC_KINDS)} here: human labels are read from "
                                         f"files, not drawn (ts3ray.data.training_labels)")
    if kind not in NOISE_KINDS:
        raise ConfigError("noise", kind, f"one of {', '.join(NOISE_KINDS)}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError("num_classes", num_classes, "an integer >= 2")
    limit = 1.0 - 1.0 / num_classes
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < limit:
        raise ConfigError("noise_rate", rate, f"a number with 0 <= noise_rate < 1 - 1/C = {limit:.4g}")
    if convention not in CONVENTIONS:
        raise ConfigError("convention", convention, f"one of {', '.join(CONVENTIONS)}")


def transition_matrix(kind: str, num_classes: int, rate: float, dataset: str | None = None) -> torch.Tensor:
    """The float64 (C, C) row-stochastic transition matrix of a noise kind (``none``: identity)."""
    _validate(kind, rate, num_classes, "sample")
    return TRANSITIONS[kind](num_classes, float(rate), dataset)


def _draw(cdf_rows: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One class per row of cumulative probabilities (last column exactly 1)."""
    u = torch.rand(cdf_rows.shape[0], generator=gen, dtype=torch.float64)
    return (u[:, None] >= cdf_rows).sum(1).clamp_(max=cdf_rows.shape[1] - 1)


def _cdf(rows: torch.Tensor) -> torch.Tensor:
    cdf = rows.cumsum(-1)
    return cdf / cdf[..., -1:]  # x / x == 1 exactly, so u < 1 never reaches a zero-probability tail


def _sample_each(y: torch.Tensor, t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return _draw(_cdf(t)[y], gen)


def _flip_exact_count(y: torch.Tensor, t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    labels = y.clone()
    off_diagonal = t.clone().fill_diagonal_(0.0)
    for c in range(t.shape[0]):
        flip_prob = float(off_diagonal[c].sum())
        members = (y == c).nonzero().squeeze(1)
        count = math.floor(flip_prob * len(members) + 0.5)
        if count == 0:
            continue
        chosen = members[torch.randperm(len(members), generator=gen)[:count]]
        labels[chosen] = _draw(_cdf(off_diagonal[c]).expand(count, -1), gen)
    return labels


SAMPLERS = {"sample": _sample_each, "exact": _flip_exact_count}


def apply_label_noise(true_labels: torch.Tensor, num_classes: int, kind: str, rate: float, seed: int, *,
                      dataset: str | None = None, convention: str = "sample") -> NoisyLabels:
    """Corrupt ``true_labels`` with noise ``kind`` at rate eps = ``rate``.

    kinds: ``none`` (labels unchanged, T = I, rate ignored), ``sym`` (any other class,
    uniformly), ``asym`` (along the dataset's class map, see ASYM_MAPS), ``pairflip``
    (i -> i+1 mod C). ``convention`` is ``sample`` (default) or ``exact``; see the module
    docstring. Allowed rates: 0 <= rate < 1 - 1/C.
    """
    _validate(kind, rate, num_classes, convention)
    y = torch.as_tensor(true_labels).detach().cpu()
    if y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"true_labels must be a 1-D integer tensor, got {y.dtype} {tuple(y.shape)}")
    y = y.to(torch.int64)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"true_labels must lie in 0..{num_classes - 1}")
    t = TRANSITIONS[kind](num_classes, float(rate), dataset)
    gen = torch.Generator().manual_seed(int(seed))
    labels = SAMPLERS[convention](y, t, gen)
    is_noisy = labels != y
    realized = float(is_noisy.double().mean()) if y.numel() else 0.0
    return NoisyLabels(labels, is_noisy, realized, t)
