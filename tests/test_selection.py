"""Choices judged on the right signal (no Ray): the validation hold-out, best-epoch columns,
the search space, comparable groups, choosing rules, the accuracy-sparsity front."""
from __future__ import annotations

import argparse
import logging
import math

import optuna
import pandas as pd
import pytest
import torch

from ts3ray.config import METHOD_PARAMS, RunConfig, make_config
from ts3ray.data import ImageDataset, load_dataset, make_synthetic
from ts3ray.data.core.split import holdout_split
from ts3ray.errors import ConfigError, UserError
from ts3ray.results.load import selection_notes
from ts3ray.results.pareto import fronts, pareto_front, sparsest_within
from ts3ray.run import LotteryRun, best_epoch_columns
from ts3ray.tune.cli import add_arguments, build
from ts3ray.tune.resources import TrialResources, concurrent_capacity
from ts3ray.tune.scheduler import ComparableGroup
from ts3ray.tune.search import SAMPLERS, MethodSpace
from ts3ray.tune.trainable import RunValues, TotalLevels

TINY = {"dataset": "digits", "epochs": 3, "e1": 1, "e2": 1, "rounds": 1}


def parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


# -- the hold-out ---------------------------------------------------------------------------

def test_holdout_is_disjoint_stratified_by_noisy_label_and_seeded():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 3)  # n_c = 10, 5, 3
    train, val = holdout_split(labels, 0.2, seed=7)
    # per class floor(0.2 n_c + 0.5): 2, 1, 1 (0.6 rounds up)
    assert labels[val].bincount(minlength=3).tolist() == [2, 1, 1]
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(18))
    again, other = holdout_split(labels, 0.2, seed=7)[1], holdout_split(labels, 0.2, seed=8)[1]
    assert torch.equal(val, again) and not torch.equal(val, other)
    assert holdout_split(labels, 0.0, seed=7)[1].numel() == 0


def test_run_trains_on_the_rest_and_scores_s_and_d_on_the_held_out_noisy_labels():
    config = make_config({**TINY, "val_fraction": 0.1})
    run = LotteryRun(config)
    dataset = load_dataset("digits", seed=0)
    n = dataset.train_x.shape[0]
    val = run.data.eval_sets["val"]
    train_idx, val_idx = holdout_split(run.noisy.labels, 0.1, seed=_val_seed(config))
    # the held-out images are exactly the drawn indices, with their NOISY labels
    held = list(val.batches())
    val_y = torch.cat([b.y for b in held])
    norm = dataset.train_x[val_idx].float().div(255).sub(dataset.mean[0]).div(dataset.std[0])
    assert torch.allclose(torch.cat([b.x for b in held]), norm)
    assert torch.equal(val_y, run.noisy.labels[val_idx])
    assert torch.equal(run.data.batches.x, dataset.train_x[train_idx])
    assert run.data.batches.num_samples == n - val.num_samples
    # one pass over the batches S and D train on holds every remaining sample exactly once
    seen = torch.cat([idx for _, _, idx in run.data.batches.epoch(0)])
    assert sorted(seen.tolist()) == list(range(n - val.num_samples))
    # per class of the noisy labels, round(0.1 n_c) held out
    counts = run.noisy.labels.bincount(minlength=10)
    assert val_y.bincount(minlength=10).tolist() == [math.floor(0.1 * c + 0.5) for c in counts]
    record = next(run.epochs())
    assert 0 < record["val_acc_sparse"] < 1 and 0 < record["val_acc_dense"] < 1
    assert math.isnan(record["clean_val_acc_sparse"])  # digits ships no clean val set
    for record in run.epochs():
        pass
    level = run.level_rows[0]
    assert level["val_samples"] == val.num_samples
    assert level["train_samples"] == n - val.num_samples


def _val_seed(config):
    from ts3ray.run import derive_seed

    return derive_seed(config.seed, "val")


