"""TS3-Net's official-code behaviours as options, each changing exactly what it names, and
the per-level reporting columns: hand-computed values on tiny inputs."""
from __future__ import annotations

import math

import pytest
import torch

from ts3ray.config import make_config
from ts3ray.data import make_synthetic
from ts3ray.errors import ConfigError
from ts3ray.method import losses as L
from ts3ray.method import ts3net
from ts3ray.run import LotteryRun, tail_columns

# four 3-class samples whose logits are log-probabilities: softmax(logits) = P
P = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.8, 0.1, 0.1]],
                 dtype=torch.float64)
LOGITS = P.log()
Y = torch.tensor([0, 2, 2, 1])


def twice_softmax_ce(p_row: list[float], label: int) -> float:
    """CE(softmax(p), y) = -p_y + log sum_k exp(p_k): cross-entropy applied to probabilities."""
    return -p_row[label] + math.log(sum(math.exp(v) for v in p_row))


def test_code_refinement_loss_by_hand():
    clean = torch.tensor([True, True, False, False])  # samples 2, 3 are S's large-loss ones
    pseudo, relabeled = L.relabel(LOGITS, clean, tau=0.7, strict=True)
    # sample 2: max p 0.6 <= 0.7, not relabeled; sample 3: max p 0.8 > 0.7 -> class 0
    assert relabeled.tolist() == [False, False, False, True] and pseudo[3] == 0
    loss = L.refinement_loss_code(LOGITS, Y, clean, pseudo, relabeled, 0.001)
    rows = P.tolist()
    # clean mean over samples 0 and 1 of CE on the probabilities (softmax twice):
    # sample 0: -0.5 + log(e^.5 + 2 e^.25) = -0.5 + log 4.21683 = 0.939070, sample 1:
    # -0.3 + log(e^.1 + e^.6 + e^.3)
    clean_part = (twice_softmax_ce(rows[0], 0) + twice_softmax_ce(rows[1], 2)) / 2
    relabel_sum = twice_softmax_ce(rows[3], 0)  # a SUM over the relabeled set, weight 0.001
    assert loss.item() == pytest.approx(clean_part + 0.001 * relabel_sum, abs=1e-12)
    assert twice_softmax_ce(rows[0], 0) == pytest.approx(0.939070, abs=1e-6)
    # the paper's Eq. 7 on the same samples: plain CE, gamma times a MEAN
    paper = L.refinement_loss(L.per_sample_ce(LOGITS, Y), LOGITS, clean, pseudo, relabeled, 0.5)
    expected = (-math.log(0.5) - math.log(0.3)) / 2 + 0.5 * -math.log(0.8)
    assert paper.item() == pytest.approx(expected, abs=1e-12)


def test_strict_threshold_is_the_codes():
    clean = torch.tensor([False] * 4)
    _, at_least = L.relabel(LOGITS, clean, tau=0.6)  # paper: max p >= tau
    _, above = L.relabel(LOGITS, clean, tau=0.6, strict=True)  # code: max p > tau
    assert at_least.tolist() == [False, True, True, True]
    assert above.tolist() == [False, False, False, True]


def test_entropy_scale_is_one_over_the_classes():
    paper = make_config({"dataset": "synthetic"}, check_files=False)
    code = make_config({"dataset": "synthetic", "entropy": "class_mean"}, check_files=False)
    assert ts3net.entropy_scale(paper, 10) == 1.0
    assert ts3net.entropy_scale(code, 10) == pytest.approx(0.1)
    # Eq. 5 with lam * H / C: the entropy term of the large-loss samples is C times smaller
    peer_clean = torch.tensor([True, True, False, False])
    ce = L.per_sample_ce(LOGITS, Y)
    h = L.per_sample_entropy(LOGITS)
    full = L.semi_supervised_loss(ce, LOGITS, peer_clean, 0.5)
    scaled = L.semi_supervised_loss(ce, LOGITS, peer_clean, 0.5 * ts3net.entropy_scale(code, 3))
    base = (ce[0] + ce[1]) / 2
    assert full.item() == pytest.approx((base + 0.5 * (h[2] + h[3]) / 2).item(), abs=1e-12)
    assert scaled.item() == pytest.approx((base + 0.5 / 3 * (h[2] + h[3]) / 2).item(), abs=1e-12)


TINY = dict(dataset="synthetic", noise="sym", noise_rate=0.4, epochs=2, e1=1, e2=1, rounds=1,
            prune_fraction=0.5, device="cpu", seed=3)
NO_PRUNING = {k: v for k, v in TINY.items() if k != "prune_fraction"}  # rounds=0: refused


@pytest.fixture(scope="module")
def dataset():
    return make_synthetic(4, (1, 8, 8), n_train=96, n_test=32, seed=0)


