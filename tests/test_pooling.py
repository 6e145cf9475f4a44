"""Honest pooling (results/pooling.py): a table averages only runs that differ in the seed
alone, counts a repeated seed once (flagged), says n, and marks paired significance."""
from __future__ import annotations

import pandas as pd
import pytest

from ts3ray.errors import UserError
from ts3ray.results.pooling import BELOW_BEST_MARK, DUPLICATE_MARK
from ts3ray.results.render import render_md
from ts3ray.results.tables import TableOptions, compare_table, sparsity_table


def level_rows(run, method, seed, acc, **config):
    """A two-level trial (R = 1) of `method` on cifar10 sym-40%."""
    base = dict(dataset="cifar10", noise="sym", noise_rate=0.4, arch="cifar_cnn", variant="full",
                epochs=40, rounds=1, prune_fraction=0.5, protocol="published", lr=0.1)
    base.update(config)
    return [dict(run_id=run, round=r, sparsity=0.5 * r, nonzero_params=100, total_params=200,
                 acc_sparse_last=acc, acc_dense_last=acc, method=method, seed=seed, **base)
            for r in (0, 1)]


def frame(*trials):
    """Trials as (run, method, seed, accuracy[, config changes])."""
    rows = []
    for run, method, seed, acc, *changes in trials:
        rows += level_rows(run, method, seed, acc, **(changes[0] if changes else {}))
    return pd.DataFrame(rows)


def test_configurations_that_differ_beyond_the_seed_are_separate_rows():
    df = frame(("a", "ce", 0, 0.80), ("b", "ce", 0, 0.60, dict(epochs=10, rounds=1)),
               ("c", "ce", 1, 0.82))
    table = compare_table(df, TableOptions())
    labels = [r.label for r in table.blocks[0].rows]
    assert labels == ["ce [epochs=10]", "ce [epochs=40]"]
    short, full = table.blocks[0].rows
    assert short.cells[0].mean == pytest.approx(60.0) and short.cells[0].n == 1
    assert full.cells[0].mean == pytest.approx(81.0) and full.cells[0].n == 2


def test_a_seed_held_twice_is_counted_once_and_flagged():
    df = frame(("a", "ce", 0, 0.80), ("a2", "ce", 0, 0.80), ("c", "ce", 1, 0.70))
    table = compare_table(df, TableOptions())
    (row,) = table.blocks[0].rows
    cell = row.cells[0]
    assert cell.n == 2 and cell.mean == pytest.approx(75.0)  # not (80 + 80 + 70) / 3
    assert cell.std == pytest.approx(pd.Series([80.0, 70.0]).std())
    assert cell.mark == DUPLICATE_MARK
    text = render_md(table)
    assert "75.00 ± 7.07‡" in text and "counted once" in text
    assert "n = 2 seeds per cell" in text


def test_paired_significance_over_shared_seeds():
    # ts3net beats ce by 5 +- 1 points on every one of 3 seeds; sce differs by noise only
    trials = []
    for seed, (t, c, s) in enumerate([(0.90, 0.85, 0.89), (0.91, 0.85, 0.92), (0.92, 0.88, 0.90)]):
        trials += [(f"t{seed}", "ts3net", seed, t), (f"c{seed}", "ce", seed, c),
                   (f"s{seed}", "sce", seed, s)]
    table = compare_table(frame(*trials), TableOptions(rows=("method",)))
    rows = {r.label: r.cells[0] for r in table.blocks[0].rows}
    assert rows["ts3net"].best and rows["ts3net"].mark == ""
    assert rows["ce"].mark == BELOW_BEST_MARK  # paired t-test p < 0.05 over seeds 0, 1, 2
    assert rows["sce"].mark == ""  # 90.33 vs 91.00: not significant
    assert any("paired t-test" in note for note in table.footnotes)
    two_seeds = compare_table(frame(*trials[:6]), TableOptions(rows=("method",)))
    assert all(r.cells[0].mark == "" for r in two_seeds.blocks[0].rows)  # < 3 seeds: no test


def test_tables_that_cannot_split_rows_refuse_mixed_configurations():
    df = frame(("a", "ts3net", 0, 0.80), ("b", "ts3net", 1, 0.82, dict(lr=0.05)))
    with pytest.raises(UserError, match=r"differ in more than the seed \(lr: 0.05, 0.1\)"):
        sparsity_table(df, TableOptions())


def test_level_zero_ignores_what_cannot_change_it():
    # two p_f values share their dense level 0, and R never changes a level's training
    df = frame(("a", "ts3net", 0, 0.80, dict(prune_fraction=0.3, rounds=1)),
               ("b", "ts3net", 1, 0.84, dict(prune_fraction=0.3, rounds=3)))
    table = sparsity_table(df, TableOptions())
    zero = table.blocks[0].rows[0].cells[0]
    assert zero.n == 2 and zero.mean == pytest.approx(82.0)


def test_report_rules_in_the_header():
    df = frame(("a", "ts3net", 0, 0.80))
    df["acc_sparse_tail_mean"] = 0.77
    text = render_md(compare_table(df, TableOptions(report="tail_mean")))
    assert "Comparison: acc_sparse_tail_mean (%)" in text
    assert "reported: the mean over the last 10 epochs of each level" in text
    assert "77.00" in text
    with pytest.raises(UserError, match="contradict"):
        compare_table(df, TableOptions(report="tail_mean", metric="acc_dense_last"))
    df["acc_sparse_at_best_val"] = float("nan")
    with pytest.raises(UserError, match="needs validation data"):
        compare_table(df, TableOptions(report="best_val"))