def test_best_epoch_columns_take_the_first_epoch_of_the_highest_validation_accuracy():
    rows = [{"epoch": e, "val_acc_sparse": v, "acc_sparse": a}
            for e, v, a in [(1, 0.5, 0.80), (2, 0.7, 0.85), (3, 0.7, 0.90), (4, 0.6, 0.95)]]
    assert best_epoch_columns(rows, "val_acc_sparse", "val") == {
        "val_acc_sparse_last": 0.6, "val_acc_sparse_best": 0.7, "best_val_epoch": 2,
        "acc_sparse_at_best_val": 0.85}  # not 0.95, the max over test epochs
    none = [{"epoch": 1, "val_acc_sparse": math.nan, "acc_sparse": 0.9}]
    assert math.isnan(best_epoch_columns(none, "val_acc_sparse", "val")["acc_sparse_at_best_val"])


def test_a_dataset_clean_validation_set_is_scored_every_epoch():
    base = make_synthetic(num_classes=4, n_train=64, n_test=16, seed=0)
    extra = make_synthetic(num_classes=4, n_train=12, n_test=4, seed=1)
    dataset = ImageDataset(**{**base.__dict__, "val_x": extra.train_x, "val_y": extra.train_y})
    config = make_config({"dataset": "synthetic", "epochs": 2, "e1": 1, "e2": 1, "rounds": 0})
    run = LotteryRun(config, dataset=dataset)
    for record in run.epochs():
        assert 0 <= record["clean_val_acc_sparse"] <= 1
    level = run.level_rows[0]
    best = max(run.epoch_rows, key=lambda r: (r["clean_val_acc_sparse"], -r["epoch"]))
    assert level["acc_sparse_at_best_clean_val"] == best["acc_sparse"]


def test_val_fraction_is_checked_and_enters_the_run_id():
    with pytest.raises(ConfigError, match="val_fraction"):
        make_config({"val_fraction": 0.5})
    with pytest.raises(ConfigError, match="val_fraction"):
        make_config({"val_fraction": -0.1})
    assert make_config({"val_fraction": 0.1}).run_id != make_config({}).run_id
    assert make_config({"tau": "-0"}).run_id == make_config({"tau": "0"}).run_id


# -- the parameter registry and the search space --------------------------------------------

def test_the_registry_holds_the_paper_defaults_and_table_ix():
    defaults = RunConfig()
    for name, param in METHOD_PARAMS.items():
        if param.paper_default is not None:
            assert getattr(defaults, name) == param.paper_default
        assert param.table_ix_base in param.table_ix
    assert [METHOD_PARAMS[p].table_ix_base for p in METHOD_PARAMS] == [0.5, 0.7, 0.5, 20, 60]


@pytest.mark.parametrize("sampler", ["qmc", "tpe"])
def test_e2_parametrisation_keeps_the_schedule_and_samplers_need_no_fallback(sampler, caplog):
    space = MethodSpace(epochs=12)
    study = optuna.create_study(direction="maximize", sampler=SAMPLERS[sampler](0))
    derived = []
    with caplog.at_level(logging.WARNING, logger="optuna"):
        study.optimize(lambda t: (derived.append(space(t)), t.params["lam"])[1], n_trials=16)
    assert not [r for r in caplog.records if "independent" in r.getMessage()]
    assert all(t.params["e1"] + d["e2"] <= 12 and t.params["e1"] < 12
               for t, d in zip(study.trials, derived))


def test_an_e2_range_that_depends_on_e1_makes_qmc_fall_back(caplog):
    """The old parametrisation, for contrast: QMC samples E2 independently (randomly)."""
    def dependent(trial):
        e1 = trial.suggest_int("e1", 0, 11)
        return trial.suggest_int("e2", 0, 12 - e1)

    study = optuna.create_study(sampler=SAMPLERS["qmc"](0))
    with caplog.at_level(logging.WARNING, logger="optuna"):
        study.optimize(dependent, n_trials=16)
    assert [r for r in caplog.records if "independent" in r.getMessage()]


