"""The diagnostics benchmarks/bench_asha_grid.py prints beside ASHA's regret, on frames small
enough to compute by hand."""
from __future__ import annotations

import runpy
from pathlib import Path

import pandas as pd
import pytest

BENCH = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "bench_asha_grid.py"))


def levels(val_by_round: dict[int, list[float]], test_last: list[float]) -> pd.DataFrame:
    """Three configurations (lam 0, 0.5, 1) over the given rounds; the last round is R."""
    rounds = max(val_by_round)
    rows = [{"run_id": f"r{i}", "trial_id": f"t{i}", "lam": lam, "round": r, "rounds": rounds, "val_acc_sparse_last": vals[i],
             "acc_sparse_last": test_last[i] if r == rounds else 0.0}
            for r, vals in val_by_round.items() for i, lam in enumerate([0.0, 0.5, 1.0])]
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def keys():
    BENCH["KEYS"][:] = ["lam"]
    yield
    BENCH["KEYS"][:] = []


def test_rung_signal_is_each_levels_rank_agreement_with_the_last_level():
    grid = levels({0: [0.1, 0.2, 0.3], 1: [0.3, 0.1, 0.2], 2: [0.3, 0.2, 0.1]}, [0.9, 0.8, 0.7])
    # level 0 ranks 1 2 3 against the last level's 3 2 1: -1; level 1 ranks 3 1 2: rho = 0.5
    assert BENCH["rung_signal"](grid) == "level 0 -1.00, level 1 +0.50"


def test_reproducibility_compares_a_configurations_seed_spread_with_the_configurations():
    seed0 = levels({0: [0.5] * 3, 1: [0.5] * 3}, [0.90, 0.80, 0.70])
    seed1 = levels({0: [0.5] * 3, 1: [0.5] * 3}, [0.70, 0.80, 0.90])
    # per configuration std over the seeds (ddof 1): 0.1414, 0, 0.1414 -> mean 9.43 points;
    # the seed means are 0.8 each -> std 0 (noise alone: 9.43 / sqrt 2 = 6.67); the two
    # seeds rank the configurations oppositely
    assert BENCH["reproducibility"]({0: seed0, 1: seed1}) == (
        "one configuration's test accuracy over seeds: std 9.43 points (mean over "
        "configurations); the configurations' seed means: std 0.00 (seed noise alone: 6.67); "
        "Spearman between seeds -1.00")


def test_reproducibility_condenses_many_seed_pairs_to_their_mean_and_range():
    orders = [[0.9, 0.8, 0.7], [0.7, 0.8, 0.9], [0.9, 0.8, 0.7], [0.9, 0.8, 0.7]]
    grids = {s: levels({0: [0.5] * 3, 1: [0.5] * 3}, o) for s, o in enumerate(orders)}
    # 6 pairs: seed 1 against each other seed -1 (3 pairs), the rest +1 (3 pairs) -> mean 0;
    # per configuration std over (.9 .7 .9 .9): 0.1 -> 10 points, (.8 x4): 0 -> mean 6.67;
    # seed means 0.85, 0.8, 0.75 -> std 5.00; noise alone 6.67 / sqrt 4 = 3.33
    assert BENCH["reproducibility"](grids) == (
        "one configuration's test accuracy over seeds: std 6.67 points (mean over "
        "configurations); the configurations' seed means: std 5.00 (seed noise alone: 3.33); "
        "Spearman between seeds mean +0.00 over 6 pairs (min -1.00, max +1.00)")


def test_mean_and_error_is_the_seed_mean_with_its_standard_error():
    # mean 1; deviations 1, -1, 0 -> variance (1 + 1 + 0) / 2 = 1 -> error 1 / sqrt(3) = 0.577
    assert BENCH["mean_and_error"]([2.0, 0.0, 1.0]) == "mean +1.00 +- 0.58 (standard error, 3 seeds)"
    assert BENCH["mean_and_error"]([0.5]) == "mean +0.50 +- nan (standard error, 1 seeds)"
