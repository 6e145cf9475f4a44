"""`ts3ray run`: clear errors for bad values, Parquet outputs, checkpoint, kill and resume."""
import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
import torch

from ts3ray.cli import main

BASE = ["dataset=digits", "noise=sym", "noise_rate=0.4", "epochs=3", "e1=1", "e2=1",
        "rounds=1", "seed=0", "device=cpu"]

BAD = [
    (["lam=1.5"], "lam=1.5", "[0, 1]"),
    (["gamma=-0.1"], "gamma=-0.1", "[0, 1]"),
    (["tau=2"], "tau=2.0", "[0, 1]"),
    (["e1=-1"], "e1=-1", ">= 0"),
    (["e2=-2"], "e2=-2", ">= 0"),
    (["e1=2", "e2=2"], "e1+e2=4", "at most epochs=3"),
    (["prune_fraction=0"], "prune_fraction=0.0", "0 < p_f < 1"),
    (["prune_fraction=1"], "prune_fraction=1.0", "0 < p_f < 1"),
    (["rounds=-1"], "rounds=-1", ">= 0"),
    (["noise_rate=0.9"], "noise_rate=0.9", "1 - 1/C"),
    (["dataset=imagenet"], "dataset='imagenet'", "one of"),
    (["arch=mlp9"], "arch='mlp9'", "one of"),
    (["variant=best"], "variant='best'", "one of"),
    (["noise=gaussian"], "noise='gaussian'", "one of"),
    (["lam=abc"], "lam='abc'", "a number"),
    (["colour=red"], "colour='red'", "unknown key"),
]


