"""Read the `levels` / `epochs` Parquet tables of a sweep or a run into pandas.

RESULTS may be a sweep directory `<storage>/<name>`, its `results/` directory, a `levels` or
`epochs` dataset directory (files partitioned any way), a run directory holding
`levels.parquet` / `epochs.parquet`, a directory of such run directories, or one
`.parquet` file; local paths and `pyarrow.fs`
URIs (`s3://...`) both work. Files are found recursively; names starting with `.` or `_`
(temporary files of the atomic writer) are skipped, and so are files of the other table.
Schemas of the files are unified, so a column that is null in one file and filled in
another reads as one column. Partition folder names (`key=value`) are not turned into
columns: every row carries its own columns (docs/CONTRACTS.md).

Only full-budget trials compare fairly. Whether a trial ran its full budget is derived from
its rows when they are read (`add_budget_status`): its last epoch against (R + 1) x E, so the
answer needs no bookkeeping by a driver that may have died. `stopped_early` then covers every
trial that did not finish (stopped by ASHA at a level end, failed, or interrupted), with
`stopped_at_epoch` its last epoch; `drop_early_stopped` removes every row of such a trial and
says how many trials it removed.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs

from ts3ray import storage
from ts3ray.errors import UserError, one_line
from ts3ray.results import scan

TABLES = ("levels", "epochs")
SETTING_COLUMNS = ("dataset", "noise", "noise_rate")
TRIAL = "_trial"  # derived column: trial_id where present, else run_id


def _info(fs: pafs.FileSystem, path: str) -> pafs.FileInfo:
    return fs.get_file_info(path)


def _parquet_files(fs: pafs.FileSystem, root: str, table: str) -> list[str]:
    """Visible `.parquet` files under `root`, sorted; hidden / `_` names and files of the
    other table (named `<other>.parquet` or inside a folder `<other>`) are skipped."""
    other = next(t for t in TABLES if t != table)
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    found = []
    for info in infos:
        parts = info.path[len(root):].lstrip("/").split("/")
        skip = any(p.startswith((".", "_")) or p in (other, f"{other}.parquet") for p in parts)
        if info.type == pafs.FileType.File and info.path.endswith(".parquet") and not skip:
            found.append(info.path)
    return sorted(found)


def resolve_table(results: str, table: str) -> tuple[pafs.FileSystem, list[str]]:
    """The Parquet files of `table` ('levels' or 'epochs') that RESULTS points at."""
    fs, root = storage.resolve(str(results))
    info = _info(fs, root)
    if info.type == pafs.FileType.NotFound:
        raise UserError(f"RESULTS '{results}' does not exist")
    if info.type == pafs.FileType.File:
        if not root.endswith(".parquet"):
            raise UserError(f"RESULTS '{results}' is not a .parquet file or a directory")
        return fs, [root]
    for candidate in (f"{root}/results/{table}", f"{root}/{table}", f"{root}/{table}.parquet"):
        kind = _info(fs, candidate).type
        if kind == pafs.FileType.File:
            return fs, [candidate]
        if kind == pafs.FileType.Directory:
            return fs, _nonempty(fs, candidate, table, results)
    other = next(t for t in TABLES if t != table)
    name = root.rstrip("/").rsplit("/", 1)[-1]
    has_other = any(
        _info(fs, p).type != pafs.FileType.NotFound
        for p in (f"{root}/results/{other}", f"{root}/{other}", f"{root}/{other}.parquet")
    )
    if name == other or has_other:
        raise UserError(
            f"RESULTS '{results}' holds the {other} table, but this needs the {table} table; "
            f"pass the sweep directory or the {table} dataset"
        )
    return fs, _nonempty(fs, root, table, results)


def _nonempty(fs: pafs.FileSystem, root: str, table: str, results: str) -> list[str]:
    files = _parquet_files(fs, root, table)
    if not files:
        raise UserError(
            f"RESULTS '{results}' holds no Parquet files (expected a sweep directory with "
            "results/levels/ and results/epochs/, a run directory or a .parquet file)"
        )
    return files


# Columns every file of a table has (and, for levels, one it never has): a file in a results
# folder without them is not ts3ray's (or belongs to the other table) and is not merged.
TABLE_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "levels": (("run_id", "round"), ("epoch",)),
    "epochs": (("run_id", "round", "epoch"), ()),
}


def _read_file(fs: pafs.FileSystem, file: str, results: str, columns, check) -> pa.Table:
    try:
        return scan.read_file(fs, file, columns, check)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise UserError(f"RESULTS '{results}': {file} is not a readable Parquet file "
                        f"({one_line(str(err), 120)}); delete it or move it out of the results")


def check_signature(schema: pa.Schema, file: str, table: str, results: str) -> None:
    """UserError naming `file` unless its columns are those of a ts3ray `table` file."""
    required, forbidden = TABLE_SIGNATURES[table]
    names = set(schema.names)
    missing = [c for c in required if c not in names]
    extra = [c for c in forbidden if c in names]
    if missing or extra:
        why = (f"lacks column(s) {', '.join(missing)}" if missing
               else f"has column(s) {', '.join(extra)} of the other table")
        raise UserError(f"RESULTS '{results}': {file} is not a ts3ray {table} file ({why}); "
                        "move it out of the results folder")


# Columns that deriving one copy per row and the budget status needs (read with any selection)
DERIVATION_COLUMNS = ("run_id", "trial_id", "round", "epoch", "global_epoch", "rounds", "epochs",
                      "attempt", "written_at")


def read_table(results: str, table: str, columns=None) -> pd.DataFrame:
    """All rows of `table` under RESULTS as one DataFrame (schemas unified across files);
    with `columns`, only those (and the ones the derived columns need).

    Files are read one at a time (scan.py: bounded memory for thousands of small files) and,
    when a folder's files are merged, each is checked to be a ts3ray file of `table` first: a
    corrupt or foreign Parquet file is named in a UserError, never merged."""
    if table not in TABLES:
        raise ValueError(f"table must be one of {TABLES}, got {table!r}")
    fs, files = resolve_table(results, table)
    is_file = _info(fs, storage.resolve(str(results))[1]).type == pafs.FileType.File
    checked = len(files) > 1 or not is_file

    def check(schema: pa.Schema, file: str) -> None:
        if checked and len(schema):  # a run writes a column-less table until its first
            check_signature(schema, file, table, results)  # level ends: skipped below

    wanted = None if columns is None else list(dict.fromkeys([*DERIVATION_COLUMNS, *columns]))
    parts = (_read_file(fs, f, results, wanted, check) for f in files)
    try:
        frame = scan.merged(part for part in parts if part.num_columns)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
        first = str(err).splitlines()[0]
        raise UserError(f"RESULTS '{results}': cannot read the {table} Parquet files: {first}")
    return add_budget_status(newest_copies(frame.to_pandas(), table), table)


ROW_KEYS = {"epochs": ("global_epoch",), "levels": ("round",)}  # a row, within its trial
NEWEST_LAST = ("attempt", "written_at")  # among copies of a row, the newest sorts last


def newest_copies(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """One row per trial and epoch (or level): the newest attempt's, should a retry have
    written an epoch a second time (tune/results.py)."""
    if "trial_id" not in df.columns or not set(ROW_KEYS[table]) <= set(df.columns):
        return df
    key = add_trial_key(df)[TRIAL]
    order = [c for c in NEWEST_LAST if c in df.columns]
    ranked = df.assign(_key=key).sort_values(order, kind="stable") if order else df.assign(_key=key)
    newest = ranked.drop_duplicates(subset=["_key", *ROW_KEYS[table]], keep="last")
    return newest.drop(columns="_key").sort_index()


def add_budget_status(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """Columns `stopped_early` and `stopped_at_epoch` derived from the rows: a trial (or run)
    ran its full budget when its last epoch is (R + 1) x E. In `levels`, the last epoch is
    the end of its last finished level."""
    if df.empty or not {"rounds", "epochs", "run_id"} <= set(df.columns):
        return df
    key = df["run_id"].astype(str)
    if "trial_id" in df.columns:
        key = df["trial_id"].astype(object).where(df["trial_id"].notna(), key).astype(str)
    epochs = df["epochs"].astype("int64")
    if table == "epochs":
        last = df["global_epoch"].astype("int64").groupby(key).transform("max")
    else:
        last = (df["round"].astype("int64").groupby(key).transform("max") + 1) * epochs
    stopped = last < (df["rounds"].astype("int64") + 1) * epochs
    return df.assign(stopped_early=stopped,
                     stopped_at_epoch=last.where(stopped).astype("Int64"))


def require_columns(df: pd.DataFrame, columns, table: str, what: str) -> None:
    """Raise a one-line UserError naming every required column the table lacks."""
    missing = [c for c in dict.fromkeys(columns) if c not in df.columns]
    if missing:
        raise UserError(
            f"{what}: the {table} table lacks required column(s): {', '.join(missing)}"
        )


def check_metric(df: pd.DataFrame, metric: str, table: str) -> None:
    """`metric` must be a numeric column of `table`; the message lists the allowed ones."""
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])
               and not pd.api.types.is_bool_dtype(df[c]) and not c.startswith("_")]
    if metric not in numeric:
        allowed = ", ".join(c for c in numeric if c.startswith("acc")) or ", ".join(numeric)
        raise UserError(
            f"metric={metric!r} is not a numeric column of the {table} table; "
            f"choose e.g. one of: {allowed}"
        )


def add_trial_key(df: pd.DataFrame) -> pd.DataFrame:
    """Add column `_trial`: `trial_id` if present (and set), else `run_id`."""
    out = df.copy()
    run = out["run_id"].astype(str)
    if "trial_id" in out.columns:
        out[TRIAL] = out["trial_id"].astype(object).where(out["trial_id"].notna(), run)
        out[TRIAL] = out[TRIAL].astype(str)
    else:
        out[TRIAL] = run
    return out


# Config columns that identify what a level computes; p_f, R and the output-pruning switch
# cannot change level 0 (nothing is pruned yet), where the data lives and runs never does.
_NOT_COMPUTED = {"data_root", "device", "eval_batch_size"}
_NOT_AT_LEVEL_ZERO = {"prune_fraction", "rounds", "prune_output"}


def drop_repeated_dense_levels(levels: pd.DataFrame) -> pd.DataFrame:
    """Keep one round-0 row per computation: sparsity trials that differ only in p_f (or R)
    train the same dense level 0, and counting its copies would fake a std over seeds."""
    from ts3ray.config import FIELD_NAMES

    if "round" not in levels.columns:
        return levels
    keys = [c for c in FIELD_NAMES if c in levels.columns
            and c not in _NOT_COMPUTED | _NOT_AT_LEVEL_ZERO]
    zero = levels[levels["round"] == 0]
    repeated = zero.index[zero.duplicated(subset=keys, keep="first")]
    return levels.drop(index=repeated)


def drop_early_stopped(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows of full-budget trials only, and the number of early-stopped trials removed."""
    if "stopped_early" not in df.columns:
        return df, 0
    stopped = df["stopped_early"].fillna(False).astype(bool)
    stopped_trials = set(df.loc[stopped, TRIAL])
    kept = df[~df[TRIAL].isin(stopped_trials)]
    return kept, len(stopped_trials)


