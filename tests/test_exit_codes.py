"""Exit codes of a sweep driver as a user meets them (issue 22 item 4): real subprocesses,
each with its own local Ray (never `ray stop`): Ctrl-C -> 130 and a resumable sweep that a
SIGKILL of its resume cannot corrupt, SIGTERM -> 143 within 5 s even in a blocked remote
call, OS failures -> 1."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from processes import ctrl_c_as_from_a_terminal, kill_tree
from ts3ray.results.load import read_table
from ts3ray.tune.cli import run_sweep

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--name", "s", "--variants", "full", "--num-cpus", "2", "--max-concurrent", "2",
        "--checkpoint-every", "4", "epochs=8", "e1=2", "e2=4", "rounds=1"]
TRIALS, TRIAL_EPOCHS = 4, 16  # --variants full: 4 prune fractions; two levels of 8 epochs


def env(tag: str) -> dict[str, str]:
    tmp = f"/tmp/rt-x-{os.getpid()}-{tag}"
    os.makedirs(tmp, exist_ok=True)
    e = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=tmp, OMP_NUM_THREADS="1",
             PYTHONPATH=str(ROOT))
    e.pop("RAY_ADDRESS", None)
    return e


def driver(storage: str, tag: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "sweeps" / "sparsity.py"), "--storage",
                             storage, *ARGS, *extra], env=env(tag), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=ctrl_c_as_from_a_terminal)


def finished_trials(results: Path) -> int:
    """Trials that appended their last epoch (files `<trial>/a<attempt>-e<last epoch>`)."""
    return len(list((results / "epochs").glob(f"*/a*-e{TRIAL_EPOCHS:07d}.parquet")))


def test_ctrl_c_gives_130_a_killed_resume_keeps_its_rows_and_every_row_lands_once(
        local_ray, tmp_path, capsys):
    """Ctrl-C a sweep (exit 130, the resume line), SIGKILL its resume mid-sweep (the driver,
    its Ray and its trial workers: no end-of-run work), then resume to the end here."""
    results = tmp_path / "s" / "results"
    proc = driver(str(tmp_path), "a")
    try:
        deadline = time.time() + 120
        while not list(results.glob("epochs/*/*.parquet")) and proc.poll() is None \
                and time.time() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
        _, err = proc.communicate(timeout=60)
    finally:
        kill_tree(proc.pid)
    assert proc.returncode == 130, err[-2000:]
    line = [x for x in err.splitlines() if x.startswith("ts3ray: interrupted")]
    assert line == [f"ts3ray: interrupted (Ctrl-C); resume with: ts3ray sweep sparsity "
                    f"--storage {tmp_path} {' '.join(ARGS)} --resume"]
    assert "stopped early" not in err

    resumed = driver(str(tmp_path), "b", "--resume")
    try:
        deadline = time.time() + 240
        while finished_trials(results) < 1 and time.time() < deadline and resumed.poll() is None:
            time.sleep(0.2)
        assert resumed.poll() is None, "the resumed sweep ended before it could be killed"
        assert finished_trials(results) >= 1
    finally:
        kill_tree(resumed.pid)  # the driver, the Ray it started and its trial workers, only
        resumed.communicate()
    assert finished_trials(results) < TRIALS  # killed mid-sweep
    # the dead driver did no end-of-run work, yet the rows say which trials are complete
    cut = read_table(str(results), "epochs").groupby("trial_id").agg(
        last=("global_epoch", "max"), stopped=("stopped_early", "first"))
    assert (cut["stopped"] == (cut["last"] < TRIAL_EPOCHS)).all()
    assert (~cut["stopped"]).sum() == finished_trials(results)

    capsys.readouterr()
    assert run_sweep("sparsity", ["--storage", str(tmp_path), *ARGS, "--resume"]) == 0
    out = capsys.readouterr().out
    epochs = read_table(str(results), "epochs")
    levels = read_table(str(results), "levels")
    assert len(epochs) == TRIALS * TRIAL_EPOCHS and len(levels) == TRIALS * 2
    assert not epochs.duplicated(["trial_id", "round", "epoch"]).any()
    assert epochs.groupby("trial_id").size().tolist() == [TRIAL_EPOCHS] * TRIALS
    assert sorted(levels.groupby("trial_id")["prune_fraction"].first()) == [0.3, 0.4, 0.5, 0.6]
    assert not epochs["stopped_early"].any()
    attempts = epochs.groupby("trial_id")[["attempt", "resumed_from"]].max()
    # a trial running at an interruption continued from its checkpoint as a later attempt
    assert ((attempts["attempt"] >= 2) & (attempts["resumed_from"] > 0)).any()
    assert f"{TRIALS} trials" in out and "Accuracy vs sparsity" in out


def test_sigterm_during_a_blocked_gcs_call_exits_143_within_5_s(tmp_path):
    """No network, no credentials: the GCS client retries inside one C call."""
    proc = driver("gs://ts3ray-no-such-bucket/x", "g")
    try:
        time.sleep(2.5)  # imports done, inside get_file_info's retries (10 s limit)
        assert proc.poll() is None, proc.communicate()[1]
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        kill_tree(proc.pid)
    assert proc.returncode == 143, err
    assert took < 5, took
    assert err.splitlines()[-1] == "ts3ray: terminated (SIGTERM)"


def test_unreachable_gcs_storage_is_exit_1_with_one_line(tmp_path):
    proc = driver("gs://ts3ray-no-such-bucket/x?retry_limit_seconds=1", "h")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert err.count("\n") == 1 and "cannot be reached" in err and "Traceback" not in err
    assert err.startswith("ts3ray: error: --storage=")


def test_a_malformed_storage_uri_is_exit_2(tmp_path):
    proc = driver("nosuchscheme://x/y", "m")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert err.startswith("ts3ray: error: --storage='nosuchscheme://x/y' is not usable")


def test_an_unreachable_gcs_data_root_is_exit_1_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ts3ray.cli", "run", "dataset=digits",
                           "data_root=gs://ts3ray-no-such-bucket/x?retry_limit_seconds=1",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("ts3ray: error: data_root=gs://") and "cannot be reached" in proc.stderr
    assert not (tmp_path / "out").exists()
