"""Which trials a table may average: those whose resolved configurations differ in the seed
alone, each seed counted once.

A row of a `levels` table carries its run's whole configuration (docs/CONTRACTS.md), with a
method's options and protocol resolved in full, so two rows compute the same thing up to the
seed exactly when their configuration columns other than the seed agree. Ignored: where data
lives and runs (config.NOT_HASHED), `rounds` (level k is trained the same whatever R is), and
at level 0 p_f and the output-layer switch (nothing is pruned yet).

* `split_configurations`: a table row whose trials in some cell differ in more than the seed
  becomes one row per configuration, labelled with the keys that differ (`ce [epochs=10]`).
* `require_one_configuration`: the same condition as a one-line refusal, for tables whose
  rows cannot be split.
* `pooled_cell`: mean ± sample std over the distinct seeds of a cell, with n; a seed that
  appears twice (two runs of one configuration) is counted once and flagged.
* `mark_significance`: where the best row and another row share >= 3 seeds, a paired t-test
  over those seeds; the other row's cell is marked when it is significantly below (p < 0.05).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ts3ray.config import FIELD_NAMES, NOT_HASHED
from ts3ray.errors import UserError
from ts3ray.results.table_model import Cell, Row

SEED = "seed"
IGNORED = {*NOT_HASHED, SEED, "rounds"}
NOT_AT_LEVEL_ZERO = ("prune_fraction", "prune_output")
DUPLICATE_MARK = "‡"  # a seed counted once although several runs hold it
BELOW_BEST_MARK = "†"  # significantly below the column's best (paired t-test, p < 0.05)
SIGNIFICANCE_LEVEL = 0.05
MIN_PAIRED_SEEDS = 3


def configuration_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in FIELD_NAMES if c in df.columns and c not in IGNORED]


def _configurations(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The configuration columns as text, with the level-0 exceptions blanked."""
    config = df[columns].astype(str)
    if "round" in df.columns:
        zero = df["round"].astype("int64") == 0
        for column in NOT_AT_LEVEL_ZERO:
            if column in config.columns:
                config.loc[zero, column] = "(level 0)"
    return config


def configuration_key(df: pd.DataFrame) -> pd.Series:
    """One text per row: its configuration up to the seed."""
    columns = configuration_columns(df)
    if not columns:
        return pd.Series("", index=df.index)
    config = _configurations(df, columns)
    return config.apply(lambda row: "\x1f".join(row.values), axis=1)


def differing_keys(df: pd.DataFrame) -> list[str]:
    """Configuration columns (other than the seed) with more than one value in `df`."""
    columns = configuration_columns(df)
    config = _configurations(df, columns)
    return [c for c in columns if config[c].nunique(dropna=False) > 1]


def split_configurations(df: pd.DataFrame, row_key: str, cell_keys: list[str]) -> pd.DataFrame:
    """`df` with `row_key` extended by the keys that differ, within some cell (row x
    `cell_keys`), between trials of that row: rows that differ in more than the seed are
    never pooled (module docstring)."""
    if df.empty:
        return df
    keys: dict[object, list[str]] = {}
    for (label, *_), cell in df.groupby([row_key, *cell_keys], sort=False, dropna=False):
        for key in differing_keys(cell):
            keys.setdefault(label, [])
            if key not in keys[label]:
                keys[label].append(key)
    if not keys:
        return df
    labels = []
    for index, row in df.iterrows():
        split = keys.get(row[row_key])
        if split:
            labels.append(f"{row[row_key]} [" + ", ".join(f"{k}={row[k]}" for k in split) + "]")
        else:
            labels.append(row[row_key])
    return df.assign(**{row_key: labels})


