"""Which files of a results folder a sweep wrote: their names, schema and sweep id.

One place for what identifies a sweep's Parquet files, so that compaction (compact.py) merges
and deletes nothing else:

- **name**: `<table>/<trial_id>/a<attempt>-e<last epoch>.parquet` (a trial's appended rows,
  tune/results.py) or `<table>/compacted-<16 hex>.parquet` (compact.py);
- **schema**: the table's key columns (`trial_id` and `global_epoch` or `round`, plus the
  columns every file of the table has, load.TABLE_SIGNATURES) and the sweep columns in their
  fixed types (`SWEEP_COLUMNS`);
- **sweep id**: a new sweep writes `results/ts3ray-results.json` holding a random id, and every
  file it writes carries that id in its Parquet schema metadata (`ts3ray.sweep_id`). A folder
  without the manifest (a sweep from before ids) owns the files that carry no id.
"""
from __future__ import annotations

import json
import re
import time
import uuid

import pyarrow as pa

from ts3ray import storage
from ts3ray.errors import DamagedData, one_line
from ts3ray.results.load import ROW_KEYS, TABLE_SIGNATURES

MANIFEST = "ts3ray-results.json"
SWEEP_ID_KEY = b"ts3ray.sweep_id"
COMPACTED_PREFIX = "compacted-"
CHUNK_NAME = re.compile(r"a\d{3,}-e\d{7,}\.parquet")
COMPACTED_NAME = re.compile(COMPACTED_PREFIX + r"[0-9a-f]{16}\.parquet")
NAMES = "<trial>/aNNN-eNNNNNNN.parquet or compacted-<16 hex>.parquet"

# Columns a sweep adds to both tables, with fixed types so that every file of a sweep has the
# same schema (a column that is None in every row would otherwise be typed `null`).
SWEEP_COLUMNS: dict[str, pa.DataType] = {
    "sweep": pa.string(),
    "trial_id": pa.string(),
    "attempt": pa.int64(),  # 1 + the attempt of the checkpoint this attempt resumed from
    "node": pa.string(),
    "resumed_from": pa.int64(),  # global epoch this attempt restored (0: a fresh start)
    "started_at": pa.float64(),  # wall-clock start of this attempt (time.time())
    "written_at": pa.float64(),  # wall-clock time this file was written
    "selected_on": pa.string(),  # what the sweep chose on: val | clean_val | test | null
}


def chunk_name(attempt: int, last_epoch: int) -> str:
    return f"a{attempt:03d}-e{last_epoch:07d}.parquet"


def compacted_name(digest: str) -> str:
    return f"{COMPACTED_PREFIX}{digest[:16]}.parquet"


def key_columns(table: str) -> tuple[str, ...]:
    """The columns that identify one row of `table` in a sweep (its trial, epoch or level)."""
    return ("trial_id", *ROW_KEYS[table])


# ---- the sweep id -------------------------------------------------------------------------

def read_sweep_id(results: str) -> str | None:
    """The id in `results`/ts3ray-results.json, or None when there is no manifest."""
    location = storage.join(results, MANIFEST)
    raw = storage.read_bytes(location)
    if raw is None:
        return None
    try:
        found = json.loads(raw)["sweep_id"]
        if not isinstance(found, str) or not re.fullmatch(r"[0-9a-f]{32}", found):
            raise ValueError(f"sweep_id {found!r} is not 32 hex digits")
    except (ValueError, KeyError, TypeError) as err:
        raise DamagedData(f"{location} is not a ts3ray results manifest "
                          f"({one_line(str(err), 120)}); restore it") from None
    return found


def own_sweep_id(results: str, name: str, *, create: bool) -> str | None:
    """The sweep's id: read from its manifest, or (`create`: a new sweep) a new one written
    there. A resumed sweep without a manifest keeps none, so its earlier files stay its own."""
    found = read_sweep_id(results)
    if found is not None or not create:
        return found
    sweep_id = uuid.uuid4().hex
    storage.write_text_atomic(storage.join(results, MANIFEST), json.dumps(
        {"sweep_id": sweep_id, "name": name, "created_at": time.time()}, indent=1))
    return sweep_id


def file_sweep_id(schema: pa.Schema) -> str | None:
    raw = (schema.metadata or {}).get(SWEEP_ID_KEY)
    return None if raw is None else raw.decode("utf-8", "replace")


def id_metadata(sweep_id: str | None) -> dict[bytes, bytes]:
    return {} if sweep_id is None else {SWEEP_ID_KEY: sweep_id.encode()}


# ---- is this file the sweep's? ------------------------------------------------------------

def name_problem(relative: str) -> str | None:
    """Why a path (relative to the table folder) is not a name the sweep writes, or None."""
    parts = relative.split("/")
    if len(parts) == 1 and COMPACTED_NAME.fullmatch(parts[0]):
        return None
    if len(parts) == 2 and CHUNK_NAME.fullmatch(parts[1]):
        return None
    return f"not a ts3ray file: its name is not {NAMES}"


def schema_problem(schema: pa.Schema, table: str) -> str | None:
    """Why `schema` is not that of a sweep's `table` file, or None."""
    required, forbidden = TABLE_SIGNATURES[table]
    names = set(schema.names)
    missing = [c for c in dict.fromkeys([*required, *key_columns(table)]) if c not in names]
    if missing:
        return f"schema differs: lacks column(s) {', '.join(missing)}"
    extra = [c for c in forbidden if c in names]
    if extra:
        return f"schema differs: has column(s) {', '.join(extra)} of the other table"
    for column in key_columns(table)[1:]:
        if not pa.types.is_integer(schema.field(column).type):
            return f"schema differs: {column} is {schema.field(column).type}, not an integer"
    for column, kind in SWEEP_COLUMNS.items():
        if column in names and schema.field(column).type != kind:
            return f"schema differs: {column} is {schema.field(column).type}, not {kind}"
    return None


def id_problem(schema: pa.Schema, sweep_id: str | None) -> str | None:
    """Why a file's sweep id is not `sweep_id` (None: the folder has no manifest), or None."""
    found = file_sweep_id(schema)
    if found == sweep_id:
        return None
    if found is None:
        return f"carries no sweep id; this sweep's is {sweep_id}"
    own = f"this sweep's is {sweep_id}" if sweep_id else f"this folder has no {MANIFEST}"
    return f"another sweep's id {found}; {own}"


def _compatible(a: pa.DataType, b: pa.DataType) -> bool:
    numeric = (pa.types.is_integer, pa.types.is_floating)
    return (a == b or pa.types.is_null(a) or pa.types.is_null(b)
            or (any(f(a) for f in numeric) and any(f(b) for f in numeric)))


def type_conflicts(schemas: dict[str, pa.Schema]) -> dict[str, str]:
    """{path: why} for files with a column whose type the other files' cannot join: the
    type most files give a column is the sweep's."""
    counts: dict[str, dict[pa.DataType, int]] = {}
    for schema in schemas.values():
        for f in schema:
            if not pa.types.is_null(f.type):
                counts.setdefault(f.name, {}).setdefault(f.type, 0)
                counts[f.name][f.type] += 1
    usual = {name: max(kinds, key=kinds.get) for name, kinds in counts.items()}
    out = {}
    for path, schema in schemas.items():
        for f in schema:
            if f.name in usual and not _compatible(f.type, usual[f.name]):
                out[path] = f"schema differs: {f.name} is {f.type}, the sweep's is {usual[f.name]}"
                break
    return out