@pytest.mark.parametrize("extra, names, allowed", BAD)
def test_bad_values_give_one_clear_line_exit_2_and_write_nothing(tmp_path, capsys, extra, names, allowed):
    out = tmp_path / "out"
    given = {item.partition("=")[0] for item in extra}  # a key given twice is refused
    base = [item for item in BASE if item.partition("=")[0] not in given]
    code = main(["run", *base, *extra, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert names in err and allowed in err, err
    assert not out.exists()


def test_missing_dataset_files_name_the_path_and_the_fix(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "dataset=mnist", f"data_root={tmp_path / 'nodata'}", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert str(tmp_path / "nodata") in err and "ts3ray data fetch mnist" in err
    assert not out.exists()


def test_run_writes_the_documented_parquet_files_and_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *BASE, "--out", str(out), "--quiet"]) == 0
    epochs = pq.read_table(out / "epochs.parquet").to_pandas()
    levels = pq.read_table(out / "levels.parquet").to_pandas()
    metric_cols = ["run_id", "round", "epoch", "global_epoch", "stage", "sparsity",
                   "nonzero_params", "acc_sparse", "acc_dense", "label_precision",
                   "relabel_count", "relabel_accuracy", "lr", "seconds"]
    config_cols = ["dataset", "data_root", "noise", "noise_rate", "arch", "variant",
                   "selection", "lam", "tau", "gamma", "epochs", "e1", "e2", "batch_size",
                   "weight_decay", "prune_fraction", "rounds", "seed", "device"]
    assert set(metric_cols + config_cols + ["base_lr"]) <= set(epochs.columns)
    assert set(["run_id", "round", "sparsity", "nonzero_params", "acc_sparse_last",
                "acc_sparse_at_best_val", "val_acc_sparse_last", "acc_dense_last", "lr",
                "val_fraction"] + config_cols) <= set(levels.columns)
    assert "acc_sparse_best" not in levels.columns  # no max-over-test oracle
    assert levels["acc_sparse_at_best_val"].isna().all()  # the paper's protocol: no split
    assert (levels["val_samples"] == 0).all() and epochs["val_acc_sparse"].isna().all()
    assert len(epochs) == 6 and list(epochs.global_epoch) == [1, 2, 3, 4, 5, 6]
    assert list(epochs.stage) == ["warmup", "alternate", "refine"] * 2
    assert list(levels["round"]) == [0, 1] and levels.sparsity.tolist()[1] == pytest.approx(0.5, abs=1e-4)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert {"models", "optimizers", "masks", "init_states", "rng", "level", "epoch"} <= set(state)
    # running the same command again refuses to overwrite; --resume sees a finished run
    assert main(["run", *BASE, "--out", str(out), "--quiet"]) == 2
    assert main(["run", *BASE, "--out", str(out), "--resume", "--quiet"]) == 0
    assert main(["run", *BASE, "lam=0.7", "--out", str(out), "--resume", "--quiet"]) == 2
    assert "--resume alone (no key=values) continues it" in capsys.readouterr().err
    empty = tmp_path / "empty"
    assert main(["run", "--out", str(empty), "--resume", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"ts3ray: error: --resume: --out {empty} holds no run yet (no config.json); give the "
        "run's key=values to start it")


def read_rows(path):
    table = pq.read_table(path).to_pandas().drop(columns=["seconds"], errors="ignore")
    return table.fillna(-1.0).to_dict("records")


def test_killed_run_resumes_to_the_same_numbers(tmp_path):
    args = ["dataset=digits", "noise=sym", "noise_rate=0.4", "epochs=8", "e1=2", "e2=3",
            "rounds=2", "seed=3", "device=cpu"]  # one thread: OMP_NUM_THREADS (conftest)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    assert main(["run", *args, "--out", str(whole), "--quiet"]) == 0  # here, one thread too
    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "ts3ray.cli", "run", *args, "--out",
                             str(cut), "--quiet"], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (cut / "epochs.parquet").exists() and pq.read_metadata(cut / "epochs.parquet").num_rows >= 10:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = pq.read_metadata(cut / "epochs.parquet").num_rows
    assert 0 < partial < 24, "the kill should land mid-run"
    # --resume alone: the run's own keys from cut/config.json
    code = subprocess.run([sys.executable, "-m", "ts3ray.cli", "run", "--out", str(cut),
                           "--resume", "--quiet"], env=env).returncode
    assert code == 0
    assert read_rows(cut / "epochs.parquet") == read_rows(whole / "epochs.parquet")
    assert read_rows(cut / "levels.parquet") == read_rows(whole / "levels.parquet")


CONFIG_FILE_BAD = [
    ("lr_decay_epochs: 2\n", "lr_decay_epochs=2", "list of integers"),
    ("device: 0\n", "device=0", "a string"),
    ("epochs: 2.5\n", "epochs=2.5", "an integer"),
    ("lam: null\n", "lam=None", "a number"),
    ("seed: -1\n", "seed=-1", "[0, 2**32)"),
    ("eval_batch_size: 0\n", "eval_batch_size=0", ">= 1"),
    ("dataset: synthetic\nnoise: asym\n", "noise='asym'", "class map"),
    ("noise: none\nnoise_rate: 0.4\n", "noise_rate=0.4", "0 with noise=none"),
]


@pytest.mark.parametrize("text, names, allowed", CONFIG_FILE_BAD)
def test_typed_values_from_a_config_file_are_checked(tmp_path, capsys, text, names, allowed):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    code = main(["run", "--config", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert names in err and allowed in err, err
    assert not out.exists()


def test_clean_labels_select_every_sample():
    from ts3ray.config import make_config

    config = make_config({"noise": "none"})
    assert config.noise_rate == 0.0 and config.effective_select_rate() == 0.0


def test_out_that_is_a_file_or_holds_another_config_is_refused(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert main(["run", *BASE, "--out", str(a_file), "--quiet"]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    foreign = tmp_path / "project"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"name": "something else"}')
    assert main(["run", *BASE, "--out", str(foreign), "--quiet"]) == 2
    assert "not a ts3ray run's" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["config.json"]  # nothing written


@pytest.mark.parametrize("option", [["--threads", "0"], ["--checkpoint-every", "0"]])
def test_bad_run_options_exit_2_and_write_nothing(tmp_path, capsys, option):
    out = tmp_path / "out"
    assert main(["run", *BASE, *option, "--out", str(out), "--quiet"]) == 2
    assert f"{option[0]}=0 is not allowed" in capsys.readouterr().err
    assert not out.exists()


def test_a_short_schedule_under_default_e1_e2_names_the_defaults(tmp_path, capsys):
    """epochs=5 alone: digits' defaults e1=10, e2=20 do not fit; the line says they are the
    defaults, not keys the user gave."""
    out = tmp_path / "out"
    assert main(["run", "dataset=digits", "epochs=5", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("ts3ray: error: epochs=5 is not allowed: at least e1+e2=30 (the defaults "
                   "e1=10, e2=20 for digits): give e1 and e2 with a shorter schedule")
    assert not out.exists()


def test_key_values_may_follow_the_flags_and_other_words_are_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--out", str(out), *BASE, "--quiet", "rounds=0"]) == 2  # rounds twice
    assert "rounds" in capsys.readouterr().err
    base = [item for item in BASE if not item.startswith("rounds=")]
    assert main(["run", "--out", str(out), "--quiet", *base, "rounds=0"]) == 0
    assert len(pq.read_table(out / "levels.parquet")) == 1  # rounds=0 after the flags: one level
    assert main(["run", *BASE, "--out", str(tmp_path / "b"), "--quiet", "bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "ts3ray: error: unrecognized arguments: bogus (see ts3ray --help)"
    assert not (tmp_path / "b").exists()


def test_a_runs_own_config_json_passed_back_in_runs_the_same_configuration(tmp_path, capsys):
    """config.json records run_id and provenance beside the run keys; --config takes the
    keys (README: 'a config.json passed back in') and the new run has the same id."""
    first, again = tmp_path / "a", tmp_path / "b"
    one_level = [item for item in BASE if not item.startswith("rounds=")] + ["rounds=0"]
    assert main(["run", *one_level, "--out", str(first), "--quiet"]) == 0
    assert main(["run", "--config", str(first / "config.json"), "--out", str(again),
                 "--quiet"]) == 0, capsys.readouterr().err
    ids = [json.loads((d / "config.json").read_text())["run_id"] for d in (first, again)]
    assert ids[0] == ids[1]
