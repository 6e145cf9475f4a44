"""Provenance in a run's config.json and Parquet metadata; `results info` and its warning."""
from __future__ import annotations

import json
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq

from ts3ray import provenance
from ts3ray.cli import main as cli
from ts3ray.results.compact import compact

KEYS = {"git_commit", "git_dirty", "ts3ray_version", "torch_version", "torchvision_version",
        "ray_version", "optuna_version", "pyarrow_version", "python_version", "device",
        "device_name", "cuda_version", "hostname", "argv", "started_at"}


def test_a_run_records_its_provenance(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "dataset=digits", "epochs=1", "e1=0", "e2=1", "rounds=0", "--out", str(out),
            "--quiet", "--threads", "1"]
    assert cli(args) == 0
    config = json.loads((out / "config.json").read_text())
    prov = config["provenance"]
    assert KEYS <= set(prov) and prov["argv"] == ["ts3ray", *args] and prov["device"] == "cpu"
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=provenance.Path(provenance.__file__).parent).stdout.strip()
    assert prov["git_commit"] == head and isinstance(prov["git_dirty"], bool)
    import torch

    assert prov["torch_version"].split("+")[0] == torch.__version__.split("+")[0]
    for table in ("epochs", "levels"):
        meta = pq.read_schema(out / f"{table}.parquet").metadata
        assert provenance.from_metadata(meta) == [prov]
    capsys.readouterr()
    assert cli(["results", "info", str(out)]) == 0
    shown = capsys.readouterr()
    assert f"git_commit: {head}" in shown.out and "torch_version: " in shown.out
    assert "warning" not in shown.err


def _levels_file(path, prov):  # a sweep's levels file: its trial folder names its trial_id
    table = pa.table({"run_id": ["r"], "trial_id": [path.parent.name], "round": [0],
                      "sparsity": [0.0]})
    pq.write_table(table.replace_schema_metadata(provenance.as_metadata(prov)), path)


def test_compaction_keeps_every_version_and_info_warns(tmp_path, capsys):
    base = provenance.collect("cpu")
    levels = tmp_path / "results" / "levels"
    (levels / "t1").mkdir(parents=True)
    (levels / "t2").mkdir()
    _levels_file(levels / "t1" / "a001-e0000001.parquet", base)
    _levels_file(levels / "t2" / "a001-e0000001.parquet", {**base, "git_commit": "0" * 40,
                                                           "torch_version": "9.9"})
    compact(str(tmp_path / "results"))
    merged = list(levels.glob("*.parquet"))
    assert len(merged) == 1
    kept = provenance.from_metadata(pq.read_schema(merged[0]).metadata)
    assert sorted(p["git_commit"] for p in kept) == sorted([base["git_commit"], "0" * 40])
    assert cli(["results", "info", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "ts3ray: warning: RESULTS mixes code versions: git_commit = " in err
    assert "torch_version = " in err and "python_version" not in err


def test_no_provenance_is_one_line(tmp_path, capsys):
    pq.write_table(pa.table({"run_id": ["r"], "round": [0]}), tmp_path / "levels.parquet")
    assert cli(["results", "info", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("ts3ray: error: RESULTS ")
