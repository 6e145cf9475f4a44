"""`ts3ray table rungs`: whether an early IMP level ranks the trials as the last level does
(from Parquet only, no Ray).

Level-aware ASHA (tune/scheduler.py) cuts at level ends on the selection column (S's
validation accuracy by default). A cut saves time without regret only if the trials that
lead at that level still lead at the last one. For each level before the last, per setting:
the Spearman rank correlation of the column with the last level's over the trials that
finished every level, and where the last level's best trial ranked at that level. Near 0
means a rung there cuts at random. Run it on a complete grid (no early stopping) of the
kind you mean to search with ASHA. In an ASHA sweep only the survivors finished, and they
are a selected sample.
"""
from __future__ import annotations

from dataclasses import replace

import pandas as pd

from ts3ray.errors import UserError
from ts3ray.results.load import TRIAL, settings_in_order
from ts3ray.results.table_model import Block, Cell, Label, Row, TableModel
from ts3ray.results.tables import TableOptions, full_budget


def level_agreement(levels: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per level k before the last (one levels row per trial and level): `spearman` of
    `column` at k with the last level's, `best_rank` (1 + the trials strictly ahead at k of
    the last level's best, ties by trial id) and `trials`, over the trials with every level."""
    wide = levels.pivot_table(index=TRIAL, columns="round", values=column).dropna()
    last = wide.columns.max()
    best = wide[last].sort_index().idxmax()  # idxmax: the first of a tie, ids in order
    return pd.DataFrame(
        [{"level": int(k), "spearman": wide[k].corr(wide[last], method="spearman"),
          "best_rank": int((wide[k] > wide.loc[best, k]).sum()) + 1, "trials": len(wide)}
         for k in wide.columns if k != last])


def rungs_table(levels: pd.DataFrame, opts: TableOptions) -> TableModel:
    """A block per setting, a row per level before the last."""
    what, column = "rungs", opts.select
    trials = full_budget(levels, replace(opts, metric=column), ["round", column], what)
    blocks = []
    for setting in settings_in_order(trials.rows):
        agreement = level_agreement(trials.rows[trials.rows["_setting"] == setting], column)
        if agreement.empty:
            continue  # one level only: nothing before the last
        n = int(agreement["trials"].iloc[0])
        rows = [Row(f"level {int(a.level)}", [Cell(float(a.spearman)),
                                             Cell(float(a.best_rank), decimals=0)])
                for a in agreement.itertuples()]
        blocks.append(Block(setting, Label(f"{setting} ({n} trials)"), Label("level"),
                            [Label("Spearman with the last level"),
                             Label(f"rank of the last level's best (of {n})")], rows))
    if not blocks:
        raise UserError(f"{what}: RESULTS holds trials of one IMP level only (rounds=0); "
                        "a rung needs a level before the last")
    notes = [f"ranked on {column}: each level's value against the last level's, over the "
             "trials that finished every level; near 0, an ASHA rung at that level cuts at "
             "random (run it on a complete grid: an ASHA sweep's survivors are a selected "
             "sample)", *trials.notes]
    return TableModel(f"Rung signal: {column} at each level against the last level",
                      "setting", "level", blocks, notes, decimals=2)