@pytest.mark.parametrize("dense_reset", ["own", "from_sparse"])
def test_dense_reset_at_level_one(dataset, dense_reset):
    run = LotteryRun(make_config({**TINY, "dense_reset": dense_reset}, check_files=False),
                     dataset=dataset)
    init_s = {k: v.clone() for k, v in run.init_states["S"].items()}
    init_d = {k: v.clone() for k, v in run.init_states["D"].items()}
    run.train_epoch()
    run.train_epoch()  # level 0 ends: S pruned, both networks reset
    assert run.level == 1
    want = init_s if dense_reset == "from_sparse" else init_d
    for key, value in run.models["D"].state_dict().items():
        assert torch.equal(value, want[key]), key  # D is dense: no mask applied
    first = next(iter(init_s))
    assert not torch.equal(init_s[first], init_d[first])  # the two inits differ at all
    for key, value in run.models["S"].state_dict().items():  # S: its own init, masked
        masks = run.masks["S"]
        assert torch.equal(value, init_s[key] * masks[key] if key in masks else init_s[key])


def test_code_protocol_turns_every_behaviour_on_and_refuses_a_contradiction():
    code = make_config({**TINY, "protocol": "code"}, check_files=False)
    assert (code.refine_loss, code.dense_reset, code.entropy, code.own_small_loss,
            code.alternate) == ("code", "from_sparse", "class_mean", True, "parity")
    assert (code.lr, code.momentum, code.weight_decay, code.batch_size) == (0.1, 0.0, 0.0, 128)
    assert code.lam == 1.0  # the code's lambda
    with pytest.raises(ConfigError, match="refine_loss.*protocol=code"):
        make_config({**TINY, "protocol": "code", "refine_loss": "paper"}, check_files=False)
    # single behaviours under the paper's protocol: only what is named changes
    three = {**TINY, "epochs": 3}
    one = make_config({**three, "refine_loss": "code"}, check_files=False)
    assert (one.refine_loss, one.entropy, one.dense_reset) == ("code", "sum", "own")
    assert one.run_id != make_config(three, check_files=False).run_id


@pytest.mark.parametrize("values, key", [
    (dict(variant="warm", refine_loss="code"), "refine_loss"),
    (dict(variant="warm+alter", entropy="class_mean"), "entropy"),
    (dict(variant="sparse", dense_reset="from_sparse"), "dense_reset"),
    (dict(variant="sparse+sparse", dense_reset="from_sparse"), "dense_reset"),
    (dict(variant="sparse", own_small_loss=True), "own_small_loss"),
    (dict(method="ce", entropy="class_mean"), "entropy"),
    (dict(refine_loss="soft"), "refine_loss"),
])
def test_options_without_effect_are_refused(values, key):
    with pytest.raises(ConfigError) as err:
        make_config({**TINY, "epochs": 4, "e1": 1, "e2": 2, **values}, check_files=False)
    assert err.value.key == key and "\n" not in str(err.value)


def test_code_refinement_trains_and_counts_relabels(dataset):
    run = LotteryRun(make_config({**NO_PRUNING, "refine_loss": "code", "tau": 0.3, "rounds": 0,
                                  "epochs": 3, "e1": 1, "e2": 1}, check_files=False),
                     dataset=dataset)
    rows = list(run.epochs())
    assert rows[-1]["stage"] == "refine" and rows[-1]["relabel_count"] > 0
    assert math.isfinite(rows[-1]["loss_sparse"])


def test_tail_mean_by_hand_on_a_twelve_epoch_record():
    accs = [0.50, 0.60, 0.62, 0.70, 0.71, 0.72, 0.74, 0.73, 0.75, 0.76, 0.74, 0.78]
    rows = [{"acc_sparse": a, "acc_dense": 1 - a} for a in accs]
    out = tail_columns(rows, ("acc_sparse", "acc_dense"))
    tail = accs[2:]  # the last 10 of 12 epochs
    mean = sum(tail) / 10  # = 7.25 / 10
    assert mean == pytest.approx(0.725)
    std = math.sqrt(sum((a - mean) ** 2 for a in tail) / 9)
    assert out["acc_sparse_tail_mean"] == pytest.approx(0.725, abs=1e-12)
    assert out["acc_sparse_tail_std"] == pytest.approx(std, abs=1e-12)
    assert out["acc_dense_tail_mean"] == pytest.approx(1 - 0.725, abs=1e-12)
    short = tail_columns(rows[:1], ("acc_sparse",))  # a 1-epoch level: its one value, no std
    assert short["acc_sparse_tail_mean"] == 0.5 and math.isnan(short["acc_sparse_tail_std"])


def test_level_rows_carry_the_three_reporting_rules(dataset):
    run = LotteryRun(make_config({**NO_PRUNING, "val_fraction": 0.25, "epochs": 3, "e1": 1, "e2": 1,
                                  "rounds": 0}, check_files=False), dataset=dataset)
    epochs = list(run.epochs())
    level = run.level_rows[0]
    accs = [r["acc_sparse"] for r in epochs]
    vals = [r["val_acc_sparse"] for r in epochs]
    best = max(range(3), key=lambda i: (vals[i], -i))
    assert level["acc_sparse_last"] == accs[-1]
    assert level["acc_sparse_at_best_val"] == accs[best]
    assert level["acc_sparse_tail_mean"] == pytest.approx(sum(accs) / 3)
    dense_vals = [r["val_acc_dense"] for r in epochs]
    best_d = max(range(3), key=lambda i: (dense_vals[i], -i))
    assert level["acc_dense_at_best_val"] == epochs[best_d]["acc_dense"]
