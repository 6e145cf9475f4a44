"""Sweeps that choose, on the shared local Ray: grouped level-aware ASHA on a grid, and an
Optuna search that judges validation accuracy only (its study marks ASHA's stops PRUNED)."""
from __future__ import annotations

import numpy as np
import optuna
import pandas as pd

from ts3ray.results.load import read_table

from ts3ray.data import load_dataset
from ts3ray.tune.cli import run_sweep

E = 3  # epochs per IMP level in these sweeps


def read(results, table: str) -> pd.DataFrame:
    """The rows as ts3ray's readers see them: `stopped_early` derived from the rows."""
    return read_table(str(results), table)


def per_trial(epochs: pd.DataFrame) -> pd.DataFrame:
    return epochs.groupby("trial_id").agg(
        n=("global_epoch", "max"), stopped=("stopped_early", "first"),
        at=("stopped_at_epoch", "first"), rate=("noise_rate", "first"))


def test_grouped_asha_stops_only_at_level_ends_and_never_across_settings(local_ray, tmp_path):
    # setting 0.6 has far noisier held-out labels than 0.2: every one of its trials scores
    # below every trial of 0.2, yet its best trial must still run to the full budget
    code = run_sweep("grid", [
        "--storage", str(tmp_path), "--settings", "digits:sym:0.2,digits:sym:0.6",
        "--scheduler", "asha", "--grace-period", "1", "--reduction-factor", "3",
        "--max-concurrent", "2", f"epochs={E}", "e1=1", "e2=1", "rounds=2",
        "--grid", "lam=0,0.5,1", "tau=0.3,0.6,0.9"])
    assert code == 0
    results = tmp_path / "grid-quick" / "results"
    epochs, levels = read(results, "epochs"), read(results, "levels")
    trials = per_trial(epochs)
    assert len(trials) == 18 and (levels["val_fraction"] == 0.1).all()
    assert (levels["selected_on"] == "val").all()
    stopped = trials[trials["stopped"]]
    assert len(stopped) >= 2  # ASHA did stop trials...
    assert (stopped["at"] % E == 0).all() and (stopped["at"] == stopped["n"]).all()  # ...at level ends
    assert (trials.loc[~trials["stopped"], "n"] == 3 * E).all()
    level0 = levels[levels["round"] == 0].set_index("trial_id")
    low = level0[level0["noise_rate"] == 0.6]["val_acc_sparse_last"]
    high = level0[level0["noise_rate"] == 0.2]["val_acc_sparse_last"]
    assert low.max() < high.min()  # the premise: setting 0.6 is below setting 0.2 everywhere
    for rate in (0.2, 0.6):
        mine = trials[trials["rate"] == rate]
        assert (~mine["stopped"]).any()  # each group keeps a full-budget trial
        best = level0[level0["noise_rate"] == rate]["val_acc_sparse_last"].idxmax()
        assert trials.loc[best, "n"] > E  # the group's best first-rung trial passed its rung


def write_mnist_layout(root, permute_test_labels: bool) -> None:
    """digits (8x8, upscaled to 28x28) as MNIST idx files, test labels optionally shuffled."""
    from ts3ray.data.sources.idx import write_idx

    digits = load_dataset("digits", seed=0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)

    def upscale(x):
        big = np.kron(x[:, 0].numpy(), np.ones((3, 3), dtype=np.uint8))  # 24x24
        return np.pad(big, ((0, 0), (2, 2), (2, 2)))

    test_y = digits.test_y.numpy().astype(np.uint8)
    if permute_test_labels:
        test_y = np.random.default_rng(0).permutation(test_y)
    write_idx(raw / "train-images-idx3-ubyte", upscale(digits.train_x))
    write_idx(raw / "train-labels-idx1-ubyte", digits.train_y.numpy().astype(np.uint8))
    write_idx(raw / "t10k-images-idx3-ubyte", upscale(digits.test_x))
    write_idx(raw / "t10k-labels-idx1-ubyte", test_y)


def search(tmp_path, name: str, permuted: bool):
    data = tmp_path / f"data-{name}"
    write_mnist_layout(data, permuted)
    journal = tmp_path / f"{name}.log"
    code = run_sweep("search", [
        "--storage", str(tmp_path), "--name", name, "--num-samples", "6", "--max-concurrent",
        "1", "--grace-period", "1", "--reduction-factor", "2", "--optuna-storage", str(journal),
        "--settings", "mnist:sym:0.4", f"data_root={data}", f"epochs={E}", "e1=1", "e2=1",
        "rounds=2", "lr=0.05", "protocol=shared"])
    assert code == 0
    study = optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    results = tmp_path / name / "results"
    return study, read(results, "epochs"), read(results, "levels")


def test_search_on_validation_ignores_test_labels_and_tells_asha_stops_as_pruned(local_ray, tmp_path):
    study, epochs, levels = search(tmp_path, "plain", permuted=False)
    shuffled_study, shuffled_epochs, _ = search(tmp_path, "shuffled", permuted=True)

    # the study saw the same numbers, suggested the same points and kept the same trials
    def history(s):
        return [(t.params, t.state, t.value, t.intermediate_values) for t in s.trials]

    assert history(study) == history(shuffled_study)
    assert len(study.trials) == 6
    # ...although the test accuracy it never looked at is very different
    last = epochs["global_epoch"] == epochs["global_epoch"].max()
    assert (epochs.loc[last, "acc_sparse"].to_numpy()
            > shuffled_epochs.loc[last, "acc_sparse"].to_numpy() + 0.3).all()

    trials = per_trial(epochs)
    states = [t.state for t in study.trials]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(pruned) == int(trials["stopped"].sum()) >= 1  # ASHA's stops are PRUNED...
    assert states.count(optuna.trial.TrialState.COMPLETE) == int((~trials["stopped"]).sum())
    for t in pruned:  # ...with one intermediate value per finished level, never more
        assert set(t.intermediate_values) <= {1, 2} and t.value == t.intermediate_values[
            max(t.intermediate_values)]
    final = levels[levels["round"] == 2].set_index("trial_id")["val_acc_sparse_last"]
    completed = sorted(t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    assert completed == sorted(final.tolist())  # COMPLETE value = S's validation accuracy at the last level
