"""`ts3ray results compact` merges and deletes only the sweep's own files, stops on a damaged
one, verifies the merged file before deleting, and a crash between write and deletes leaves
no duplicate rows (issue 22, item 3). Real Parquet files, written by hand with pyarrow."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ts3ray
from ts3ray.cli import main as cli
from ts3ray.errors import DamagedData
from ts3ray.results import compact as compaction
from ts3ray.results.sweep_files import MANIFEST, SWEEP_ID_KEY, own_sweep_id, read_sweep_id

OURS = "a" * 32
THEIRS = "b" * 32


def _manifest(results: Path, sweep_id: str = OURS) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / MANIFEST).write_text(json.dumps({"sweep_id": sweep_id, "name": "s"}))


def _epochs(results: Path, trial: str, attempt: int, epochs: list[int], *,
            sweep_id: str | None = OURS, name: str | None = None) -> Path:
    """An epochs file of `trial` as a sweep writes it (tune/results.py): one level of 3
    epochs, the sweep columns in their types, the sweep id in the schema metadata."""
    n = len(epochs)
    table = pa.table({
        "run_id": [f"run-{trial}"] * n, "round": [0] * n, "epoch": epochs,
        "global_epoch": epochs, "rounds": [0] * n, "epochs": [3] * n,
        "val_acc": [0.5 + e / 10 for e in epochs],
        "sweep": ["search"] * n, "trial_id": [trial] * n, "attempt": [attempt] * n,
        "node": ["n"] * n, "resumed_from": [0] * n, "started_at": [float(attempt)] * n,
        "written_at": [10.0 * attempt] * n, "selected_on": ["val"] * n,
    })
    if sweep_id is not None:
        table = table.replace_schema_metadata({SWEEP_ID_KEY: sweep_id.encode()})
    path = results / "epochs" / trial / (name or f"a{attempt:03d}-e{max(epochs):07d}.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def _levels(results: Path, trial: str, *, sweep_id: str | None = OURS) -> Path:
    table = pa.table({"run_id": [f"run-{trial}"], "round": [0], "sparsity": [0.0],
                      "rounds": [0], "epochs": [3], "trial_id": [trial], "attempt": [1]})
    table = table.replace_schema_metadata({SWEEP_ID_KEY: sweep_id.encode()} if sweep_id else None)
    path = results / "levels" / trial / "a001-e0000003.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under root (hidden ones too) and its sha256."""
    return {p.relative_to(root).as_posix(): _sha(p) for p in root.rglob("*") if p.is_file()}


def _keys(frame) -> list[tuple]:
    return sorted(zip(frame["trial_id"], frame["global_epoch"], frame["attempt"]))


def test_foreign_files_survive_byte_for_byte_and_are_named(tmp_path, capsys):
    results = tmp_path / "sweep" / "results"
    _manifest(results)
    _epochs(results, "A", 1, [1, 2, 3])
    _epochs(results, "B", 1, [1, 2])
    _levels(results, "A")
    other_schema = results / "epochs" / "X" / "a001-e0000001.parquet"  # the sweep's name only
    other_schema.parent.mkdir(parents=True)
    pq.write_table(pa.table({"x": [1, 2], "y": ["p", "q"]}), other_schema)
    other_sweep = _epochs(results, "C", 1, [1, 2, 3], sweep_id=THEIRS)  # all but its id
    stray = results / "epochs" / "mine.parquet"  # a name the sweep never writes
    pq.write_table(pa.table({"run_id": ["r"], "round": [0], "epoch": [1]}), stray)
    no_id = _epochs(results, "D", 1, [1], sweep_id=None)
    foreign = [other_schema, other_sweep, stray, no_id]
    before = {p: _sha(p) for p in foreign}

    assert cli(["results", "compact", str(tmp_path / "sweep")]) == 0
    out, err = capsys.readouterr()
    assert {p: _sha(p) for p in foreign} == before  # every foreign file, byte for byte
    assert out.splitlines() == ["epochs: 2 file(s) -> 1 (5 rows)",
                                "levels: 1 file(s) -> 1 (1 rows)"]
    lines = err.splitlines()
    assert len(lines) == 4 and all(l.startswith("ts3ray: warning: left in place: ") for l in lines)
    said = dict(line.split("left in place: ", 1)[1].split(" (", 1) for line in lines)
    assert said[str(other_schema)].startswith("schema differs: lacks column(s) run_id, round")
    assert said[str(other_sweep)] == f"another sweep's id {THEIRS}; this sweep's is {OURS})"
    assert said[str(stray)].startswith("not a ts3ray file: its name is not ")
    assert said[str(no_id)] == f"carries no sweep id; this sweep's is {OURS})"
    # the sweep's own two epochs files became one holding their 3 + 2 rows, with its id
    (merged,) = (results / "epochs").glob("compacted-*.parquet")
    table = pq.read_table(merged)
    assert sorted(zip(table["trial_id"].to_pylist(), table["global_epoch"].to_pylist())) == [
        ("A", 1), ("A", 2), ("A", 3), ("B", 1), ("B", 2)]
    assert table.schema.metadata[SWEEP_ID_KEY] == OURS.encode()
    assert not (results / "epochs" / "A").exists() and not (results / "epochs" / "B").exists()


