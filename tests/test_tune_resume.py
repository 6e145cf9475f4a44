"""Sweeps as a user runs them: a subprocess with its own local Ray (never `ray stop`); the
scale bench's smoke test on the session's Ray."""
from __future__ import annotations

import argparse
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

from ts3ray.results.load import read_table

ROOT = Path(__file__).resolve().parents[1]


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


def test_the_scale_bench_measures_both_roles_and_compacts_to_one_file_per_table(local_ray):
    """Smoke test of benchmarks/bench_sweep_scale.py (N = 2,000 is the measurement): both
    roles on the session's Ray, in this process (the bench runs each role in a process of
    its own, so that RSS is its alone), and the report they make."""
    bench = runpy.run_path(str(ROOT / "benchmarks" / "bench_sweep_scale.py"))
    args = argparse.Namespace(trials=3, epochs=1)
    ours, base = bench["measure_role"]("ts3ray", args), bench["measure_role"]("trivial", args)
    lines = bench["report"](ours, base, args)
    assert lines[0] == "N = 3 trials, 1 epoch(s) each, 2 trial slots"
    assert lines[1].lstrip().startswith("trivial trainable: fit ")
    assert lines[2].lstrip().startswith("ts3ray: fit ")
    assert "lottery runs' own time" in lines[3] and lines[3].endswith("over 3 epoch rows")
    # tickets: per trial (seeds 0, 1, 2) a level mask and trial.json, and its own theta_0
    assert lines[4] == ("result files before compaction: {'epochs': 3, 'levels': 3, 'tickets': 9, "
                        "'other': 0}; after: {'epochs': 1, 'levels': 1, 'tickets': 9, 'other': 0}")
    assert lines[5].startswith("compaction: ")
