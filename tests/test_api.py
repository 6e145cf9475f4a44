"""The Python API: examples/digits_api.py (ts3ray.run, ts3ray.sweep, ts3ray.load, tables,
plots, tickets) run as a user runs it, in its own process with its own local Ray."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ts3ray
from ts3ray.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def test_the_digits_example_runs_sweeps_and_retrains_the_pick(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_TMPDIR": f"/tmp/rt-api-{os.getpid()}", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "digits_api.py"), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "Accuracy-sparsity front" in out and (tmp_path / "pareto.png").stat().st_size > 1000
    pick = re.search(r"level 1 \((\w+)\) at 50\.0% sparsity, val_acc_sparse_last [\d.]+%, test ([\d.]+)%", out)
    assert pick, out
    sweep = ts3ray.load(str(tmp_path / "sweeps" / "digits-api"))
    levels = sweep.levels
    assert len(levels) == 4 and set(levels["lam"]) == {0.0, 1.0}
    assert len(sweep.epochs) == 8 and len(sweep.tickets()) == 4
    row = levels[(levels["trial_id"] == pick.group(1)) & (levels["round"] == 1)].iloc[0]
    again = ts3ray.load(str(tmp_path / "retrain")).levels.iloc[0]
    assert again["acc_sparse_last"] == row["acc_sparse_last"]  # the ticket, retrained exactly
    assert f"{100 * row['acc_sparse_last']:.2f}" == pick.group(2)
    assert any(line.startswith("  git_commit: ") for line in sweep.info())


def test_the_api_refuses_bad_input_with_one_line(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        ts3ray.load(str(tmp_path / "missing"))
    (tmp_path / "r").mkdir()
    with pytest.raises(UserError, match="epochs"):
        ts3ray.run({"dataset": "digits", "epochs": 0}, out=str(tmp_path / "r"))
    assert callable(ts3ray.run) and ts3ray.sweep is not None
