"""Tickets: kept by a real digits sweep, exported, loaded by safetensors, retrained."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from ts3ray.cli import main as cli
from ts3ray.results import tickets
from ts3ray.results.load import read_table
from ts3ray.tune.cli import run_sweep

TINY = ["epochs=2", "e1=1", "e2=1", "rounds=2", "val_fraction=0.2"]


def test_pack_and_unpack_masks_by_hand():
    mask = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]], dtype=bool)  # 9 bits -> 2 bytes
    data = tickets.encode_level({"S": {"w": mask}}, {"level": 1})
    arrays, meta = tickets._loads(data, "test")
    assert arrays["mask/S/w"].tolist() == [0b10100111, 0b00000000]  # row-major bits, MSB first
    assert tickets.unpack_masks(arrays, json.loads(meta["mask_shapes"]))["S"]["w"].tolist() == mask.tolist()


@pytest.fixture(scope="module")
def sweep(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("tickets")
    code = run_sweep("sensitivity", ["--params", "lam", "--storage", str(root), *TINY])
    assert code == 0
    return root / "sensitivity-quick"


def test_a_sweep_keeps_every_level_and_lists_it(sweep, capsys):
    stored = tickets.stored_levels(tickets.tickets_root(str(sweep)))
    assert len(stored) == 4 * 3  # 4 trials x levels 0..2
    assert len({r["bytes"] for r in stored}) == 1  # every level: the same packed masks
    # the 4 trials share seed 0 and the architecture: one theta_0 file for all of them
    (theta0,) = (sweep / "results" / "tickets" / "theta0").iterdir()
    assert {r["theta0"] for r in stored} == {theta0.stem}
    assert all(r["theta0_bytes"] == theta0.stat().st_size for r in stored)
    # LeNet-300-100 on digits: 64*300 + 300*100 prunable weights, 1 bit each, + header
    assert (64 * 300 + 300 * 100) / 8 < stored[0]["bytes"] < (64 * 300 + 300 * 100) / 8 + 1500
    assert cli(["ticket", "list", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "12 ticket(s) of 4 trial(s)" in out and "75.00%" in out


def test_a_sweep_records_provenance_in_manifest_and_compacted_parquet(sweep, capsys):
    import pyarrow.parquet as pq

    from ts3ray import provenance

    manifest = json.loads((sweep / "ts3ray-sweep.json").read_text())
    assert {"git_commit", "ray_version", "argv", "hostname"} <= set(manifest["provenance"])
    for table in ("epochs", "levels"):
        (merged,) = (sweep / "results" / table).glob("*.parquet")  # compacted: one file
        kept = provenance.from_metadata(pq.read_schema(merged).metadata)
        assert 1 <= len(kept) <= 4  # per trial: distinct start times (to the second) kept
        assert {p["git_commit"] for p in kept} == {manifest["provenance"]["git_commit"]}
        # the sweep's id, from its results manifest, is in every file (compaction checks it)
        sweep_id = json.loads((sweep / "results" / "ts3ray-results.json").read_text())["sweep_id"]
        assert pq.read_schema(merged).metadata[b"ts3ray.sweep_id"] == sweep_id.encode()
    assert cli(["results", "info", str(sweep)]) == 0
    shown = capsys.readouterr()
    assert "ts3ray-sweep.json: 1 distinct" in shown.out and "mixes" not in shown.err


def test_exported_pareto_ticket_is_safe_zero_where_masked_and_retrains_exactly(sweep, tmp_path, capsys):
    out = tmp_path / "t.safetensors"
    assert cli(["ticket", "export", str(sweep), "--pareto", "--within", "100", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert said.startswith("pareto pick:") and f"ts3ray run ticket={out}" in said
    arrays = load_file(str(out))  # safetensors: no pickle, nothing to execute
    masks = {k: v for k, v in arrays.items() if k.startswith("mask/S/")}
    assert set(masks) == {"mask/S/fc1.weight", "mask/S/fc2.weight"}
    for key, mask in masks.items():
        weights = arrays[key.replace("mask/", "theta0/")]
        assert weights.shape == mask.shape
        assert (weights[mask == 0] == 0).all() and (weights[mask == 1] != 0).all()
    levels = read_table(str(sweep), "levels")
    pruned = sum(int((m == 0).sum()) for m in masks.values())
    level = tickets.read(str(out)).level
    assert level == 2  # within 100 points: the sparsest level
    assert pruned / sum(m.size for m in masks.values()) == pytest.approx(0.75, abs=1e-3)
    import torch

    t = torch.from_numpy(arrays["theta0/S/fc1.weight"])  # torch reads it as well
    assert t.dtype == torch.float32

    ticket = tickets.read(str(out))
    trial = ticket.metadata["trial"]
    row = levels[(levels["trial_id"] == trial) & (levels["round"] == level)].iloc[0]
    retrain = tmp_path / "retrain"
    assert cli(["run", f"ticket={out}", "--out", str(retrain), "--quiet", "--threads", "1"]) == 0
    again = pd.read_parquet(retrain / "levels.parquet")
    assert again["round"].tolist() == [level]
    for column in ("acc_sparse_last", "val_acc_sparse_last", "acc_dense_last", "sparsity"):
        assert again[column].iloc[0] == row[column], column  # bit for bit on the CPU
    config = json.loads((retrain / "config.json").read_text())
    assert config["ticket"]["trial"] == trial and config["ticket"]["level"] == level


def test_ticket_errors_are_one_line(sweep, tmp_path, capsys):
    assert cli(["ticket", "export", str(sweep), "--trial", "nope", "--level", "1",
                "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "no ticket of trial 'nope' at level 1 (trials: " in capsys.readouterr().err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a ticket")
    assert cli(["run", f"ticket={bad}", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ts3ray: error: ticket={bad} ") and "is not a ts3ray ticket" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
