"""Sweeps on one shared local Ray instance (2 CPUs, 1 logical GPU), tiny digits runs."""
from __future__ import annotations

import json

import duckdb
import optuna
import pandas as pd

from ts3ray.results.load import read_table

from ts3ray.tune.cli import run_sweep
from ts3ray.tune.plans import SweepPlan, full_config
from ts3ray.tune.resources import TrialResources
from ts3ray.tune.runner import SweepOptions, run_plan
from ts3ray.tune.trainable import CRASH_AT_EPOCH

SWEEP_COLUMNS = {"sweep", "trial_id", "attempt", "node", "stopped_early", "stopped_at_epoch"}
TINY = ["epochs=2", "e1=1", "e2=1", "rounds=1"]


def read(results, table: str) -> pd.DataFrame:
    """The rows as ts3ray's readers see them: `stopped_early` derived from the rows."""
    return read_table(str(results), table)


def assert_one_row_set_per_trial(epochs: pd.DataFrame, levels: pd.DataFrame) -> None:
    assert not epochs.duplicated(["trial_id", "global_epoch"]).any()
    assert not levels.duplicated(["trial_id", "round"]).any()
    for _, rows in epochs.groupby("trial_id"):
        assert sorted(rows["global_epoch"]) == list(range(1, len(rows) + 1))


def test_grid_sweep_writes_one_row_set_per_trial(local_ray, tmp_path, capsys):
    code = run_sweep("sensitivity", ["--params", "lam", "--storage", str(tmp_path), *TINY])
    assert code == 0
    results = tmp_path / "sensitivity-quick" / "results"
    epochs, levels = read(results, "epochs"), read(results, "levels")
    assert SWEEP_COLUMNS <= set(epochs.columns) and SWEEP_COLUMNS <= set(levels.columns)
    assert_one_row_set_per_trial(epochs, levels)
    assert epochs.groupby("trial_id").size().tolist() == [4] * 4  # (R + 1) * E epochs
    assert levels.groupby("trial_id").size().tolist() == [2] * 4  # levels 0 and 1
    assert sorted(levels.groupby("trial_id")["lam"].first()) == [0.0, 0.5, 0.7, 1.0]
    assert (levels["tau"] == 0.7).all() and (epochs["sweep"] == "sensitivity").all()
    assert not levels["stopped_early"].any() and (levels["attempt"] == 1).all()
    glob = f"{results}/levels/*.parquet"
    query = f"select count(distinct trial_id) from read_parquet('{glob}')"
    assert duckdb.sql(query).fetchall() == [(4,)]
    out = capsys.readouterr()
    assert "Influence of λ" in out.out and "4 trials" in out.out
    assert out.err.count(" done ") == 4  # one progress line per finished trial
    # Tune's record of a finished trial keeps only what ts3ray reads (runner.LeanTrialState)
    state_file = next((tmp_path / "sensitivity-quick").glob("experiment_state-*.json"))
    trials = json.loads(state_file.read_text())["trial_data"]
    assert len(trials) == 4
    for trial_json, runtime_json in trials:
        trial, runtime = json.loads(trial_json), json.loads(runtime_json)
        assert trial["config"] == {"cell": trial["config"]["cell"]}  # the cell's index only
        assert isinstance(trial["config"]["cell"], int) and trial["trial_dirname_creator"] is None
        assert set(runtime["last_result"]) == {"levels_done", "progress", "trial_id"}
        assert runtime["last_result"]["levels_done"] == 2 and runtime["metric_analysis"] == {}


