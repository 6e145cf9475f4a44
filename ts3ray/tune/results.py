"""Per-trial Parquet files of a sweep: `<results>/epochs/<trial_id>.parquet` and
`<results>/levels/<trial_id>.parquet` (docs/CONTRACTS.md, "Parquet results").

One file per trial and table, always rewritten whole and atomically: a retried trial
replaces its own rows instead of adding a second copy, and the files of finished trials
survive a crash of the driver. `results` is a local directory or a `pyarrow.fs` URI.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ts3ray.results.writer import epoch_table, level_table, resolve, write_atomic

TABLE_BUILDERS = {"epochs": epoch_table, "levels": level_table}

# Columns a sweep adds to both tables, with fixed types so that every trial's file has the
# same schema (a column that is None in every row would otherwise be typed `null`).
SWEEP_COLUMNS: dict[str, pa.DataType] = {
    "sweep": pa.string(),
    "trial_id": pa.string(),
    "attempt": pa.int64(),
    "node": pa.string(),
    "stopped_early": pa.bool_(),
    "stopped_at_epoch": pa.int64(),
    "resumed_from": pa.int64(),  # global epoch this attempt restored (0: a fresh start)
    "started_at": pa.float64(),  # wall-clock start of this attempt (time.time())
    "updated_at": pa.float64(),  # wall-clock time of this file's last write by the trial
    "selected_on": pa.string(),  # what the sweep chose on: val | clean_val | test | null
}


@dataclass(frozen=True)
class TrialInfo:
    """What a sweep records about the trial beside the run's own rows."""

    sweep: str
    trial_id: str
    attempt: int
    node: str
    resumed_from: int
    started_at: float
    updated_at: float = 0.0
    selected_on: str | None = None
    stopped_early: bool = False
    stopped_at_epoch: int | None = None

    def columns(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SWEEP_COLUMNS}


def trial_path(results: str, table: str, trial_id: str) -> str:
    return f"{str(results).rstrip('/')}/{table}/{trial_id}.parquet"


def with_sweep_columns(table: pa.Table, info: TrialInfo) -> pa.Table:
    """`table` + the sweep columns (replacing them if present), each with its fixed type."""
    for name, kind in SWEEP_COLUMNS.items():
        column = pa.array([getattr(info, name)] * table.num_rows, type=kind)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            table = table.append_column(name, column)
    return table


def write_trial(results: str, info: TrialInfo, run) -> None:
    """Write all rows `run` holds so far (epochs and, once a level is done, levels)."""
    info = dataclasses.replace(info, updated_at=time.time())
    config_values = run.config.to_dict()
    for table, rows in (("epochs", run.epoch_rows), ("levels", run.level_rows)):
        if rows:
            built = TABLE_BUILDERS[table](rows, config_values)
            write_atomic(with_sweep_columns(built, info), trial_path(results, table, info.trial_id))


def read_trial(results: str, table: str, trial_id: str) -> pa.Table | None:
    fs, path = resolve(trial_path(results, table, trial_id))
    if fs.get_file_info(path).type.name != "File":
        return None
    with fs.open_input_file(path) as handle:
        return pq.read_table(handle)


def next_attempt(results: str, trial_id: str) -> int:
    """Count this start of the trial: 1 for the first, 2 for the first retry or resume...
    The count lives in `<results>/_attempts/<trial_id>` (written before any training, so a
    start that crashes before its first Parquet write still counts)."""
    fs, path = resolve(f"{str(results).rstrip('/')}/_attempts/{trial_id}")
    previous = 0
    if fs.get_file_info(path).type.name == "File":
        with fs.open_input_stream(path) as handle:
            previous = int(handle.read().decode().strip() or 0)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = f"{path}.tmp"
    with fs.open_output_stream(tmp) as out:
        out.write(f"{previous + 1}\n".encode())
    fs.move(tmp, path)
    return previous + 1


def mark_stopped(results: str, trial_id: str, stopped_early: bool, last_epoch: int) -> None:
    """Rewrite the trial's files with the driver's verdict (ASHA stops trials silently)."""
    for table_name in TABLE_BUILDERS:
        table = read_trial(results, table_name, trial_id)
        if table is None:
            continue
        n = table.num_rows
        for name, values in (
            ("stopped_early", [stopped_early] * n),
            ("stopped_at_epoch", [last_epoch if stopped_early else None] * n),
        ):
            column = pa.array(values, type=SWEEP_COLUMNS[name])
            table = table.set_column(table.column_names.index(name), name, column)
        write_atomic(table, trial_path(results, table_name, trial_id))
