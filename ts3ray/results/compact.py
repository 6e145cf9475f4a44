"""Compaction: a sweep's small per-attempt Parquet files become one file per table.

Trials append one small file per table and checkpoint (tune/results.py); at 10,000 trials that
is tens of thousands of objects, each opened by every reader. `compact(results)` reads every
file of a table once, keeps one copy of each row (the newest attempt's, should a retry have
written an epoch twice), sorts the rows by trial and epoch, writes them as
`<table>/compacted-<digest>.parquet` and then deletes the files it read.

Safe to rerun and to run while trials still write: a table already held in one compacted file
is left alone; files written after the listing are not touched and join the next
compaction; a crash between the write and the deletes leaves the same rows twice, which
readers (and the next compaction) reduce to one copy.
"""
from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ts3ray import storage
from ts3ray.errors import UserError
from ts3ray.results.writer import write_parquet

COMPACTED_PREFIX = "compacted-"
ROW_KEYS = {"epochs": ("global_epoch",), "levels": ("round",)}
NEWEST_LAST = ("attempt", "written_at")  # among copies of a row, the newest sorts last


def _files(fs: pafs.FileSystem, root: str) -> list[str]:
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return []
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File
                  and i.path.endswith(".parquet")
                  and not any(p.startswith((".", "_")) for p in i.path[len(root):].split("/")))


def _read(fs: pafs.FileSystem, files: list[str]) -> pa.Table:
    tables = [pq.read_table(f, filesystem=fs) for f in files]
    return pa.concat_tables(tables, promote_options="permissive")


def newest_copies(table: pa.Table, name: str) -> pa.Table:
    """One row per (trial, epoch) or (trial, round), the newest attempt's, sorted by key."""
    trial = "trial_id" if "trial_id" in table.column_names else "run_id"
    keys = [trial, *ROW_KEYS[name]]
    order = [(k, "ascending") for k in keys] + [(c, "ascending") for c in NEWEST_LAST
                                                if c in table.column_names]
    table = table.sort_by(order)
    if table.num_rows < 2:
        return table
    same_as_next = None
    for key in keys:  # row i is a superseded copy when row i + 1 has the same key
        column = table.column(key)
        equal = pc.equal(column.slice(0, table.num_rows - 1), column.slice(1))
        equal = pc.fill_null(equal, False)
        same_as_next = equal if same_as_next is None else pc.and_(same_as_next, equal)
    keep = pa.concat_arrays([pc.invert(same_as_next).combine_chunks(), pa.array([True])])
    return table.filter(keep)


def compact_table(results: str, name: str) -> tuple[int, int]:
    """Compact one table; returns (files before, files after)."""
    fs, root = storage.resolve(storage.join(results, name))
    files = _files(fs, root)
    if len(files) <= 1 and all(f.rsplit("/", 1)[-1].startswith(COMPACTED_PREFIX) for f in files):
        return len(files), len(files)  # nothing to do: already one compacted file (or none)
    try:
        merged = newest_copies(_read(fs, files), name)
    except (pa.ArrowInvalid, OSError) as err:
        raise UserError(f"results compact: cannot read the {name} files under {root}: "
                        f"{str(err).splitlines()[0]}") from None
    digest = hashlib.sha1("\n".join(files).encode()).hexdigest()[:16]
    target = f"{root}/{COMPACTED_PREFIX}{digest}.parquet"
    write_parquet(merged, storage.join(storage.join(results, name), target.rsplit("/", 1)[-1]))
    for path in files:
        if path != target:
            fs.delete_file(path)
    _remove_empty_folders(fs, root)
    return len(files), len(_files(fs, root))


def _remove_empty_folders(fs: pafs.FileSystem, root: str) -> None:
    """Local disks keep empty trial folders after their files are gone; object stores do not."""
    if not isinstance(fs, pafs.LocalFileSystem):
        return
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    for info in sorted((i for i in infos if i.type == pafs.FileType.Directory),
                       key=lambda i: -len(i.path)):
        if not fs.get_file_info(pafs.FileSelector(info.path)):
            fs.delete_dir(info.path)


def compact(results: str) -> dict[str, tuple[int, int]]:
    """Compact every table of a sweep's `results` location."""
    return {name: compact_table(results, name) for name in ROW_KEYS}