def test_optuna_asha_search_stops_trials_early_and_says_so(local_ray, tmp_path):
    journal = tmp_path / "study.log"
    code = run_sweep("search", [
        "--storage", str(tmp_path), "--num-samples", "6", "--grace-period", "1",
        "--reduction-factor", "2", "--optuna-storage", str(journal), "--max-concurrent", "1",
        "epochs=4", "e1=1", "e2=1", "rounds=1"])  # one at a time: the seeded TPE and ASHA see
    # the same order every run (with 2 concurrent, an order in which every trial reaches its
    # rung above the ones before it stops none: seen once in CI)
    assert code == 0
    results = tmp_path / "search-quick" / "results"
    epochs, levels = read(results, "epochs"), read(results, "levels")
    assert_one_row_set_per_trial(epochs, levels)
    per_trial = epochs.groupby("trial_id").agg(
        n=("global_epoch", "size"), stopped=("stopped_early", "first"),
        at=("stopped_at_epoch", "first"), e1=("e1", "first"), e2=("e2", "first"))
    assert len(per_trial) == 6
    stopped = per_trial[per_trial["stopped"]]
    assert len(stopped) >= 1  # ASHA stopped at least one trial
    assert (stopped["n"] == stopped["at"]).all() and (stopped["at"] < 8).all()
    full = per_trial[~per_trial["stopped"]]
    assert (full["n"] == 8).all() and full["at"].isna().all()
    assert ((per_trial["e1"] + per_trial["e2"]) <= 4).all()
    study = optuna.load_study(study_name="search-quick", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    assert len(study.trials) == 6  # Optuna's own tools can read the study
    first = min(study.trials, key=lambda t: t.number).params  # the paper's defaults come first
    assert (first["lam"], first["tau"], first["gamma"]) == (0.5, 0.7, 0.5)
    assert ((epochs["lam"] == 0.5) & (epochs["tau"] == 0.7) & (epochs["gamma"] == 0.5)).any()


def test_four_quarter_gpu_trials_run_at_the_same_time(local_ray, tmp_path):
    code = run_sweep("sparsity", [
        "--storage", str(tmp_path), "--variants", "full", "--gpus-per-trial", "0.25",
        "--cpus-per-trial", "0.5", "epochs=25", "e1=4", "e2=8", "rounds=1"])
    assert code == 0
    epochs = read(tmp_path / "sparsity-quick" / "results", "epochs")
    spans = epochs.groupby("trial_id").agg(start=("started_at", "min"), end=("written_at", "max"))
    assert len(spans) == 4
    assert spans["start"].max() < spans["end"].min()  # all four were running at one moment


def test_impossible_gpu_request_fails_fast(local_ray, tmp_path, capsys):
    code = run_sweep("sparsity", ["--storage", str(tmp_path), "--gpus-per-trial", "2", *TINY])
    assert code == 2
    err = capsys.readouterr().err
    assert "ts3ray: error: --gpus-per-trial=2 cannot be satisfied: the largest node has 1 GPU" in err
    assert not (tmp_path / "sparsity-quick").exists()  # nothing submitted


def test_crashed_worker_resumes_from_checkpoint_with_identical_results(local_ray, tmp_path):
    common = full_config({"dataset": "digits", "epochs": 3, "e1": 1, "e2": 1, "rounds": 1,
                          "seed": 5})
    plan = SweepPlan("crash", common, cells=[{CRASH_AT_EPOCH: 4}, {CRASH_AT_EPOCH: None}])
    opts = SweepOptions(name="crash", storage=str(tmp_path), max_failures=1,
                        checkpoint_every=2, resources=TrialResources(cpu=1))
    outcome = run_plan(plan, opts)
    assert outcome.completed == 2 and not outcome.errors
    epochs = read(tmp_path / "crash" / "results", "epochs")
    levels = read(tmp_path / "crash" / "results", "levels")
    assert_one_row_set_per_trial(epochs, levels)
    # the checkpoint at epoch 2 (every 2; a level end within a minute of it takes none):
    # the retry resumed at epoch 2, and each row carries the attempt that wrote it
    written_by = epochs.sort_values("global_epoch").groupby("trial_id")[
        ["attempt", "resumed_from"]].agg(list)
    crashed = written_by.index[written_by["attempt"].map(max) == 2][0]
    assert written_by.loc[crashed, "attempt"] == [1, 1, 2, 2, 2, 2]
    assert written_by.loc[crashed, "resumed_from"] == [0, 0, 2, 2, 2, 2]
    assert all(a == [1] * 6 for t, a in written_by["attempt"].items() if t != crashed)
    metrics = ["acc_sparse", "acc_dense", "loss_sparse", "loss_dense", "label_precision",
               "relabel_count", "sparsity"]
    a = epochs[epochs.trial_id == crashed].sort_values("global_epoch")[metrics]
    b = epochs[epochs.trial_id != crashed].sort_values("global_epoch")[metrics]
    assert len(a) == 6
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    la = levels[levels.trial_id == crashed].sort_values("round")["acc_sparse_last"].tolist()
    lb = levels[levels.trial_id != crashed].sort_values("round")["acc_sparse_last"].tolist()
    assert la == lb


def test_a_trial_retried_twice_holds_each_epoch_once_with_the_attempt_that_wrote_it(local_ray,
                                                                                  tmp_path):
    common = full_config({"dataset": "digits", "epochs": 3, "e1": 1, "e2": 1, "rounds": 1})
    plan = SweepPlan("twice", common, cells=[{CRASH_AT_EPOCH: [4, 5]}])
    opts = SweepOptions(name="twice", storage=str(tmp_path), max_failures=2, checkpoint_every=2,
                        resources=TrialResources(cpu=1))
    outcome = run_plan(plan, opts)
    assert outcome.completed == 1 and not outcome.errors
    # attempt 1 checkpoints at 2, writes 3 (level end), dies at 4; attempt 2 resumes at 2,
    # writes 3 again, checkpoints at 4, dies at 5; attempt 3 resumes at 4 and finishes
    raw = pd.concat(pd.read_parquet(p) for p in (tmp_path / "twice" / "results" / "epochs").rglob("*.parquet"))
    assert len(raw) == 6 and outcome.compacted["epochs"][1] == 1  # compacted: one copy each
    rows = read(tmp_path / "twice" / "results", "epochs").sort_values("global_epoch")
    assert list(rows["global_epoch"]) == [1, 2, 3, 4, 5, 6]
    assert list(rows["attempt"]) == [1, 1, 2, 2, 3, 3]
    assert list(rows["resumed_from"]) == [0, 0, 2, 2, 4, 4]
    assert not rows["stopped_early"].any()


def test_failed_trial_is_never_counted_as_full_budget(local_ray, tmp_path):
    common = full_config({"dataset": "digits", "epochs": 3, "e1": 1, "e2": 1, "rounds": 1})
    plan = SweepPlan("fail", common, cells=[{CRASH_AT_EPOCH: 4}, {CRASH_AT_EPOCH: None}])
    opts = SweepOptions(name="fail", storage=str(tmp_path), max_failures=0,
                        checkpoint_every=1, resources=TrialResources(cpu=1))
    outcome = run_plan(plan, opts)
    assert outcome.completed == 1 and len(outcome.errors) == 1
    epochs = read(tmp_path / "fail" / "results", "epochs")
    per_trial = epochs.groupby("trial_id").agg(n=("global_epoch", "max"),
                                              stopped=("stopped_early", "all"),
                                              at=("stopped_at_epoch", "first"))
    failed = per_trial[per_trial["n"] < 6]
    assert len(failed) == 1 and failed["stopped"].all() and (failed["at"] == failed["n"]).all()
    assert not per_trial[per_trial["n"] == 6]["stopped"].any()


def test_resumed_sweep_writes_where_it_now_lives(local_ray, tmp_path):
    """A sweep copied to new storage and resumed there writes its rows there."""
    import shutil

    common = full_config({"dataset": "digits", "epochs": 3, "e1": 1, "e2": 1, "rounds": 1})
    plan = SweepPlan("moved", common, cells=[{CRASH_AT_EPOCH: 4}])
    old = SweepOptions(name="moved", storage=str(tmp_path / "old"), checkpoint_every=1,
                       resources=TrialResources(cpu=1))
    assert run_plan(plan, old).errors  # stops (crash, no retries) after epoch 3
    shutil.copytree(tmp_path / "old", tmp_path / "new")
    new = SweepOptions(name="moved", storage=str(tmp_path / "new"), checkpoint_every=1,
                       resources=TrialResources(cpu=1), resume=True)
    outcome = run_plan(plan, new)
    assert outcome.completed == 1 and not outcome.errors
    moved = read(tmp_path / "new" / "moved" / "results", "epochs")
    assert sorted(moved["global_epoch"]) == [1, 2, 3, 4, 5, 6]
    assert not moved["stopped_early"].any()
    left = read(tmp_path / "old" / "moved" / "results", "epochs")
    assert left["global_epoch"].max() < 6  # the old copy was not written to


def test_storage_given_as_a_pyarrow_fs_uri(local_ray, tmp_path, capsys):
    """--storage takes a URI (s3://, gs://, ... here file://): trials write through pyarrow.fs."""
    code = run_sweep("sensitivity", ["--params", "lam", "--storage", f"file://{tmp_path}", *TINY])
    assert code == 0
    epochs = read(tmp_path / "sensitivity-quick" / "results", "epochs")
    levels = read(tmp_path / "sensitivity-quick" / "results", "levels")
    assert_one_row_set_per_trial(epochs, levels)
    assert sorted(levels["lam"].unique()) == [0.0, 0.5, 0.7, 1.0]
    assert "Influence of λ" in capsys.readouterr().out  # the table read the URI back