def test_a_truncated_sweep_file_stops_with_exit_1_and_deletes_nothing(tmp_path, capsys):
    results = tmp_path / "results"
    _manifest(results)
    _epochs(results, "A", 1, [1, 2])
    _epochs(results, "A", 2, [3])
    cut = _epochs(results, "B", 1, [1, 2, 3])
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # a copy that stopped half-way
    _levels(results, "A")
    before = _snapshot(tmp_path)

    assert cli(["results", "compact", str(results)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(f"ts3ray: error: results compact: {cut} is truncated or unreadable (")
    assert "nothing was merged or deleted" in line
    assert _snapshot(tmp_path) == before  # every source byte for byte, nothing added


def test_a_good_compact_keeps_every_row_exactly_once(tmp_path, capsys):
    results = tmp_path / "results"
    _manifest(results)
    _epochs(results, "A", 1, [1, 2])
    _epochs(results, "A", 2, [2, 3])  # a retry wrote epoch 2 again: 2 + 2 rows, 3 distinct
    _epochs(results, "B", 1, [1])
    _levels(results, "A")
    _levels(results, "B")
    assert cli(["results", "compact", str(results)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "epochs: 3 file(s) -> 1 (4 rows, 1 superseded copies dropped)" in out
    assert "levels: 2 file(s) -> 1 (2 rows)" in out  # no copies: the sum of the sources
    loaded = ts3ray.load(str(results))
    assert _keys(loaded.epochs) == [("A", 1, 1), ("A", 2, 2), ("A", 3, 2), ("B", 1, 1)]
    assert sorted(loaded.levels["trial_id"]) == ["A", "B"]
    (merged,) = (results / "epochs").glob("*.parquet")
    first = _sha(merged)
    assert cli(["results", "compact", str(results)]) == 0  # again: nothing to do
    assert capsys.readouterr().out.splitlines()[0].startswith("epochs: 1 file(s) -> 1 (4 rows")
    assert _sha(merged) == first


def test_a_crash_between_the_write_and_the_deletes_duplicates_nothing(tmp_path, capsys):
    results = tmp_path / "results"
    _manifest(results)
    _epochs(results, "A", 1, [1, 2])
    _epochs(results, "A", 2, [2, 3])
    _epochs(results, "B", 1, [1])
    _levels(results, "A")
    sources = tmp_path / "sources"
    shutil.copytree(results, sources)
    assert cli(["results", "compact", str(results)]) == 0
    # the state a crash right after the merged file's rename leaves: merged file and sources
    shutil.copytree(sources, results, dirs_exist_ok=True)
    assert len(list((results / "epochs").rglob("*.parquet"))) == 4
    want = [("A", 1, 1), ("A", 2, 2), ("A", 3, 2), ("B", 1, 1)]
    assert _keys(ts3ray.load(str(results)).epochs) == want  # readers see each row once
    assert cli(["results", "compact", str(results)]) == 0  # and a re-run merges it all once
    assert "epochs: 4 file(s) -> 1 (4 rows, 5 superseded copies dropped)" in \
        capsys.readouterr().out.splitlines()
    (only,) = (results / "epochs").rglob("*.parquet")
    assert only.name.startswith("compacted-")
    assert _keys(ts3ray.load(str(results)).epochs) == want


def test_a_merged_file_that_fails_its_check_is_removed_and_the_sources_kept(tmp_path):
    results = tmp_path / "results"
    _epochs(results, "A", 1, [1, 2], sweep_id=None)
    merged = _epochs(results, "A", 1, [1, 2], sweep_id=None, name="x.parquet")
    expected = pa.table({"trial_id": ["A", "A", "A"], "global_epoch": [1, 2, 3]})
    fs = pa.fs.LocalFileSystem()
    with pytest.raises(DamagedData, match=r"failed its check \(2 rows, the sources hold 3 "):
        compaction._verify(fs, str(merged), expected, "epochs")
    assert not merged.exists() and (results / "epochs" / "A" / "a001-e0000002.parquet").exists()


def test_a_new_sweep_writes_its_id_and_a_resumed_one_without_a_manifest_keeps_none(tmp_path):
    new = tmp_path / "new" / "results"
    made = own_sweep_id(str(new), "s", create=True)
    assert len(made) == 32 and read_sweep_id(str(new)) == made
    assert own_sweep_id(str(new), "s", create=False) == made  # a resume reads it
    assert own_sweep_id(str(tmp_path / "old"), "s", create=False) is None
    assert not (tmp_path / "old").exists()
    (new / MANIFEST).write_text("{not json")
    with pytest.raises(DamagedData, match="is not a ts3ray results manifest"):
        read_sweep_id(str(new))


def test_trial_files_carry_the_sweep_id(tmp_path):
    from ts3ray.config import make_config
    from ts3ray.run import LotteryRun
    from ts3ray.tune import results

    run = LotteryRun(make_config({"dataset": "synthetic", "epochs": 2, "e1": 1, "e2": 1,
                                  "rounds": 0}))
    info = results.TrialInfo(sweep="t", trial_id="abc", attempt=1, node="n", resumed_from=0,
                             started_at=1.0, sweep_id=OURS)
    writer = results.TrialWriter(str(tmp_path), info, run)
    for _ in run.epochs():
        writer.flush(run)
    files = sorted(tmp_path.rglob("*.parquet"))
    assert len(files) == 3  # epochs 1 and 2, level 0
    assert all(pq.read_schema(p).metadata[SWEEP_ID_KEY] == OURS.encode() for p in files)


def test_without_a_manifest_files_that_carry_an_id_are_another_sweeps(tmp_path, capsys):
    results = tmp_path / "results"  # a sweep from before ids: its files carry none
    _epochs(results, "A", 1, [1, 2], sweep_id=None)
    _epochs(results, "B", 1, [1], sweep_id=None)
    tagged = _epochs(results, "C", 1, [1, 2, 3], sweep_id=THEIRS)
    before = _sha(tagged)
    assert cli(["results", "compact", str(results)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "epochs: 2 file(s) -> 1 (3 rows)"
    assert err == (f"ts3ray: warning: left in place: {tagged} (another sweep's id {THEIRS}; "
                   f"this folder has no {MANIFEST})\n")
    assert _sha(tagged) == before


def test_a_sweep_file_whose_column_type_the_others_cannot_join_is_left_in_place(tmp_path, capsys):
    results = tmp_path / "results"
    _manifest(results)
    _epochs(results, "A", 1, [1])
    _epochs(results, "B", 1, [1])
    odd = results / "epochs" / "C" / "a001-e0000001.parquet"
    table = pq.read_table(results / "epochs" / "A" / "a001-e0000001.parquet")
    table = table.set_column(table.schema.get_field_index("val_acc"), "val_acc",
                             pa.array(["high"])).replace_schema_metadata(table.schema.metadata)
    odd.parent.mkdir(parents=True)
    pq.write_table(table, odd)
    before = _sha(odd)
    assert cli(["results", "compact", str(results)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "epochs: 2 file(s) -> 1 (2 rows)"
    assert err == (f"ts3ray: warning: left in place: {odd} (schema differs: val_acc is string, "
                   "the sweep's is double)\n")
    assert _sha(odd) == before


def test_a_file_damaged_inside_stops_the_write_and_leaves_no_trace(tmp_path, capsys):
    results = tmp_path / "results"
    _manifest(results)
    _epochs(results, "A", 1, [1, 2])
    hurt = _epochs(results, "B", 1, [1, 2, 3])
    data = bytearray(hurt.read_bytes())
    data[4:64] = b"\xff" * 60  # the first data page's header: the footer still reads
    hurt.write_bytes(bytes(data))
    assert pq.ParquetFile(hurt).metadata.num_rows == 3
    before = _snapshot(tmp_path)
    assert cli(["results", "compact", str(results)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"ts3ray: error: results compact: {hurt} is truncated or unreadable")
    assert _snapshot(tmp_path) == before  # no merged file, no temporary file, every source
