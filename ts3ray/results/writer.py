"""Parquet rows of lottery runs: the documented schema, written atomically.

Local paths and `pyarrow.fs` URIs (`s3://...`, `gs://...`) are both accepted. A file is
written under a temporary name and moved into place, so readers never see half a file and
a rewrite (a retried trial) replaces the old file instead of adding a second one.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ts3ray.results import output


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


def resolve(path_or_uri: str) -> tuple[pafs.FileSystem, str]:
    """A filesystem and a path on it for a local path or a URI such as s3://bucket/x."""
    if "://" in str(path_or_uri):
        return pafs.FileSystem.from_uri(str(path_or_uri))
    from pathlib import Path

    return pafs.LocalFileSystem(), str(Path(path_or_uri).resolve())


def write_atomic(table: pa.Table, path_or_uri: str) -> None:
    """Write `table` to a Parquet file: temporary name first, then a rename (output.py)."""
    fs, path = resolve(path_or_uri)
    if isinstance(fs, pafs.LocalFileSystem):
        output.write_atomic(path, lambda tmp: pq.write_table(table, tmp))
        return
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = output.temp_path_for(path)
    try:
        with fs.open_output_stream(tmp) as out:
            pq.write_table(table, out)
        fs.move(tmp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.delete_file(tmp)
        raise
