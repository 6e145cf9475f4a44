"""`--fuse K` (tune/fusing.py, tune/fused_trial.py): a grid sweep whose cells train as fused
arrays writes the same rows - one row set per lottery run, the unfused schema - as the same
sweep unfused; what cannot be fused is refused before Ray, in one line."""
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ts3ray.errors import UserError
from ts3ray.tune.fusing import Halving, check_fuse, fused_arrays, member_trial_id

TINY = ["epochs=3", "e1=1", "e2=1", "rounds=1", "prune_fraction=0.5"]
KEY = ["lam", "tau", "seed", "round", "epoch"]


def grid(tmp_path, name, *extra, cells=("lam=0,1", "tau=0.9"), seeds="0,3"):
    from ts3ray.tune.cli import run_sweep

    code = run_sweep("grid", ["--storage", str(tmp_path), "--name", name, "--grid", *cells,
                              "--seeds", seeds, *extra, *TINY])
    assert code == 0
    return tmp_path / name / "results"


def test_fused_grid_writes_the_rows_of_the_unfused_grid(local_ray, tmp_path):
    unfused, fused = grid(tmp_path, "plain"), grid(tmp_path, "fused", "--fuse", "3")
    a = pd.read_parquet(unfused / "epochs").sort_values(KEY).reset_index(drop=True)
    b = pd.read_parquet(fused / "epochs").sort_values(KEY).reset_index(drop=True)
    assert len(a) == len(b) == 4 * 2 * 3  # 4 lottery runs x 2 levels x 3 epochs
    assert a[KEY].equals(b[KEY]) and (a["stage"] == b["stage"]).all()
    assert (a["loss_sparse"] - b["loss_sparse"]).abs().max() <= 1e-4
    assert (a["loss_dense"] - b["loss_dense"]).abs().max() <= 1e-4
    assert (a["acc_sparse"] == b["acc_sparse"]).all()
    assert (a["label_precision"] - b["label_precision"]).abs().max() <= 1e-12  # same selections
    assert (a["relabel_count"] == b["relabel_count"]).all()
    assert (a["nonzero_params"] == b["nonzero_params"]).all()
    assert a["run_id"].equals(b["run_id"])  # each member is the unfused run's config
    # 4 cells: one array of 3 (its members' rows carry their own ids) and one unfused run
    assert b["trial_id"].nunique() == 4 and a["trial_id"].nunique() == 4
    assert b["trial_id"].str.fullmatch(r".+-m[0-2]").sum() == 3 * 2 * 3
    for table in ("epochs", "levels"):  # the same schema, file for file
        plain = pq.read_schema(next((unfused / table).glob("*.parquet")))
        mine = pq.read_schema(next((fused / table).glob("*.parquet")))
        assert plain.remove_metadata() == mine.remove_metadata()


def test_cells_group_by_everything_but_the_member_keys():
    common = {"method": "ts3net", "prune_fraction": 0.5}
    cells = [{"lam": 0.0, "seed": 0}, {"lam": 1.0, "seed": 0}, {"lam": 0.0, "seed": 1},
             {"prune_fraction": 0.3}, {"method": "jocor", "seed": 0},
             {"method": "jocor", "seed": 1}, {"lam": 0.5, "seed": 2}]
    assert fused_arrays(common, cells, 2) == ((0, 1), (2, 6), (3,), (4,), (5,))
    assert fused_arrays(common, cells, 8) == ((0, 1, 2, 6), (3,), (4,), (5,))
    assert fused_arrays(common, cells, 1) == ()
    assert member_trial_id("ab12_00003", 2) == "ab12_00003-m2"
    held_out = {**common, "val_fraction": 0.1}  # a hold-out per seed: seeds never share
    assert fused_arrays(held_out, cells[:3] + cells[6:], 8) == ((0, 1), (2,), (3,))


def test_members_whose_training_sets_differ_in_size_are_refused():
    from ts3ray.config import make_config
    from ts3ray.errors import ConfigError
    from ts3ray.fused import FusedArray

    configs = [make_config(dict(dataset="digits", epochs=2, e1=1, e2=1, rounds=1, seed=s,
                                val_fraction=0.1, device="cpu")) for s in (0, 3)]
    with pytest.raises(ConfigError, match="one seed for every member when a validation split"):
        FusedArray(configs)


@pytest.mark.parametrize("fuse, search, message", [
    (0, False, "--fuse=0 is not allowed: K >= 1"),
    (4, True, "--fuse=4 is not allowed with a search"),
])
def test_fuse_refusals(fuse, search, message):
    with pytest.raises(UserError, match=message):
        check_fuse(fuse, search=search)


def test_halving_uses_ashas_rungs_and_cut():
    # Ray's ASHA milestones grace * rf**k below max_t: R = 3 (4 levels), grace 1, rf 3 -> 1, 3
    assert Halving(1, 3).rungs(4) == [1, 3] and Halving(1, 3).rungs(2) == [1]
    assert Halving(1, 2).rungs(4) == [1, 2] and Halving(2, 2).rungs(4) == [2]
    # a reduction factor that is not whole: Ray cuts at the first level >= the milestone
    assert Halving(1, 2.5).rungs(7) == [1, 3] and Halving(1, 1.5).rungs(5) == [1, 2, 3, 4]
    nan = float("nan")
    assert Halving(1, 3).survivors([0.5, nan, 0.7, 0.7]) == [2, 3]  # ceil(4/3) = 2, NaN last
    assert Halving(1, 3).survivors([0.7, 0.7, 0.7]) == [0]  # ties: by member order
    assert Halving(1, 2).survivors([0.1, 0.9, 0.5, 0.3, 0.2]) == [1, 2, 3]  # ceil(5/2) = 3


