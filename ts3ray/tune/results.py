"""A sweep's Parquet rows: appended by trials in small files, derived, compacted.

Layout (storage.SweepLayout): `<results>/<table>/<trial_id>/a<attempt>-e<last epoch>.parquet`
for tables `epochs` and `levels`. A trial attempt appends, at every level end and checkpoint,
one file per table holding the rows it produced since its previous write (tagged with the
sweep's id, results/sweep_files.py): never a rewrite of earlier rows, one upload per file on
object stores. Each file carries the columns of the
attempt that wrote it (`attempt`, `node`, `started_at`, `written_at`), so a retried trial
keeps the history of where each row came from. The rows are written *before* the checkpoint
that covers them is reported, so a retry resumes at or after every row already written and
appends only later epochs; should a write land and its checkpoint not (a crash in between),
the retry writes those epochs again, and readers keep the newest attempt's copy.

Nothing about a trial's fate is written by the driver: full budget or stopped early (and
where) follows from the rows themselves (results/load.py: the last epoch against
(R + 1) x E), so a dead driver leaves correct data. `compact()` (results/compact.py) merges
the small files into one file per table.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ts3ray import provenance, storage
from ts3ray.results.sweep_files import SWEEP_COLUMNS, chunk_name, id_metadata
from ts3ray.results.writer import TABLE_BUILDERS, write_parquet

__all__ = ["SWEEP_COLUMNS", "TrialInfo", "TrialWriter", "chunk_location", "row_budget"]


@dataclass(frozen=True)
class TrialInfo:
    """What a sweep records about the trial attempt beside the run's own rows."""

    sweep: str
    trial_id: str
    attempt: int
    node: str
    resumed_from: int
    started_at: float
    written_at: float = 0.0
    selected_on: str | None = None
    provenance: dict[str, Any] | None = None  # schema metadata of every file (provenance.py)
    sweep_id: str | None = None  # schema metadata of every file (results/sweep_files.py)


def with_sweep_columns(table: pa.Table, info: TrialInfo) -> pa.Table:
    """`table` + the sweep columns, each with its fixed type."""
    for name, kind in SWEEP_COLUMNS.items():
        column = pa.array([getattr(info, name)] * table.num_rows, type=kind)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            table = table.append_column(name, column)
    return table


def chunk_location(results: str, table: str, trial_id: str, attempt: int, last_epoch: int) -> str:
    return storage.join(results, table, trial_id, chunk_name(attempt, last_epoch))


class TrialWriter:
    """Appends the rows of one trial attempt that are not yet in storage."""

    def __init__(self, results: str, info: TrialInfo, run):
        self.results, self.info = results, info
        # rows restored from a checkpoint were written before that checkpoint was reported
        self.written = {"epochs": len(run.epoch_rows), "levels": len(run.level_rows)}

    def flush(self, run) -> int:
        """Write the new rows of each table as one file; returns the number of files."""
        info = dataclasses.replace(self.info, written_at=time.time())
        config_values = run.config.to_dict()
        files = 0
        for table, rows in (("epochs", run.epoch_rows), ("levels", run.level_rows)):
            new = rows[self.written[table]:]
            if not new:
                continue
            built = with_sweep_columns(TABLE_BUILDERS[table](new, config_values), info)
            meta = {**(built.schema.metadata or {}), **id_metadata(info.sweep_id)}
            if info.provenance:
                meta.update(provenance.as_metadata(info.provenance))
            built = built.replace_schema_metadata(meta or None)
            write_parquet(built, chunk_location(self.results, table, info.trial_id, info.attempt,
                                                run.global_epoch))
            self.written[table] = len(rows)
            files += 1
        return files


def row_budget(values: dict[str, Any]) -> int:
    """Epochs of a full-budget trial: (R + 1) x E."""
    return (int(values["rounds"]) + 1) * int(values["epochs"])
