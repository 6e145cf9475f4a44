"""`ts3ray table rungs` from Parquet: each level's rank agreement with the last level."""
from __future__ import annotations

import pandas as pd
import pytest

from ts3ray.cli import main as cli_main
from ts3ray.errors import UserError
from ts3ray.results.rungs import rungs_table
from ts3ray.results.tables import TableOptions


def grid(val_by_round: dict[int, list[float]], stopped: tuple[int, ...] = ()) -> pd.DataFrame:
    """One trial per position of the value lists, one levels row per round it reached."""
    rows = []
    for r, values in val_by_round.items():
        for t, v in enumerate(values):
            if t in stopped and r > 0:
                continue  # stopped after level 0
            rows.append(dict(run_id=f"r{t}", trial_id=f"t{t}", round=r, sparsity=1 - 0.5 ** r,
                             val_acc_sparse_last=v, acc_sparse_last=0.9, dataset="digits",
                             noise="sym", noise_rate=0.4, stopped_early=t in stopped))
    return pd.DataFrame(rows)


def test_each_level_is_ranked_against_the_last_with_the_bests_rank(tmp_path, capsys):
    levels = grid({0: [0.1, 0.2, 0.3, 0.9], 1: [0.3, 0.1, 0.2, 0.9], 2: [0.3, 0.2, 0.1, 0.9]},
                  stopped=(3,))
    # trial t3 stopped early: left out. Level 0 ranks t0 t1 t2 as 1 2 3, the last level as
    # 3 2 1: rho -1, and the last level's best (t0) has 2 trials ahead of it at level 0.
    # Level 1 ranks them 3 1 2: d = 0, -1, 1, rho = 1 - 6 * 2 / (3 * 8) = 0.5; t0 leads.
    table = rungs_table(levels, TableOptions())
    (block,) = table.blocks
    assert block.title.plain == "digits sym-40% (3 trials)"
    assert [(r.label, r.cells[0].mean, r.cells[1].mean) for r in block.rows] == [
        ("level 0", pytest.approx(-1.0), 3.0), ("level 1", pytest.approx(0.5), 1.0)]
    assert "1 early-stopped trials left out" in table.footnotes
    path = tmp_path / "levels.parquet"
    levels.to_parquet(path)
    assert cli_main(["table", "rungs", str(path), "--format", "csv"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if not l.startswith("#")]
    assert lines[1:] == ["digits sym-40%,level 0,-1.00,3", "digits sym-40%,level 1,0.50,1"]


def test_one_level_results_are_refused_in_one_line():
    with pytest.raises(UserError, match="one IMP level only"):
        rungs_table(grid({0: [0.1, 0.2]}), TableOptions())
