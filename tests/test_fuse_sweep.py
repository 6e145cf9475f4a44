"""`--fuse K` (tune/fusing.py, tune/fused_trial.py): a grid sweep whose cells train as fused
arrays writes the same rows - one row set per lottery run, the unfused schema - as the same
sweep unfused; what cannot be fused is refused before Ray, in one line."""
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ts3ray.errors import UserError
from ts3ray.tune.fusing import check_fuse, fused_arrays, member_trial_id

TINY = ["epochs=3", "e1=1", "e2=1", "rounds=1", "prune_fraction=0.5"]
KEY = ["lam", "tau", "seed", "round", "epoch"]


def grid(tmp_path, name, *extra):
    from ts3ray.tune.cli import run_sweep

    code = run_sweep("grid", ["--storage", str(tmp_path), "--name", name, "--grid",
                              "lam=0,1", "tau=0.9", "--seeds", "0,3", *extra, *TINY])
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


@pytest.mark.parametrize("fuse, scheduler, search, message", [
    (0, "none", False, "--fuse=0 is not allowed: K >= 1"),
    (4, "asha", False, "--fuse=4 is not allowed with --scheduler asha"),
    (4, "none", True, "--fuse=4 is not allowed with a search"),
])
def test_fuse_refusals(fuse, scheduler, search, message):
    with pytest.raises(UserError, match=message):
        check_fuse(fuse, scheduler=scheduler, search=search)


@pytest.mark.parametrize("argv, message", [
    (["grid", "--fuse", "2", "--scheduler", "asha"], "--fuse=2 is not allowed with --scheduler"),
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


def test_a_resume_keeps_the_fuse_it_was_started_with():
    from ts3ray.tune.runner import FIXED_OPTIONS, resume_differences

    plan = {"sweep": "grid", "search": False, "searched": [], "selected_on": None,
            "common": {}, "cells": []}
    before = {name: None for name in FIXED_OPTIONS if name != "fuse"}
    stored = {"options": before, "plan": plan}  # a record from before --fuse existed
    current = lambda fuse: {"options": {**before, "fuse": fuse}, "plan": plan}
    assert resume_differences(stored, current(1)) == []
    assert resume_differences(stored, current(4)) == ["--fuse (stored 1, now 4)"]
