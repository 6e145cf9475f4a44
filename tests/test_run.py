"""The lottery run end to end on tiny real data (digits): stages, levels, determinism, resume."""
import io
import math

import pytest
import torch

from ts3ray.config import make_config
from ts3ray.method.variants import VARIANTS
from ts3ray.run import LotteryRun

TINY = dict(dataset="digits", noise="sym", noise_rate=0.4, epochs=6, e1=2, e2=2, rounds=0,
            batch_size=256, seed=0, device="cpu")
LETTER = {"warmup": "W", "alternate": "A", "refine": "R", "coteach": "C"}


def tiny(**changes):
    return make_config({**TINY, **changes})


def params(model):
    return [p.detach().clone() for p in model.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_variant_runs_exactly_its_stages(variant):
    run = LotteryRun(tiny(variant=variant))
    expected = [VARIANTS[variant].stage_at(e, 2, 2) for e in range(6)]
    for stage in expected:
        s_before = params(run.sparse_model)
        d_before = params(run.dense_model) if run.dense_model is not None else None
        record = run.train_epoch()
        assert record["stage"] == stage
        assert not same(s_before, params(run.sparse_model)), "S is trained in every stage"
        if d_before is not None:
            d_changed = not same(d_before, params(run.dense_model))
            assert d_changed == (stage != "refine"), f"D trained in {stage}: {d_changed}"
        if stage == "refine":
            assert record["relabel_count"] >= 0 and record["label_precision"] > 0
        if stage == "warmup":
            assert math.isnan(record["label_precision"]) and record["relabel_count"] == 0
    assert run.done
    assert (run.dense_model is None) == (variant == "sparse")


def test_every_level_is_recorded_with_its_sparsity():
    run = LotteryRun(tiny(epochs=2, e1=1, e2=1, rounds=3, prune_fraction=0.5))
    list(run.epochs())
    levels = run.level_rows
    assert [r["round"] for r in levels] == [0, 1, 2, 3]
    # eligible weights of lenet_300_100 on 8x8 digits, output layer excluded: 64*300 + 300*100
    eligible, remaining, expected = 64 * 300 + 300 * 100, 64 * 300 + 300 * 100, [0.0]
    for _ in range(3):
        remaining -= math.ceil(0.5 * remaining)
        expected.append(1 - remaining / eligible)
    assert [r["sparsity"] for r in levels] == pytest.approx(expected, abs=1e-12)
    assert [r["sparsity"] for r in levels] == pytest.approx([0, 0.5, 0.75, 0.875], abs=1e-4)
    nonzero = [r["nonzero_params"] for r in levels]
    assert nonzero == sorted(nonzero, reverse=True) and nonzero[0] > nonzero[-1]
    assert [r["global_epoch"] for r in run.epoch_rows] == list(range(1, 9))
    assert {r["round"]: r["epoch"] for r in run.epoch_rows} == {0: 2, 1: 2, 2: 2, 3: 2}


def test_surviving_weights_restart_from_their_initial_values():
    run = LotteryRun(tiny(epochs=1, e1=1, e2=0, rounds=1, prune_fraction=0.5))
    init = {k: v.clone() for k, v in run.init_states["S"].items()}
    run.train_epoch()  # level 0 ends: prune + reset
    mask = run.masks["S"]
    for name, weight in run.sparse_model.state_dict().items():
        if name in mask:
            assert torch.equal(weight, init[name] * mask[name])
        else:
            assert torch.equal(weight, init[name])
    for name, weight in run.dense_model.state_dict().items():
        assert torch.equal(weight, run.init_states["D"][name])


def rows_without_seconds(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def assert_same_rows(a, b):
    assert len(a) == len(b)
    for x, y in zip(rows_without_seconds(a), rows_without_seconds(b)):
        assert x.keys() == y.keys()
        for key in x:
            both_nan = isinstance(x[key], float) and math.isnan(x[key]) and math.isnan(y[key])
            assert both_nan or x[key] == y[key], key


@pytest.mark.parametrize("selection", ["rate", "gmm"])
def test_same_seed_same_numbers_and_resume_equals_uninterrupted(selection):
    config = tiny(rounds=1, selection=selection)
    whole = LotteryRun(config)
    list(whole.epochs())
    again = LotteryRun(config)
    list(again.epochs())
    assert_same_rows(whole.epoch_rows, again.epoch_rows)
    assert_same_rows(whole.level_rows, again.level_rows)

    first = LotteryRun(config)
    for _ in range(7):  # stop inside level 1, after the prune/reset
        first.train_epoch()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed = LotteryRun(config)
    resumed.load_state_dict(state)
    list(resumed.epochs())
    assert_same_rows(whole.epoch_rows, resumed.epoch_rows)
    assert_same_rows(whole.level_rows, resumed.level_rows)


def test_different_seed_different_numbers():
    a, b = LotteryRun(tiny(epochs=2, e1=1, e2=1)), LotteryRun(tiny(epochs=2, e1=1, e2=1, seed=1))
    list(a.epochs()), list(b.epochs())
    assert a.epoch_rows[-1]["acc_sparse"] != b.epoch_rows[-1]["acc_sparse"] or \
        a.epoch_rows[-1]["loss_sparse"] != b.epoch_rows[-1]["loss_sparse"]


def test_label_precision_and_relabel_accuracy_are_fractions_of_true_labels():
    run = LotteryRun(tiny(epochs=4, e1=1, e2=1))
    list(run.epochs())
    clean_rate = run.data.label_is_clean.double().mean().item()
    for row in run.epoch_rows[1:]:
        assert 0.0 <= row["label_precision"] <= 1.0
    # small-loss selection after warm-up picks clean labels more often than chance
    assert run.epoch_rows[-1]["label_precision"] > clean_rate
    refine = [r for r in run.epoch_rows if r["stage"] == "refine"]
    assert all(r["relabel_count"] > 0 and 0 <= r["relabel_accuracy"] <= 1 for r in refine)


def test_sparse_sparse_prunes_both_networks():
    run = LotteryRun(tiny(variant="sparse+sparse", epochs=1, e1=1, e2=0, rounds=1))
    list(run.epochs())
    assert set(run.masks) == {"S", "D"}
    dense_weights = run.dense_model.state_dict()
    removed = sum(int((~m).sum()) for m in run.masks["D"].values())
    assert removed > 0 and all(
        torch.all(dense_weights[k][~m] == 0) for k, m in run.masks["D"].items()
    )


def test_parity_alternation_updates_one_network_per_epoch():
    """Official-code option: even alternate epochs update S only, odd ones D only."""
    run = LotteryRun(tiny(epochs=3, e1=1, e2=2, alternate="parity"))
    run.train_epoch()  # warm-up
    for learner in ("S", "D"):
        before = {"S": params(run.sparse_model), "D": params(run.dense_model)}
        assert run.train_epoch()["stage"] == "alternate"
        after = {"S": params(run.sparse_model), "D": params(run.dense_model)}
        assert {n for n in before if not same(before[n], after[n])} == {learner}


def test_own_small_loss_option_changes_training():
    plain = LotteryRun(tiny(epochs=2, e1=1, e2=1))
    extra = LotteryRun(tiny(epochs=2, e1=1, e2=1, own_small_loss=True))
    list(plain.epochs()), list(extra.epochs())
    assert plain.epoch_rows[0]["loss_sparse"] == extra.epoch_rows[0]["loss_sparse"]  # warm-up
    assert extra.epoch_rows[1]["loss_sparse"] > plain.epoch_rows[1]["loss_sparse"]  # + own CE


def test_dense_first_order_trains_d_before_s():
    s_first = LotteryRun(tiny(epochs=2, e1=1, e2=1))
    d_first = LotteryRun(tiny(epochs=2, e1=1, e2=1, order="dense_first"))
    list(s_first.epochs()), list(d_first.epochs())
    assert s_first.epoch_rows[0] == {**d_first.epoch_rows[0], "seconds": s_first.epoch_rows[0]["seconds"],
                                     "run_id": s_first.epoch_rows[0]["run_id"]}
    assert s_first.epoch_rows[1]["acc_dense"] != d_first.epoch_rows[1]["acc_dense"] or \
        s_first.epoch_rows[1]["loss_sparse"] != d_first.epoch_rows[1]["loss_sparse"]


def test_parity_keeps_alternating_across_stage_windows():
    """`semi` alternates through the warm-up window too: S, D, S, D, ... without a repeat."""
    run = LotteryRun(tiny(variant="semi", epochs=5, e1=2, e2=2, alternate="parity"))
    learners = []
    for _ in range(5):
        before = {"S": params(run.sparse_model), "D": params(run.dense_model)}
        run.train_epoch()
        learners += [n for n in before if not same(before[n], params(run.sparse_model if n == "S" else run.dense_model))]
    assert learners == ["S", "D", "S", "D", "S"]