@pytest.mark.parametrize("grace, rf, levels", [(1, 3, 4), (1, 2, 9), (2, 2, 9), (1, 2.5, 7),
                                               (1, 1.5, 5), (1, 1.1, 4), (3, 3, 4)])
def test_halving_cuts_where_rays_own_asha_bracket_records(grace, rf, levels):
    """Ray's _Bracket fed one trial's reports at 1, 2, ... levels: the levels at which it
    records the trial in a rung (and may stop it) are the array's cuts."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers.async_hyperband import _Bracket

    bracket = _Bracket(min_t=grace, max_t=levels, reduction_factor=rf, s=0)
    trial = Trial("__fake", trial_id="t0", stub=True)
    cuts = []
    for level in range(1, levels):
        before = sum(trial.trial_id in recorded for _, recorded in bracket._rungs)
        bracket.on_result(trial, level, 0.5)
        if sum(trial.trial_id in recorded for _, recorded in bracket._rungs) > before:
            cuts.append(level)
    assert Halving(grace, rf).rungs(levels) == cuts


@pytest.mark.parametrize("argv, message", [
    (["search", "--fuse", "2"], "--fuse=2 is not allowed with a search"),
    (["grid", "--fuse", "2", "precision=bf16"], "precision='bf16' is not allowed: fp32 with a "
                                                 "fused array"),
    (["grid", "--fuse", "2", "--tracker", "tensorboard"], "--tracker=tensorboard is not allowed "
                                                           "with --fuse=2"),
])
def test_fuse_bad_input_is_one_line_before_ray(argv, message, tmp_path, capsys):
    from ts3ray.tune.cli import run_sweep

    assert run_sweep(argv[0], ["--storage", str(tmp_path), *argv[1:], *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_dataset_that_streams_is_refused_with_fuse_before_ray(tmp_path, capsys):
    """Clothing1M's images are resized and cropped per image: they stream from disk, and
    fused members read device-resident data - known from the source, before Ray."""
    from realworld_layouts import clothing1m
    from ts3ray.tune.cli import run_sweep

    clothing1m(tmp_path / "data")
    store = tmp_path / "store"
    argv = ["--storage", str(store), "--settings", "clothing1m:human:0.4", "--grid",
            "lam=0.25,0.5", "--fuse", "2", f"data_root={tmp_path / 'data'}", "arch=cifar_cnn",
            "protocol=shared", "batch_size=2", *TINY]
    assert run_sweep("grid", argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dataset='clothing1m' is not allowed" in err[0], err
    assert "resized to 256 px" in err[0] and "--fuse 1" in err[0]
    assert not store.exists()


def test_a_resume_keeps_the_fuse_it_was_started_with():
    from ts3ray.tune.runner import FIXED_OPTIONS, resume_differences

    plan = {"sweep": "grid", "search": False, "searched": [], "selected_on": None,
            "common": {}, "cells": []}
    before = {name: None for name in FIXED_OPTIONS if name != "fuse"}
    stored = {"options": before, "plan": plan}  # a record from before --fuse existed
    current = lambda fuse: {"options": {**before, "fuse": fuse}, "plan": plan}
    assert resume_differences(stored, current(1)) == []
    assert resume_differences(stored, current(4)) == ["--fuse (stored 1, now 4)"]


def test_fused_asha_halves_each_array_at_its_rung(local_ray, tmp_path):
    """R = 1: one rung after level 0; an array of 4 keeps ceil(4/3) = 2 members - the two
    best on validation at that level end - whose rows then equal their unfused runs'."""
    four = dict(cells=("lam=0,0.3,0.6,1",), seeds="0")  # with a hold-out: one seed per array
    plain = pd.read_parquet(grid(tmp_path, "plain", "val_fraction=0.1", **four) / "epochs")
    fused = grid(tmp_path, "fused", "--fuse", "4", "--scheduler", "asha",
                 "--reduction-factor", "3", "val_fraction=0.1", **four)
    rows = pd.read_parquet(fused / "epochs")
    levels = pd.read_parquet(fused / "levels")
    assert rows["trial_id"].nunique() == 4
    last = rows.groupby("trial_id")["global_epoch"].max()
    assert sorted(last) == [3, 3, 6, 6]  # two stopped at the rung (level 0's end), two ran on
    assert (rows["resumed_from"] == 0).all()  # one fresh attempt, also after the halving
    first = levels[levels["round"] == 0].sort_values(["val_acc_sparse_last", "trial_id"],
                                                     ascending=[False, True])
    assert set(last[last == 6].index) == set(first["trial_id"].iloc[:2])
    survivors = rows[rows["trial_id"].isin(last[last == 6].index)].sort_values(KEY)
    alone = plain.merge(survivors[KEY], on=KEY).sort_values(KEY)
    assert len(alone) == len(survivors) == 2 * 6
    assert (alone["loss_sparse"].to_numpy() - survivors["loss_sparse"].to_numpy()).max() <= 1e-4
    assert (alone["acc_sparse"].to_numpy() == survivors["acc_sparse"].to_numpy()).all()
