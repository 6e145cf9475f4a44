"""The MNIST reproduction study (issue 12): TS3-Net and CE on real MNIST, sym-40%, seed 0,
p_f = 0.5, R = 3 (87.5% sparsity), under the candidate explanations of the gap to the
paper's Table I / VIII, one candidate at a time, and then the settings adopted as MNIST
defaults (ts3ray/config.py).

    python benchmarks/mnist_study.py [--root data] [--out runs/mnist_study]
                                     [--candidates a,b] [--methods ts3net,ce] [--table-only]

Every run is `ts3ray run ... --threads 1` into `<out>/<candidate>-<method>/` (run one
study at a time on a shared CPU); a finished run is not repeated, so the script can be
stopped and started again. Each candidate spells out every studied key, so the rows keep
their meaning when the defaults change. Needs real MNIST: `ts3ray data fetch mnist`.
Prints one table: S's test accuracy at the last epoch of level 0 (dense) and level 3
(87.5%), the paper's numbers beside them, TS3-Net's S at the end of the alternate stage
(epoch E1 + E2) vs the end of refinement in level 3, and each run's wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SETTING = dict(dataset="mnist", noise="sym", noise_rate=0.4, seed=0, prune_fraction=0.5,
               rounds=3, device="cpu")
# the ts3ray defaults before the study (config.py at the time of issue 12)
BEFORE = dict(lr=0.01, lr_decay_epochs="", momentum=0.9, prune_output=False,
              val_fraction=0.0, weight_decay=1e-4, batch_size=256)
FIFTY_K = 1 / 6  # holds out 10,000 of the 60,000 training images: 50,000 train (Sec. IV-A)
ADOPTED = dict(BEFORE, prune_output=True, val_fraction=FIFTY_K, weight_decay=0.0)

# name -> (what it tests, its values of the studied keys, extra run values)
CANDIDATES: dict[str, tuple[str, dict, dict]] = {
    "before": ("defaults before the study: lr 0.01 constant, output layer kept, 60k "
               "images, wd 1e-4, batch 256", BEFORE, {}),
    "prune-output": ("prune the output layer too (official code on MNIST; Fig. 12)",
                     dict(BEFORE, prune_output=True), {}),
    "train-50k": ("50,000 training images (Sec. IV-A), 10,000 held out",
                  dict(BEFORE, val_fraction=FIFTY_K), {}),
    "wd-0": ("no weight decay (the paper states none; the official code 1e-4)",
             dict(BEFORE, weight_decay=0.0), {}),
    "lr-decay": ("lr 0.01 -> 0.001 at epoch 30, where refinement starts",
                 dict(BEFORE, lr_decay_epochs="30"), {}),
    "batch-128": ("batch 128 instead of the paper's 256", dict(BEFORE, batch_size=128), {}),
    "lr-1.0": ("the paper's lr 1.0, momentum 0.9 (probe: 2 warm-up epochs of level 0)",
               dict(BEFORE, lr=1.0), dict(epochs=2, e1=2, e2=0, rounds=0)),
    "lr-1.0-m0": ("lr 1.0 without momentum (probe: 2 warm-up epochs of level 0)",
                  dict(BEFORE, lr=1.0, momentum=0.0), dict(epochs=2, e1=2, e2=0, rounds=0)),
    "adopted": ("the adopted MNIST defaults: output layer pruned, 50k images, no weight "
                "decay, lr 0.01 constant, batch 256", ADOPTED, {}),
}
METHOD_VALUES = {"ts3net": dict(method="ts3net", variant="full"), "ce": dict(method="ce")}
PAPER = {  # Table I (87.5%) and Table VIII (0% and 87.5%), MNIST sym-40%
    "ts3net": {0: 97.02, 3: 97.11},
    "ce": {0: 84.82, 3: 92.29},  # Table VIII `warm` row (the plain-CE ticket)
}


def run_values(candidate: str, method: str, root: str) -> dict:
    _, studied, extra = CANDIDATES[candidate]
    return {**SETTING, **studied, **extra, **METHOD_VALUES[method], "data_root": root}


def complete(directory: Path, values: dict) -> bool:
    levels = directory / "levels.parquet"
    if not levels.exists():
        return False
    import pandas as pd

    return len(pd.read_parquet(levels)) == int(values["rounds"]) + 1


def run_one(candidate: str, method: str, root: str, out: Path) -> None:
    directory = out / f"{candidate}-{method}"
    values = run_values(candidate, method, root)
    if complete(directory, values):
        return
    args = [f"{k}={v}" for k, v in values.items()]
    cmd = [sys.executable, "-m", "ts3ray.cli", "run", *args, "--threads", "1", "--quiet",
           "--out", str(directory), "--resume", "--checkpoint-every", "10"]
    print(f"[{time.strftime('%H:%M:%S')}] {candidate}-{method}: {' '.join(cmd[3:])}",
          flush=True)
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - started
    wall_file = directory / "wall_seconds.json"
    previous = json.loads(wall_file.read_text())["seconds"] if wall_file.exists() else 0.0
    wall_file.write_text(json.dumps({"seconds": previous + wall}))
    print(f"[{time.strftime('%H:%M:%S')}] {candidate}-{method}: done in {wall / 60:.1f} min",
          flush=True)


def table(out: Path, candidates: list[str], methods: list[str]) -> str:
    import pandas as pd

    lines = ["| candidate | method | level 0 (0%) | level 3 (87.5%) | paper 0% / 87.5% | "
             "L3 end of alternate -> end of refine | wall (min) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for candidate in candidates:
        for method in methods:
            directory = out / f"{candidate}-{method}"
            if not (directory / "levels.parquet").exists():
                continue
            levels = pd.read_parquet(directory / "levels.parquet").set_index("round")
            epochs = pd.read_parquet(directory / "epochs.parquet")
            acc = {r: 100 * levels.loc[r, "acc_sparse_last"] for r in levels.index}
            last = max(acc)
            dense = f"{acc[0]:.2f}"
            sparse = f"{acc[last]:.2f}" if last == 3 else "–"
            paper = PAPER[method]
            clue = "–"
            if method == "ts3net" and last == 3:
                row = epochs[epochs["round"] == 3].set_index("epoch")["acc_sparse"]
                end_alt = int(levels.loc[3, "e1"] + levels.loc[3, "e2"])
                clue = f"{100 * row[end_alt]:.2f} -> {100 * row.iloc[-1]:.2f}"
            wall_file = directory / "wall_seconds.json"
            wall = (f"{json.loads(wall_file.read_text())['seconds'] / 60:.1f}"
                    if wall_file.exists() else "–")
            lines.append(f"| {candidate} | {method} | {dense} | {sparse} | "
                         f"{paper[0]:.2f} / {paper[3]:.2f} | {clue} | {wall} |")
    notes = [f"- {name}: {CANDIDATES[name][0]}" for name in candidates]
    return "\n".join(lines + ["", "Candidates:"] + notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data", help="data root holding MNIST/raw")
    parser.add_argument("--out", default="runs/mnist_study", help="runs go here")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--methods", default=",".join(METHOD_VALUES))
    parser.add_argument("--table-only", action="store_true", help="print the table, run nothing")
    args = parser.parse_args(argv)
    candidates = [c for c in args.candidates.split(",") if c]
    methods = [m for m in args.methods.split(",") if m]
    for name in candidates:
        if name not in CANDIDATES:
            parser.error(f"--candidates: {name!r} is not one of {', '.join(CANDIDATES)}")
    for name in methods:
        if name not in METHOD_VALUES:
            parser.error(f"--methods: {name!r} is not one of {', '.join(METHOD_VALUES)}")
    out = Path(args.out)
    root = str(Path(args.root).resolve())
    if not args.table_only:
        for candidate in candidates:
            for method in methods:
                run_one(candidate, method, root, out)
    print(table(out, candidates, methods))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