def require_one_configuration(df: pd.DataFrame, what: str, where: str) -> None:
    """UserError naming the differing keys unless `df`'s trials differ in the seed alone."""
    keys = differing_keys(df)
    if keys:
        shown = "; ".join(f"{k}: {', '.join(sorted(map(str, df[k].unique())))}" for k in keys[:4])
        raise UserError(f"{what}: the trials of {where} differ in more than the seed ({shown}); "
                        "a table averages only runs that differ in the seed alone: pass "
                        "results of one configuration per cell")


def pooled_cell(df: pd.DataFrame, value: str = "_value") -> Cell:
    """Mean ± sample std (ddof 1) of `value` over the distinct seeds of `df` (one trial per
    seed: a repeated seed is counted once, its first row, and the cell flagged)."""
    finite = df[np.isfinite(df[value].astype(float))]
    if finite.empty:
        return Cell(None)
    if SEED in finite.columns:
        per_seed = finite.drop_duplicates(subset=[SEED], keep="first")
        seeds = dict(zip(per_seed[SEED].astype(int), per_seed[value].astype(float)))
        repeated = len(per_seed) < len(finite)
    else:
        seeds = dict(enumerate(finite[value].astype(float)))
        repeated = False
    values = np.array(list(seeds.values()), dtype=float)
    std = float(np.std(values, ddof=1)) if values.size > 1 else None
    return Cell(float(np.mean(values)), std, n=values.size, per_seed=seeds,
                mark=DUPLICATE_MARK if repeated else "")


def mark_significance(rows: list[Row], columns: list[int] | None = None) -> bool:
    """Mark cells significantly below their column's best (module docstring); True if any
    column had enough paired seeds to test."""
    from scipy import stats

    tested = False
    width = max((len(r.cells) for r in rows), default=0)
    for col in range(width) if columns is None else columns:
        best = [r.cells[col] for r in rows if r.cells[col].best and r.cells[col].per_seed]
        if len(best) != 1:
            continue
        top = best[0]
        for row in rows:
            cell = row.cells[col]
            if cell is top or not cell.per_seed:
                continue
            common = sorted(set(top.per_seed) & set(cell.per_seed))
            if len(common) < MIN_PAIRED_SEEDS:
                continue
            a = np.array([top.per_seed[s] for s in common])
            b = np.array([cell.per_seed[s] for s in common])
            tested = True
            if np.allclose(a - b, (a - b)[0]):  # constant differences: no variance to test
                significant = (a - b)[0] > 0
            else:
                significant = stats.ttest_rel(a, b).pvalue < SIGNIFICANCE_LEVEL and a.mean() > b.mean()
            if significant:
                cell.mark += BELOW_BEST_MARK
    return tested


def count_notes(rows_by_block: list[list[Row]]) -> list[str]:
    """How many seeds the cells hold, for the table's notes; the renderers print n in every
    cell instead when the cells differ (TableModel.show_n)."""
    counts = {c.n for rows in rows_by_block for r in rows for c in r.cells if c.n}
    marks = {m for rows in rows_by_block for r in rows for c in r.cells for m in c.mark}
    notes = []
    if len(counts) == 1:
        n = counts.pop()
        notes.append(f"n = {n} seed{'s' if n != 1 else ''} per cell (mean ± sample std over "
                     "seeds, ddof=1)" if n > 1 else "n = 1 seed per cell (no std)")
    elif counts:
        notes.append("(n) = seeds in the cell; mean ± sample std over seeds (ddof=1)")
    if DUPLICATE_MARK in marks:
        notes.append(f"{DUPLICATE_MARK}: a seed is held by several runs of one configuration; "
                     "it is counted once")
    if BELOW_BEST_MARK in marks:
        notes.append(f"{BELOW_BEST_MARK}: significantly below the best of its column (paired "
                     f"t-test over the shared seeds, p < {SIGNIFICANCE_LEVEL:g})")
    return notes


def cells_differ_in_n(rows_by_block: list[list[Row]]) -> bool:
    return len({c.n for rows in rows_by_block for r in rows for c in r.cells if c.n}) > 1

