"""Paper-style tables from the `levels` Parquet table: a DataFrame in, a TableModel out.

* `sensitivity_table` — Table IX (Sec. IV-C 2): a block per parameter, a row per value, a
  column per setting; one-at-a-time grid around a base configuration.
* `sparsity_table` — Tables VIII / XI: a row per variant (or arch), a column per sparsity.
* `compare_table` — Tables I-V: a row per method, a column per noise setting, + parameters.

Cells are the mean over trials (seeds) of the metric, ± the sample std (ddof=1) when a cell
holds several trials. Fractions in [0, 1] (all `acc_*` columns) are shown as percent with
2 decimals. Only full-budget trials count; early-stopped ones are left out and counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ts3ray.config import METHOD_PARAMS
from ts3ray.errors import UserError
from ts3ray.results.load import (
    check_metric, drop_early_stopped, drop_repeated_dense_levels, final_level,
    percent_scale,
    prepare, selection_notes, setting_label, settings_in_order,
)
from ts3ray.results.table_model import Block, Label, Row, TableModel, mark_best, summarize

DEFAULT_METRIC = "acc_sparse_last"
# Row order of the paper's tables: the ablation variants first, the full method last.
VARIANT_ORDER = ("warm", "semi", "warm+semi", "warm+refine", "semi+refine", "warm+alter",
                 "sparse", "sparse+sparse", "coteach", "full")
STD_NOTE = "mean ± std over seeds (sample std, ddof=1) where a cell holds several trials"


@dataclass(frozen=True)
class TableOptions:
    """What a table kind may read; each kind uses only its own fields."""

    metric: str = DEFAULT_METRIC
    base: dict[str, float] | None = None
    params: tuple[str, ...] = tuple(METHOD_PARAMS)
    rows: tuple[str, ...] = ("variant",)
    sparsity: float | None = None  # a fraction in [0, 1]
    evaluator: str = "fanova"
    select: str = "val_acc_sparse_last"  # pareto: the column that selects
    within: float = 1.0  # pareto: percentage points below the best for the pick


@dataclass
class Trials:
    """Full-budget levels rows (scaled metric in `_value`) and the notes they produce."""

    rows: pd.DataFrame
    unit: str
    notes: list[str] = field(default_factory=list)


def full_budget(levels: pd.DataFrame, opts: TableOptions, required, what: str) -> Trials:
    """Check columns and metric, drop early-stopped trials, scale the metric to percent."""
    check_metric(levels, opts.metric, "levels")
    df = prepare(levels, "levels", required, what)
    df, n_stopped = drop_early_stopped(df)
    if df.empty:
        raise UserError(f"{what}: RESULTS holds no full-budget trials "
                        f"({n_stopped} early-stopped trials left out)")
    factor, unit = percent_scale(df[opts.metric])
    df = df.assign(_value=df[opts.metric].astype(float) * factor)
    notes = selection_notes(df)
    notes += [f"{n_stopped} early-stopped trials left out"] if n_stopped else []
    return Trials(df, unit, notes)


def display_order(column: str, values) -> list:
    """Distinct values in display order: paper order for variants, natural order otherwise."""
    distinct = list(dict.fromkeys(values))
    if column == "variant":
        rank = {v: i for i, v in enumerate(VARIANT_ORDER)}
        return sorted(distinct, key=lambda v: (rank.get(v, len(rank)), str(v)))
    return sorted(distinct, key=lambda v: (str(type(v)), v))


def _std_note(blocks: list[Block]) -> list[str]:
    several = any(c.std is not None for b in blocks for r in b.rows for c in r.cells)
    return [STD_NOTE] if several else []


# -- Table IX: parameter sensitivity ----------------------------------------------------

def format_param(name: str, value: float) -> str:
    """Row label of a parameter value: integers for E1/E2, else two decimals (as Table IX)
    unless the value needs more (0.125)."""
    if METHOD_PARAMS[name].integer:
        return f"{int(round(value))}"
    return f"{value:.2f}" if round(value, 2) == value else f"{value:g}"


def infer_base(trials: pd.DataFrame, params, given: dict[str, float] | None) -> dict[str, float]:
    """Base configuration: `given` values, else the most common value of each parameter."""
    base = dict(given or {})
    for p in params:
        if p in base:
            continue
        counts = trials[p].astype(float).value_counts()
        top = counts[counts == counts.max()].index
        if len(top) > 1:
            tied = " and ".join(f"{v:g}" for v in sorted(top))
            raise UserError(f"sensitivity: cannot infer the base value of {p} ({tied} are "
                            f"equally common); pass --base {p}=VALUE")
        base[p] = float(top[0])
    return base


def _close(series: pd.Series, value: float) -> pd.Series:
    return pd.Series(np.isclose(series.astype(float), value, rtol=0, atol=1e-9),
                     index=series.index)


def sensitivity_table(levels: pd.DataFrame, opts: TableOptions) -> TableModel:
    """Table IX: a block per parameter with the other parameters held at the base."""
    what = "sensitivity"
    trials = full_budget(levels, opts, opts.params, what)
    final = final_level(trials.rows)
    for p in opts.params:
        distinct = sorted(final[p].astype(float).unique())
        if len(distinct) < 2:
            raise UserError(f"{what}: parameter {p} has one value ({distinct[0]:g}) in RESULTS; "
                            "the sweep does not vary it (choose others with --params)")
    held = [p for p in METHOD_PARAMS if p in final.columns]  # every searched parameter
    base = infer_base(final, held, opts.base)
    settings = settings_in_order(final)
    blocks = []
    for letter, p in zip("abcdefghij", opts.params):
        mask = np.ones(len(final), dtype=bool)
        for q in held:
            if q != p:
                mask &= _close(final[q], base[q]).to_numpy()
        block_rows = final[mask]
        rows = []
        for value in sorted(block_rows[p].astype(float).unique()):
            at_value = block_rows[_close(block_rows[p], value)]
            cells = [summarize(at_value.loc[at_value["_setting"] == s, "_value"])
                     for s in settings]
            rows.append(Row(format_param(p, value), cells))
        mark_best(rows)
        sym = METHOD_PARAMS[p]
        title = Label(f"({letter}) Influence of {p}", f"({letter}) Influence of {sym.md}",
                      f"({letter}) Influence of {sym.latex}")
        blocks.append(Block(p, title, Label(p, sym.md, sym.latex),
                            [Label(s) for s in settings], rows))
    base_text = ", ".join(f"{p}={format_param(p, v)}" for p, v in base.items())
    notes = [f"{opts.metric} of each trial's highest sparsity level{trials.unit}; "
             f"best value per column and block marked",
             f"base configuration: {base_text}", *trials.notes, *_std_note(blocks)]
    return TableModel(f"Parameter sensitivity: {opts.metric}{trials.unit}",
                      "parameter", "value", blocks, notes)


# -- Tables VIII / XI: accuracy per sparsity level --------------------------------------

def level_label(percent: float) -> str:
    """Column header of a sparsity level in percent: 87.5, 0, 93.6."""
    return f"{percent:g}"


def block_order(df: pd.DataFrame, column: str) -> list:
    """Distinct values of `column` in display order (settings by dataset, noise, rate)."""
    if column == "_setting":
        return settings_in_order(df)
    return display_order(column, df[column])


def _group_blocks(df: pd.DataFrame, block_keys: list[str]):
    """(block key text, its rows) per distinct combination of `block_keys`, in order."""
    ranks = {k: {v: i for i, v in enumerate(block_order(df, k))} for k in block_keys}
    combos = list(df[block_keys].drop_duplicates().itertuples(index=False, name=None))
    combos.sort(key=lambda combo: tuple(ranks[k][v] for k, v in zip(block_keys, combo)))
    for combo in combos:
        mask = np.logical_and.reduce([(df[k] == v).to_numpy() for k, v in zip(block_keys, combo)])
        yield ", ".join(str(v) for v in combo), df[mask]


def sparsity_table(levels: pd.DataFrame, opts: TableOptions) -> TableModel:
    """Tables VIII / XI: mean ± std of the metric per row key and sparsity level."""
    what = "sparsity"
    trials = full_budget(levels, opts, ["sparsity", *opts.rows], what)
    df = drop_repeated_dense_levels(trials.rows)
    df = df.assign(_level=(df["sparsity"].astype(float) * 100).round(1))
    row_key, block_keys = opts.rows[-1], ["_setting", *opts.rows[:-1]]
    blocks = []
    for key, part in _group_blocks(df, block_keys):
        levels_in = sorted(part["_level"].unique())
        rows = []
        for value in display_order(row_key, part[row_key]):
            mine = part[part[row_key] == value]
            rows.append(Row(str(value), [summarize(mine.loc[mine["_level"] == lv, "_value"])
                                         for lv in levels_in]))
        mark_best(rows)
        blocks.append(Block(key, Label(key), Label(row_key),
                            [Label(level_label(lv)) for lv in levels_in], rows))
    notes = [f"columns: sparsity (%) of the IMP level (rounded to 0.1); cells: {opts.metric}"
             f"{trials.unit}; best value per column and block marked",
             *trials.notes, *_std_note(blocks)]
    return TableModel(f"Accuracy vs sparsity: {opts.metric}{trials.unit}",
                      "/".join(["setting", *opts.rows[:-1]]), row_key, blocks, notes)


# -- Tables I-V: methods x noise settings, with parameter counts ------------------------

PARAM_COLUMNS = (("total_params", "Params (M)"), ("nonzero_params", "Non-zero (M)"))


def compare_table(levels: pd.DataFrame, opts: TableOptions) -> TableModel:
    """Tables I-V: the metric per method and noise setting, dense and non-zero params (M)."""
    what = "compare"
    required = ["sparsity", *opts.rows, *(c for c, _ in PARAM_COLUMNS)]
    trials = full_budget(levels, opts, required, what)
    final = final_level(trials.rows, opts.sparsity)
    final = final.assign(_noise=[setting_label(d, n, r, with_dataset=False) for d, n, r in
                                 zip(final["dataset"], final["noise"], final["noise_rate"])])
    row_key, block_keys = opts.rows[-1], ["dataset", *opts.rows[:-1]]
    blocks = []
    for key, part in _group_blocks(final, block_keys):
        noises = list(dict.fromkeys(part.sort_values(["noise", "noise_rate"])["_noise"]))
        rows = []
        for value in display_order(row_key, part[row_key]):
            mine = part[part[row_key] == value]
            cells = [summarize(mine.loc[mine["_noise"] == n, "_value"]) for n in noises]
            for column, _ in PARAM_COLUMNS:  # mean count over the row's trials, no std
                counts = summarize(mine[column].astype(float) / 1e6)
                counts.std = None
                cells.append(counts)
            rows.append(Row(str(value), cells))
        mark_best(rows, columns=list(range(len(noises))))
        columns = [Label(n) for n in noises] + [Label(t) for _, t in PARAM_COLUMNS]
        blocks.append(Block(key, Label(key), Label(row_key), columns, rows))
    used = ", ".join(level_label(v) for v in sorted((final["sparsity"] * 100).round(1).unique()))
    where = ("each trial's highest sparsity level" if opts.sparsity is None
             else f"each trial's level nearest {opts.sparsity * 100:g}% sparsity")
    notes = [f"{opts.metric}{trials.unit} at {where} (sparsity used: {used}%); "
             "Params: total_params, Non-zero: nonzero_params at that level, in millions; "
             "best value per noise column marked",
             *trials.notes, *_std_note(blocks)]
    return TableModel(f"Comparison: {opts.metric}{trials.unit}",
                      "/".join(["dataset", *opts.rows[:-1]]), row_key, blocks, notes)
