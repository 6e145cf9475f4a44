"""Sweeps as a user runs them: a subprocess with its own local Ray (never `ray stop`)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from processes import kill_tree
from ts3ray.results.load import read_table

ROOT = Path(__file__).resolve().parents[1]
TRIAL_EPOCHS = 2 * 8  # rounds=1: two levels of 8 epochs


def sweep_command(name: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "sweeps" / f"{name}.py"), *args]


def environment(tmp: str) -> dict[str, str]:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=tmp)
    env.pop("RAY_ADDRESS", None)
    return env


def short_tmp(tag: str) -> str:
    path = f"/tmp/rt-ts3ray-{os.getpid()}-{tag}"
    os.makedirs(path, exist_ok=True)
    return path


def finished_trials(results: Path) -> int:
    """Trials that appended their last epoch (files `<trial>/a<attempt>-e<last epoch>`)."""
    return len(list((results / "epochs").glob(f"*/a*-e{TRIAL_EPOCHS:07d}.parquet")))


def test_impossible_gpu_request_fails_before_any_trial(tmp_path):
    started = time.perf_counter()
    proc = subprocess.run(
        sweep_command("sparsity", "--storage", str(tmp_path), "--num-cpus", "1", "--num-gpus",
                      "0", "--gpus-per-trial", "0.5", "epochs=2", "e1=1", "e2=1", "rounds=1"),
        env=environment(short_tmp("gpu")), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert ("ts3ray: error: --gpus-per-trial=0.5 cannot be satisfied: no node has a GPU "
            "(cluster: 1 node(s), 1 CPU, 0 GPU); use --gpus-per-trial 0") in proc.stderr
    assert time.perf_counter() - started < 60
    assert not any(tmp_path.iterdir())  # no experiment was created


def test_killed_driver_resumes_without_losing_or_duplicating_trials(tmp_path):
    args = ["--storage", str(tmp_path), "--name", "killed", "--variants", "full",
            "--num-cpus", "2", "--max-concurrent", "2", "--checkpoint-every", "4",
            "epochs=8", "e1=2", "e2=4", "rounds=1"]
    results = tmp_path / "killed" / "results"
    driver = subprocess.Popen(sweep_command("sparsity", *args), env=environment(short_tmp("a")),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.time() + 240
        while finished_trials(results) < 1 and time.time() < deadline and driver.poll() is None:
            time.sleep(0.2)
        assert driver.poll() is None, "the sweep ended before it could be interrupted"
        assert finished_trials(results) >= 1
    finally:
        kill_tree(driver.pid)  # the driver, the Ray it started and its trial workers, only
        driver.wait()
    assert finished_trials(results) < 4  # interrupted mid-sweep
    # the dead driver did no end-of-run work, yet the rows say which trials are complete
    cut = read_table(str(results), "epochs").groupby("trial_id").agg(
        last=("global_epoch", "max"), stopped=("stopped_early", "first"))
    assert (cut["stopped"] == (cut["last"] < TRIAL_EPOCHS)).all()
    assert (~cut["stopped"]).sum() == finished_trials(results)

    resumed = subprocess.run(sweep_command("sparsity", *args, "--resume"),
                             env=environment(short_tmp("b")), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    epochs, levels = read_table(str(results), "epochs"), read_table(str(results), "levels")
    assert epochs["trial_id"].nunique() == 4 and levels["trial_id"].nunique() == 4
    assert not epochs.duplicated(["trial_id", "global_epoch"]).any()
    assert epochs.groupby("trial_id").size().tolist() == [TRIAL_EPOCHS] * 4
    assert levels.groupby("trial_id").size().tolist() == [2] * 4
    assert sorted(levels.groupby("trial_id")["prune_fraction"].first()) == [0.3, 0.4, 0.5, 0.6]
    assert not epochs["stopped_early"].any()
    attempts = epochs.groupby("trial_id")[["attempt", "resumed_from"]].max()
    # a trial running at the kill continued from its checkpoint as attempt 2
    assert ((attempts["attempt"] == 2) & (attempts["resumed_from"] > 0)).any()
    assert "4 trials" in resumed.stdout and "Accuracy vs sparsity" in resumed.stdout


def test_a_detached_driver_survives_the_end_of_the_session_that_started_it(tmp_path):
    """`--detach` (e.g. under `ray submit`): the launcher returns at once; killing its whole
    session, as a dropped SSH connection does, leaves the sweep running to its end."""
    launcher = subprocess.Popen(
        sweep_command("sensitivity", "--detach", "--storage", str(tmp_path), "--name", "away",
                      "--params", "lam", "--num-cpus", "2", "epochs=2", "e1=1", "e2=1",
                      "rounds=1"),
        env=environment(short_tmp("d")), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    out, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 0, err
    assert out.startswith("sweep away runs detached (driver pid ")
    pid = int(out.split("driver pid ")[1].split(")")[0])
    os.killpg(launcher.pid, signal.SIGKILL) if _group_alive(launcher.pid) else None
    deadline = time.time() + 240
    while Path(f"/proc/{pid}").exists() and time.time() < deadline:
        time.sleep(0.5)
    log = (tmp_path / "away.driver.log").read_text()
    assert not Path(f"/proc/{pid}").exists(), log[-2000:]
    assert "4 trials in" in log and "4 full budget" in log, log[-2000:]
    levels = read_table(str(tmp_path / "away"), "levels")
    assert levels["trial_id"].nunique() == 4 and not levels["stopped_early"].any()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_the_scale_bench_runs_end_to_end_and_compacts_to_one_file_per_table():
    """Smoke test of benchmarks/bench_sweep_scale.py (N = 2,000 is the measurement)."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_sweep_scale.py"),
                           "--trials", "3", "--epochs", "1"],
                          env=environment(short_tmp("scale")), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "N = 3 trials, 1 epoch(s) each, 2 trial slots"
    assert lines[1].lstrip().startswith("trivial trainable: fit ")
    assert lines[2].lstrip().startswith("ts3ray: fit ")
    assert "lottery runs' own time" in lines[3] and lines[3].endswith("over 3 epoch rows")
    # tickets: per trial (seeds 0, 1, 2) a level mask and trial.json, and its own theta_0
    assert lines[4] == ("result files before compaction: {'epochs': 3, 'levels': 3, 'tickets': 9, "
                        "'other': 0}; after: {'epochs': 1, 'levels': 1, 'tickets': 9, 'other': 0}")
