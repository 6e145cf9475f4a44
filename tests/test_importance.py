"""Parameter importance from Parquet: a parameter that drives the metric ranks first."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ts3ray.cli import main as cli_main
from ts3ray.errors import UserError
from ts3ray.results.importance import importance_table, param_importances
from ts3ray.results.tables import TableOptions


def search_frame(n=40, seed=0, stopped=3):
    """n full-budget trials with metric = 0.5 + 0.4 * lam + tiny noise, plus stopped ones."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n + stopped):
        params = dict(lam=rng.uniform(), tau=rng.uniform(), gamma=0.5,
                      e1=int(rng.integers(10, 31)), e2=int(rng.integers(30, 81)))
        final = 0.5 + 0.4 * params["lam"] + 1e-4 * rng.normal()
        for r in range(2):
            rows.append(dict(run_id=f"r{t}", trial_id=f"t{t}", round=r, sparsity=0.5 * r,
                             acc_sparse_last=final if r == 1 else 0.1,
                             dataset="cifar10", noise="sym", noise_rate=0.4,
                             stopped_early=t >= n, **params))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("evaluator", ["fanova", "ped-anova"])
def test_driving_parameter_ranks_first(evaluator):
    table = importance_table(search_frame(), TableOptions(evaluator=evaluator))
    (block,) = table.blocks
    ranked = [r.label for r in block.rows]
    scores = [r.cells[0].mean for r in block.rows]
    assert ranked[0] == "lam"
    assert set(ranked) == {"lam", "tau", "e1", "e2"}  # gamma is constant: left out
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 0.5 and scores[0] > 5 * scores[1]
    assert "cifar10 sym-40%: 40 full-budget trials used; constant, left out: gamma=0.5" \
        in table.footnotes
    assert "3 early-stopped trials left out" in table.footnotes


def test_param_importances_uses_the_final_level_value():
    final = search_frame(stopped=0).query("round == 1")
    scores = param_importances(final, ["lam", "tau"], "acc_sparse_last")
    assert set(scores) == {"lam", "tau"} and scores["lam"] > 0.9
    assert sum(scores.values()) == pytest.approx(1.0)


def test_importance_cli_renders_ranked_table(tmp_path, capsys):
    path = tmp_path / "levels.parquet"
    search_frame().to_parquet(path)
    assert cli_main(["table", "importance", str(path), "--format", "csv"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if not l.startswith("#")]
    assert lines[0] == "setting,parameter,importance"
    assert lines[1].startswith("cifar10 sym-40%,lam,0.")


def test_importance_needs_varied_trials():
    df = search_frame(n=1, stopped=0)
    with pytest.raises(UserError, match="need at least 2 trials"):
        importance_table(df, TableOptions())
