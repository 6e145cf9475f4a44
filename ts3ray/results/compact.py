"""Compaction: a sweep's small per-attempt Parquet files become one file per table.

Trials append one small file per table and checkpoint (tune/results.py); at 10,000 trials that
is tens of thousands of objects, each opened by every reader. `compact(results)` streams every
file of a table once, trial by trial (files of a trial live in its folder), keeps one copy of
each row (the newest attempt's, should a retry have written an epoch twice), and writes the
rows, each trial's sorted by epoch, through one Parquet writer as
`<table>/compacted-<digest>.parquet`; then it deletes the files it read. Memory is bounded by
one row group (`ROWS_PER_GROUP`) plus the rows of an earlier compacted file where one exists:
compacting the 2 x 2,000 files of 2,000 trials raised RSS by 199 MB in 13.4 s when every file
was read at once, by 46 MB in 9.3 s streamed.

Safe to rerun and to run while trials still write: a table already held in one compacted file
is left alone; files written after the listing are not touched and join the next compaction
(their trials' rows in the earlier compacted file are merged with them); a crash between the
write and the deletes leaves the same rows twice, which readers (and the next compaction)
reduce to one copy.
"""
from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ts3ray import storage
from ts3ray.errors import UserError
from ts3ray.results import scan
from ts3ray.results.load import NEWEST_LAST, ROW_KEYS

COMPACTED_PREFIX = "compacted-"


def _files(fs: pafs.FileSystem, root: str) -> list[str]:
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return []
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File
                  and i.path.endswith(".parquet")
                  and not any(p.startswith((".", "_")) for p in i.path[len(root):].split("/")))


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


ROWS_PER_GROUP = 100_000  # rows per Parquet row group written (one per ~2,000 trials of levels)


def _groups(fs: pafs.FileSystem, root: str, files: list[str]) -> list[list[str]]:
    """Files read together: one group per trial folder, and first the files lying directly in
    the table folder (earlier compacted files) with the folders of every trial they hold."""
    loose: dict[str, list[str]] = {}
    top = []
    for path in files:
        relative = path[len(root):].lstrip("/")
        if "/" in relative:
            loose.setdefault(relative.split("/", 1)[0], []).append(path)
        else:
            top.append(path)
    groups = []
    if top:
        held = set()
        for path in top:
            part = scan.read_file(fs, path, ["trial_id"])
            if "trial_id" in part.column_names:
                held.update(str(t) for t in pc.unique(part.column("trial_id")).to_pylist())
        groups.append(top + [f for trial in sorted(held & set(loose)) for f in loose.pop(trial)])
    return groups + [loose[trial] for trial in sorted(loose)]


def _unified_schema(fs: pafs.FileSystem, files: list[str]) -> pa.Schema:
    from ts3ray import provenance

    distinct: list[pa.Schema] = []
    metas = []
    for path in files:
        found = scan.schema(fs, path)
        metas.append(found.metadata)
        if not any(found.equals(seen) for seen in distinct):
            distinct.append(found)
    unified = pa.unify_schemas(distinct, promote_options="permissive")
    merged = provenance.merged_metadata(metas)  # every distinct provenance of the files
    return unified.with_metadata({**(unified.metadata or {}), **merged}) if merged else unified


def _write_groups(fs, groups, schema, name):
    """A writer function for storage.write_atomic: each group's newest copies, streamed in
    row groups of about ROWS_PER_GROUP rows."""
    def tables():
        for group in groups:
            table = scan.concat([scan.read_file(fs, f) for f in group])
            yield newest_copies(table, name) if len(group) > 1 else table  # copies of a row
            # only arise across one trial's files

    def write(stream) -> None:
        with pq.ParquetWriter(stream, schema) as writer:
            chunks, rows = [], 0
            for chunk in scan.merged_chunks(tables()):
                chunks.append(scan.conform(chunk, schema))
                rows += chunk.num_rows
                if rows >= ROWS_PER_GROUP:
                    writer.write_table(scan.concat(chunks).combine_chunks())
                    chunks, rows = [], 0
            if chunks:
                writer.write_table(scan.concat(chunks).combine_chunks())
    return write


def compact_table(results: str, name: str) -> tuple[int, int]:
    """Compact one table; returns (files before, files after)."""
    fs, root = storage.resolve(storage.join(results, name))
    files = _files(fs, root)
    if len(files) <= 1 and all(f.rsplit("/", 1)[-1].startswith(COMPACTED_PREFIX) for f in files):
        return len(files), len(files)  # nothing to do: already one compacted file (or none)
    digest = hashlib.sha1("\n".join(files).encode()).hexdigest()[:16]
    target = f"{root}/{COMPACTED_PREFIX}{digest}.parquet"
    try:
        schema = _unified_schema(fs, files)
        write = _write_groups(fs, _groups(fs, root, files), schema, name)
        storage.write_atomic(storage.join(storage.join(results, name), target.rsplit("/", 1)[-1]),
                             write)
    except (pa.ArrowException, OSError) as err:
        raise UserError(f"results compact: cannot read the {name} files under {root}: "
                        f"{str(err).splitlines()[0]}") from None
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
