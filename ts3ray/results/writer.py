"""Parquet rows of lottery runs: the documented schema, written atomically.

Local paths and `pyarrow.fs` URIs (`s3://...`, `gs://...`) are both accepted; the write goes
through `storage.write_atomic`, so readers never see half a file.
"""
from __future__ import annotations

from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from ts3ray import storage


def config_columns(config_values: dict[str, Any], *, lr_name: str = "lr") -> dict[str, Any]:
    """Config fields as flat Parquet-friendly columns (tuples become comma strings)."""
    out = {}
    for key, value in config_values.items():
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        out[lr_name if key == "lr" else key] = value
    return out


def epoch_table(rows: Iterable[dict[str, Any]], config_values: dict[str, Any]) -> pa.Table:
    """`epochs` rows + config columns; the config's lr is `base_lr` (`lr` is per epoch)."""
    extra = config_columns(config_values, lr_name="base_lr")
    return _table(rows, extra)


def level_table(rows: Iterable[dict[str, Any]], config_values: dict[str, Any]) -> pa.Table:
    """`levels` rows + config columns."""
    return _table(rows, config_columns(config_values))


def _table(rows: Iterable[dict[str, Any]], extra: dict[str, Any]) -> pa.Table:
    merged = [{**row, **{k: v for k, v in extra.items() if k not in row}} for row in rows]
    if not merged:
        return pa.table({})
    table = pa.Table.from_pylist(merged)
    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type):  # e.g. select_rate=None: a float column of nulls,
            table = table.set_column(i, field.name, table.column(i).cast(pa.float64()))
    return table  # so every file of a sweep has one schema


TABLE_BUILDERS = {"epochs": epoch_table, "levels": level_table}


def write_parquet(table: pa.Table, location: str) -> str:
    """Write `table` as one Parquet file, atomically (storage.write_atomic)."""
    return storage.write_atomic(location, lambda stream: pq.write_table(table, stream))