def test_groups_differ_in_everything_but_the_searched_parameters():
    group = ComparableGroup(searched=("lam", "tau"), run_values=RunValues({"seed": 0}))
    a = {"dataset": "digits", "lam": 0.0, "noise_rate": 0.4, "_sweep": "x"}
    assert group(a) == group({**a, "lam": 1.0, "tau": 0.3, "_sweep": "y"})
    assert group(a) != group({**a, "noise_rate": 0.2})
    assert group({"cell": {"prune_fraction": 0.3}, **a}) != group({"cell": {"prune_fraction": 0.6}, **a})


def test_concurrent_capacity_counts_live_nodes_and_nodes_the_autoscaler_may_add():
    nodes = [{"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0}},
             {"Alive": False, "Resources": {"CPU": 8.0, "GPU": 1.0}},
             {"Alive": True, "Resources": {"CPU": 2.0}}]
    request = TrialResources(cpu=2, gpu=0.25)
    # live GPU node: min(8 // 2, 1 // 0.25) = 4; the CPU node has no GPU share: 0
    assert concurrent_capacity(request, nodes) == 4
    assert concurrent_capacity(request, nodes, {"gpu": {"CPU": 8, "GPU": 1}}, {"gpu": 6}) == 4 + 24
    assert concurrent_capacity(TrialResources(cpu=1, gpu=0), nodes) == 8 + 2


# -- which sweeps choose, and on what (all checked before Ray starts) -------------------------

def test_choosing_sweeps_hold_out_validation_data_and_keep_every_cell_sweeps_do_not():
    plan, _ = build(parse(["search"]))
    assert plan.selected_on == "val" and plan.common["val_fraction"] == 0.1
    plan, opts = build(parse(["grid", "--scheduler", "asha", "epochs=4", "e1=1", "e2=1",
                              "--grid", "lam=0,1", "tau=0.5,0.9", "gamma=0.5"]))
    assert plan.selected_on == "val" and plan.common["val_fraction"] == 0.1
    assert plan.searched == ("lam", "tau") and len(plan.cells) == 4
    assert opts.scheduler == "asha" and opts.grace_period == 1
    plan, _ = build(parse(["grid", "--grid", "lam=0,1"]))
    assert plan.selected_on is None and plan.common["val_fraction"] == 0.0
    plan, _ = build(parse(["sensitivity"]))
    assert plan.selected_on is None and plan.common["val_fraction"] == 0.0
    plan, _ = build(parse(["search", "--objective", "test", "val_fraction=0"]))
    assert plan.selected_on == "test" and plan.common["val_fraction"] == 0.0
    # a dataset whose defaults hold out data keeps its own hold-out (MNIST: 1/6, 50,000 left)
    from ts3ray.config import MNIST_TRAIN_HOLDOUT
    from ts3ray.tune.plans import CHOOSING, full_config

    assert full_config({"dataset": "mnist", CHOOSING: 0.1},
                       check_files=False)["val_fraction"] == MNIST_TRAIN_HOLDOUT
    assert full_config({"dataset": "digits", CHOOSING: 0.1}, check_files=False)["val_fraction"] == 0.1


def test_grid_crosses_values_per_setting_and_seed():
    plan, _ = build(parse(["grid", "--settings", "digits:sym:0.2,digits:sym:0.6",
                           "--seeds", "0,1", "--grid", "lam=0,0.5,1", "tau=0.3,0.7",
                           "variant=full,warm"]))
    assert len(plan.cells) == 2 * 2 * 3 * 2 * 2
    assert plan.searched == ("lam", "tau")  # variant splits groups, it is not searched
    combos = {(c["noise_rate"], c["seed"], c["lam"], c["tau"], c["variant"]) for c in plan.cells}
    assert len(combos) == 48


@pytest.mark.parametrize("argv, message", [
    (["sensitivity", "--scheduler", "asha"], "--scheduler asha is not allowed for the sensitivity"),
    (["sparsity", "--scheduler", "asha"], "--scheduler asha is not allowed for the sparsity"),
    (["search", "val_fraction=0"], "val_fraction=0 is not allowed for a sweep that chooses"),
    (["grid", "--scheduler", "asha", "val_fraction=0", "--grid", "lam=0,1"],
     "val_fraction=0 is not allowed"),
    (["search", "--objective", "clean_val"], "digits ships no clean validation set"),
    (["sensitivity", "--objective", "val"], "--objective does not apply to the sensitivity"),
    (["search", "--seeds", "0,1"], "--seeds='0,1' is not allowed for a search"),
    (["search", "--grace-period", "2"], "--grace-period=2 is not allowed: 1..1"),
    (["search", "--reduction-factor", "1"], "--reduction-factor=1 is not allowed"),
    (["search", "--sampler", "cmaes"], "--sampler='cmaes' is not allowed"),
    (["search", "rounds=0"], "rounds=0: a trial has one IMP level"),
    (["search", "--max-concurrent", "0"], "--max-concurrent=0 is not allowed"),
    (["grid", "--grid", "lam=0,2"], "lam"),
    (["grid", "--grid", "lam"], "--grid item 'lam' is not allowed"),
    (["grid", "--grid", "lam=0", "lam=1"], "--grid lam is given twice"),
    (["grid", "--grid", "bogus=1,2"], "unknown key"),
    (["grid", "epochs=10", "--grid", "e1=5,8", "e2=4"], "e1+e2"),
])
def test_bad_sweep_options_are_one_line_before_ray(argv, message):
    with pytest.raises((UserError, ConfigError), match=message.replace("+", r"\+")
                       .replace("(", r"\(").replace(")", r"\)")):
        build(parse(argv))


# -- tables say what they were selected on; the accuracy-sparsity front ----------------------

def test_tables_built_from_a_test_selected_sweep_say_so():
    df = pd.DataFrame({"selected_on": ["test", None, "val"]})
    notes = selection_notes(df)
    assert notes[0].startswith("selected on test") and "validation" in notes[1]
    assert selection_notes(pd.DataFrame({"selected_on": [None]})) == []


def _points(rows):
    df = pd.DataFrame(rows, columns=["_trial", "round", "sparsity", "val_acc_sparse_last",
                                     "acc_sparse_last"])
    return df.assign(run_id=df["_trial"], dataset="digits", noise="sym", noise_rate=0.4)


def test_front_keeps_the_non_dominated_levels_and_picks_the_sparsest_close_one():
    points = _points([("a", 0, 0.00, 0.60, 0.90), ("a", 1, 0.50, 0.62, 0.91),
                      ("a", 2, 0.75, 0.55, 0.93), ("b", 0, 0.00, 0.58, 0.95),
                      ("b", 1, 0.50, 0.615, 0.90), ("b", 2, 0.75, 0.612, 0.89),
                      ("c", 3, 0.875, 0.50, 0.80)])
    front = pareto_front(points, "val_acc_sparse_last")
    # (0.5, .62) dominates every denser point; (0.75, .612) and (0.875, .50) are sparser
    assert list(zip(front["_trial"], front["round"])) == [("a", 1), ("b", 2), ("c", 3)]
    pick = sparsest_within(points, "val_acc_sparse_last", 1.0)  # within 0.62 - 0.01
    assert (pick["_trial"], pick["round"]) == ("b", 2)
    pick = sparsest_within(points, "val_acc_sparse_last", 0.5)  # >= 0.615: a1, b1 at 50 %
    assert (pick["_trial"], pick["round"]) == ("a", 1)  # the tie goes to the more accurate
    found, notes = fronts(points, within_points=1.0)
    assert len(found) == 1 and "test accuracy (acc_sparse_last) reported only" in notes[0]
    with pytest.raises(UserError, match="no level has a value of val_acc_sparse_last"):
        fronts(points.assign(val_acc_sparse_last=math.nan))
    _, notes = fronts(points, select="acc_sparse_last")
    assert notes[0].startswith("selected on test")


# -- grouped level-aware ASHA, driven by hand ------------------------------------------------

class _Trial:
    """What the scheduler reads of a Tune trial: its id and config (the grid cell)."""

    def __init__(self, trial_id: str, **cell):
        self.trial_id, self.config = trial_id, {"cell": cell}


def _result(levels_done: int, value: float, level_end: bool = True) -> dict:
    return {"levels_done": levels_done, "val_acc_sparse": value, "level_end": level_end}


def test_grouped_asha_ranks_trials_only_within_their_group_and_only_at_level_ends():
    from ts3ray.tune.scheduler import GroupedLevelASHA

    values = RunValues({"rounds": 2})
    asha = GroupedLevelASHA("val_acc_sparse", ComparableGroup(("lam",), values),
                            TotalLevels(values), grace_period=1, reduction_factor=2)
    a = [_Trial(f"a{i}", noise_rate=0.2, lam=i / 3) for i in range(3)]
    b = [_Trial(f"b{i}", noise_rate=0.6, lam=i / 3) for i in range(3)]
    for trial in a + b:
        asha.on_trial_add(None, trial)
    assert len(asha.groups) == 2
    # mid-level reports never stop a trial, however low
    assert asha.on_trial_result(None, a[0], _result(0, 0.90, level_end=False)) == "CONTINUE"
    assert asha.on_trial_result(None, b[0], _result(0, 0.01, level_end=False)) == "CONTINUE"
    # first rung (one level done): setting A scores 0.9 / 0.8 / 0.7, setting B 0.3 / 0.2 / 0.1
    decisions = {t.trial_id: asha.on_trial_result(None, t, _result(1, v))
                 for t, v in zip(a + b, (0.9, 0.8, 0.7, 0.3, 0.2, 0.1))}
    assert decisions == {"a0": "CONTINUE", "a1": "STOP", "a2": "STOP",
                         "b0": "CONTINUE", "b1": "STOP", "b2": "STOP"}
    # B's best was never compared with A's trials: it runs to its last level (R + 1 = 3)
    assert asha.on_trial_result(None, b[0], _result(2, 0.35)) == "CONTINUE"
    assert asha.on_trial_result(None, b[0], _result(3, 0.36)) == "STOP"  # max_t: done


def test_pareto_table_and_plot_from_parquet(tmp_path, capsys):
    from matplotlib.image import imread

    from ts3ray.cli import main as cli_main

    points = _points([("a", 0, 0.00, 0.60, 0.90), ("a", 1, 0.50, 0.62, 0.91),
                      ("b", 2, 0.75, 0.612, 0.89), ("c", 3, 0.875, 0.50, 0.80)])
    points = points.assign(trial_id=points["_trial"], lam=0.5, tau=0.7, gamma=0.5, e1=3, e2=4,
                           variant="full", prune_fraction=0.5, selected_on="val",
                           stopped_early=[False, False, True, False]).drop(columns="_trial")
    path = tmp_path / "levels.parquet"
    points.to_parquet(path)
    assert cli_main(["table", "pareto", str(path), "--within", "1"]) == 0
    out = capsys.readouterr().out
    # the front: a level 1, b level 2 (an early-stopped trial's finished level counts), c
    assert "| full λ=0.5 τ=0.7 γ=0.5 E1=3 E2=4 p_f=0.5 level 1 (a) | 50.00 | 62.00 | 91.00 |" in out
    assert "| **75.00** | **61.20** | **89.00** |" in out  # the pick: b, within 1 point of 62
    assert "trials chosen on validation accuracy" in out
    assert cli_main(["table", "pareto", str(path), "--select", "acc_sparse_last"]) == 0
    out = capsys.readouterr().out  # selected on test: its column once, not twice
    assert "| ticket | sparsity (%) | acc_sparse_last (%) |\n" in out
    # front on test: a1 (50 %, 91), b2, c3 (a0 is dominated); the pick a1, alone within 1
    assert "| full λ=0.5 τ=0.7 γ=0.5 E1=3 E2=4 p_f=0.5 level 1 (a) | **50.00** | **91.00** |" in out
    png = tmp_path / "front.png"
    assert cli_main(["plot", "pareto", str(path), "--out", str(png)]) == 0
    assert imread(png).shape[2] in (3, 4)
    assert cli_main(["table", "pareto", str(path), "--within", "-1"]) == 2
    assert "--within='-1' is not allowed" in capsys.readouterr().err