SELECTION_NOTES = {
    "test": "selected on test: the sweep chose on test accuracy (--objective test), so these "
            "test numbers are optimistic",
    "val": "trials chosen on validation accuracy (a held-out part of the noisy training set); "
           "test accuracy reported only",
    "clean_val": "trials chosen on the dataset's clean validation set; test accuracy reported "
                 "only",
}


def selection_notes(df: pd.DataFrame) -> list[str]:
    """What the rows' sweep selected on (column `selected_on`), as table/plot notes; the
    test note comes first so that no reader misses it."""
    if "selected_on" not in df.columns:
        return []
    found = set(df["selected_on"].dropna().astype(str))
    return [SELECTION_NOTES[s] for s in ("test", "val", "clean_val") if s in found]


def latest_attempt(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per `keys` (e.g. trial and round): the one of the highest `attempt`."""
    if "attempt" in df.columns:
        df = df.sort_values("attempt", kind="stable", na_position="first")
    return df.drop_duplicates(subset=keys, keep="last")


def final_level(levels: pd.DataFrame, sparsity: float | None = None) -> pd.DataFrame:
    """One levels row per trial: its highest round, or the level nearest `sparsity`."""
    if sparsity is None:
        order = levels.sort_values([TRIAL, "round"], kind="stable")
        return order.drop_duplicates(subset=[TRIAL], keep="last")
    distance = (levels["sparsity"].astype(float) - sparsity).abs()
    order = levels.assign(_distance=distance).sort_values([TRIAL, "_distance", "round"])
    return order.drop_duplicates(subset=[TRIAL], keep="first").drop(columns="_distance")


def format_rate(rate: float) -> str:
    """0.4 -> '40%', 0.125 -> '12.5%'."""
    return f"{round(float(rate) * 100, 4):g}%"


def setting_label(dataset, noise, noise_rate, *, with_dataset: bool = True) -> str:
    """A setting as in the contract, e.g. 'cifar10 sym-40%' ('cifar10 clean' for no noise)."""
    clean = noise == "none" or pd.isna(noise_rate) or float(noise_rate) == 0.0
    noisy = "clean" if clean else f"{noise}-{format_rate(noise_rate)}"
    return f"{dataset} {noisy}" if with_dataset else noisy


def add_setting(df: pd.DataFrame) -> pd.DataFrame:
    """Add `_setting`, the setting label of each row (from dataset, noise, noise_rate)."""
    out = df.copy()
    out["_setting"] = [setting_label(d, n, r) for d, n, r in
                       zip(out["dataset"], out["noise"], out["noise_rate"])]
    return out


def settings_in_order(df: pd.DataFrame) -> list[str]:
    """Distinct setting labels sorted by dataset, noise kind, noise rate."""
    keys = df[["dataset", "noise", "noise_rate", "_setting"]].drop_duplicates()
    keys = keys.sort_values(["dataset", "noise", "noise_rate"])
    return list(dict.fromkeys(keys["_setting"]))


def percent_scale(values) -> tuple[float, str]:
    """(100, ' (%)') when every finite value is a fraction in [0, 1], else (1, '')."""
    arr = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size and arr.min() >= 0.0 and arr.max() <= 1.0:
        return 100.0, " (%)"
    return 1.0, ""


def prepare(df: pd.DataFrame, table: str, required, what: str) -> pd.DataFrame:
    """Check columns, add the trial key and setting label, keep the latest attempt."""
    require_columns(df, ["run_id", "round", *SETTING_COLUMNS, *required], table, what)
    df = add_setting(add_trial_key(df))
    keys = [TRIAL, "round"] + (["epoch"] if table == "epochs" and "epoch" in df.columns else [])
    return latest_attempt(df, keys)
