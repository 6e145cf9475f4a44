"""Probe cases for `ts3ray results compact` (issue 22, item 3), loaded by probe_hardening.py.

Bad inputs: a truncated file of the sweep and a damaged manifest each stop compaction with
exit 1 and one line, changing nothing. Faults: foreign files beside the sweep's survive byte
for byte, and a crash between the merged file's write and the deletes duplicates no row."""
from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from test_compact_safety import THEIRS, _epochs, _keys, _levels, _manifest, _sha

BAD_INPUTS = [
    ("compact a truncated sweep file", ["results", "compact", "{t}/compact_cut"], 1,
     "{t}/compact_cut/results/epochs/B/a001-e0000003.parquet is truncated or unreadable", "err"),
    ("compact a damaged manifest", ["results", "compact", "{t}/compact_manifest"], 1,
     "is not a ts3ray results manifest", "err"),
]


def build(world: Path) -> None:
    cut = world / "compact_cut" / "results"
    _manifest(cut)
    _epochs(cut, "A", 1, [1, 2])
    path = _epochs(cut, "B", 1, [1, 2, 3])
    path.write_bytes(path.read_bytes()[:200])
    _levels(cut, "A")
    bad = world / "compact_manifest" / "results"
    _manifest(bad)
    (bad / "ts3ray-results.json").write_text('{"sweep_id": 7}')
    _epochs(bad, "A", 1, [1, 2])


def _compact(results: Path) -> tuple[int, str]:
    from ts3ray.cli import main

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["results", "compact", str(results)])
    return code, err.getvalue()


def foreign_files_survive(tmp: Path) -> tuple[bool, str]:
    results = tmp / "compact_foreign" / "results"
    _manifest(results)
    _epochs(results, "A", 1, [1, 2, 3])
    other = results / "epochs" / "X" / "a001-e0000001.parquet"
    other.parent.mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), other)
    theirs = _epochs(results, "C", 1, [1, 2], sweep_id=THEIRS)
    before = {p: _sha(p) for p in (other, theirs)}
    code, err = _compact(results)
    kept = {p: _sha(p) for p in (other, theirs) if p.exists()} == before
    named = all(f"left in place: {p} (" in err for p in before)
    return code == 0 and kept and named, f"exit {code}, kept {kept}, named {named}"


def crash_before_deletes(tmp: Path) -> tuple[bool, str]:
    import ts3ray

    results = tmp / "compact_crash" / "results"
    _manifest(results)
    _epochs(results, "A", 1, [1, 2])
    _epochs(results, "A", 2, [2, 3])
    shutil.copytree(results, tmp / "compact_crash" / "sources")
    first, _ = _compact(results)
    shutil.copytree(tmp / "compact_crash" / "sources", results, dirs_exist_ok=True)
    seen = _keys(ts3ray.load(str(results)).epochs)
    second, _ = _compact(results)
    after = _keys(ts3ray.load(str(results)).epochs)
    want = [("A", 1, 1), ("A", 2, 2), ("A", 3, 2)]
    ok = first == second == 0 and seen == after == want
    return ok, f"rows after the crash {seen}, after a re-run {after}"


FAULTS = {
    "results compact beside foreign Parquet files": foreign_files_survive,
    "results compact crashed between write and deletes, then again": crash_before_deletes,
}
