"""The Python API: examples/digits_api.py (ts3ray.run, ts3ray.sweep, ts3ray.load, tables,
plots, tickets), its main() run on the session's local Ray."""
from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

import ts3ray
from ts3ray.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def test_the_digits_example_runs_sweeps_and_retrains_the_pick(local_ray, tmp_path, capsys):
    runpy.run_path(str(ROOT / "examples" / "digits_api.py"))["main"](tmp_path)
    out = capsys.readouterr().out
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
