"""Read many small Parquet files one at a time, in bounded memory.

A sweep's trials append one small file per table and checkpoint (tune/results.py), so a reader
may face thousands of files of a few rows each. One `pyarrow.dataset` scan over them keeps
per-file state: `read_table` of the `levels` files of 2,000 trials (one row each) raised the
process's RSS by 540 MB that way. Opening each file in turn and merging the tables every
`GROUP` files raises it by 46 MB, and is faster (3.4 s against 4.5 s; measured on the files
that `benchmarks/bench_sweep_scale.py --trials 2000` writes).
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

GROUP = 256  # files merged into one chunk: a chunk per file costs ~1 KB per column and file


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    """One table; schemas are unified (a null column joins a typed one, int joins float)."""
    return pa.concat_tables(tables, promote_options="permissive")


def schema(fs: pafs.FileSystem, path: str) -> pa.Schema:
    """The Arrow schema of one file (its footer only)."""
    with fs.open_input_file(path) as handle:
        return pq.ParquetFile(handle).schema_arrow


def read_file(fs: pafs.FileSystem, path: str, columns: Sequence[str] | None = None,
              check: Callable[[pa.Schema, str], None] | None = None) -> pa.Table:
    """One file, or the `columns` of it that it has; `check(schema, path)` may refuse it
    before its data is read."""
    with fs.open_input_file(path) as handle:
        parquet = pq.ParquetFile(handle)
        found = parquet.schema_arrow
        if check is not None:
            check(found, path)
        wanted = None if columns is None else [c for c in columns if c in found.names]
        return parquet.read(columns=wanted, use_threads=False)


def merged_chunks(tables: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """The tables, merged every `GROUP` tables into one chunk."""
    pending = []
    for table in tables:
        pending.append(table)
        if len(pending) == GROUP:
            yield concat(pending).combine_chunks()
            pending = []
    if pending:
        yield concat(pending).combine_chunks()


def merged(tables: Iterable[pa.Table]) -> pa.Table:
    """The tables as one, with few chunks (`merged_chunks`)."""
    done = list(merged_chunks(tables))
    return concat(done) if done else pa.table({})


def conform(table: pa.Table, target: pa.Schema) -> pa.Table:
    """`table` with the columns of `target`, in its order and types (missing ones null)."""
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names
               else pa.nulls(table.num_rows, f.type) for f in target]
    return pa.Table.from_arrays(columns, schema=target)
