"""Stage losses and selection on a tiny batch with hand-computed values.

Batch of four 2-class samples: logits (2,0) y=0, (0,0) y=1, (0,3) y=0, (1,0) y=1.
For two classes with logit gap d in favour of the other class, CE = ln(1 + e^d).
"""
import math

import pytest
import torch

from ts3ray.method import losses as L

LOGITS = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 3.0], [1.0, 0.0]], dtype=torch.float64)
LABELS = torch.tensor([0, 1, 0, 1])
CE = [math.log(1 + math.exp(-2)), math.log(2), math.log(1 + math.exp(3)), math.log(1 + math.exp(1))]


def sigmoid(d):
    return 1 / (1 + math.exp(-d))


def binary_entropy(p):
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


H = [binary_entropy(sigmoid(2)), math.log(2), binary_entropy(sigmoid(3)), binary_entropy(sigmoid(1))]


def test_per_sample_cross_entropy_eq1():
    assert L.per_sample_ce(LOGITS, LABELS).tolist() == pytest.approx(CE, abs=1e-12)
    assert L.cross_entropy_loss(L.per_sample_ce(LOGITS, LABELS)).item() == pytest.approx(sum(CE) / 4)


def test_entropy_eq4():
    assert L.per_sample_entropy(LOGITS).tolist() == pytest.approx(H, abs=1e-12)


@pytest.mark.parametrize(
    "rate, expected",
    [
        (0.5, [True, True, False, False]),  # keep ceil(0.5*4)=2 smallest: samples 0 and 1
        (0.4, [True, True, False, True]),  # ceil(2.4)=3: adds sample 3 (CE 1.31 < 3.05)
        (0.25, [True, True, False, True]),  # exactly 3, no float round-up to 4
        (0.0, [True, True, True, True]),
    ],
)
def test_small_loss_split_eq2(rate, expected):
    ce = L.per_sample_ce(LOGITS, LABELS)
    assert L.small_loss_mask(ce, rate).tolist() == expected


def test_small_loss_count_follows_the_paper_not_int():
    assert L.small_loss_count(256, 0.4) == 154  # |B'| >= 153.6; int() would give 153
    assert L.small_loss_count(10, 0.2) == 8


def test_semi_supervised_loss_eq5():
    peer_clean = torch.tensor([False, True, False, True])
    loss = L.semi_supervised_loss(L.per_sample_ce(LOGITS, LABELS), LOGITS, peer_clean, lam=0.5)
    expected = (CE[1] + CE[3]) / 2 + 0.5 * (H[0] + H[2]) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    no_entropy = L.semi_supervised_loss(
        L.per_sample_ce(LOGITS, LABELS), LOGITS, peer_clean, lam=0.5, use_entropy=False
    )
    assert no_entropy.item() == pytest.approx((CE[1] + CE[3]) / 2, abs=1e-12)


def test_empty_subset_terms_vanish():
    nobody = torch.zeros(4, dtype=torch.bool)
    loss = L.semi_supervised_loss(L.per_sample_ce(LOGITS, LABELS), LOGITS, nobody, lam=1.0)
    assert loss.item() == pytest.approx(sum(H) / 4, abs=1e-12)  # only the entropy term


@pytest.mark.parametrize(
    "tau, relabeled, pseudo_ce",
    [
        # large-loss set {2, 3}; max p: sigmoid(3)=0.953 (class 1), sigmoid(1)=0.731 (class 0)
        (0.7, [False, False, True, True], [math.log(1 + math.exp(-3)), math.log(1 + math.exp(-1))]),
        (0.8, [False, False, True, False], [math.log(1 + math.exp(-3))]),
        (0.99, [False, False, False, False], []),
    ],
)
def test_relabel_and_refinement_loss_eq6_eq7(tau, relabeled, pseudo_ce):
    ce = L.per_sample_ce(LOGITS, LABELS)
    clean = L.small_loss_mask(ce, 0.5)
    pseudo, mask = L.relabel(LOGITS, clean, tau)
    assert mask.tolist() == relabeled
    assert pseudo.tolist() == [0, 0, 1, 0]  # argmax (ties -> first class)
    loss = L.refinement_loss(ce, LOGITS, clean, pseudo, mask, gamma=0.5)
    relabel_term = sum(pseudo_ce) / len(pseudo_ce) if pseudo_ce else 0.0
    assert loss.item() == pytest.approx((CE[0] + CE[1]) / 2 + 0.5 * relabel_term, abs=1e-12)


def test_gradients_flow_only_through_selected_terms():
    logits = LOGITS.clone().requires_grad_(True)
    ce = L.per_sample_ce(logits, LABELS)
    clean = torch.tensor([True, False, False, False])
    L.semi_supervised_loss(ce, logits, clean, lam=0.0).backward()
    assert logits.grad[1:].abs().sum().item() == 0.0
    assert logits.grad[0].abs().sum().item() > 0.0


class _LogitsAsData:
    """The GMM selector reads per-sample CE of `net(x)`; with nn.Identity, x are the logits."""

    device = torch.device("cpu")

    def __init__(self, logits, labels):
        self.logits, self.labels = logits, labels

    def train_eval_batches(self):
        yield self.logits[:5], self.labels[:5]
        yield self.logits[5:], self.labels[5:]


def test_gmm_division_separates_small_from_large_losses():
    from torch import nn

    from ts3ray.method.selection import GMMSelector

    # 6 confidently right (CE ~ 0.0025-0.018), 4 confidently wrong (CE ~ 4-6)
    gaps = [6.0, 5.0, 4.5, 5.5, 4.0, 6.0, -4.0, -5.0, -6.0, -4.5]
    logits = torch.tensor([[g, 0.0] for g in gaps])
    labels = torch.zeros(10, dtype=torch.long)
    selector = GMMSelector(seed=0)
    selector.begin_pass({"S": nn.Identity()}, _LogitsAsData(logits, labels))
    idx = torch.tensor([0, 6, 3, 9])
    assert selector.clean_mask("S", torch.zeros(4), idx).tolist() == [True, False, True, False]
    assert selector.masks["S"].tolist() == [True] * 6 + [False] * 4
