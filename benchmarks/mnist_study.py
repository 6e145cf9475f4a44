"""The MNIST reproduction study (issue 12): TS3-Net and CE on real MNIST, sym-40%, seed 0,
p_f = 0.5, R = 3 (87.5% sparsity), under the candidate explanations of the gap to the
paper's Table I / VIII, one candidate at a time; then (part `table1`) every method at the
settings adopted as MNIST defaults (ts3ray/config.py), beside the paper's Table I.

    python benchmarks/mnist_study.py [--part study|table1|all] [--root data]
        [--out runs/mnist_study] [--candidates a,b] [--methods ...] [--seeds 0]
        [--dense-only METHODS] [--table-only]

Every run is `ts3ray run ... --threads 1` (run one study at a time on a shared CPU) into
`<out>/<candidate>-<method>/`, and the adopted settings' runs into `<out>/table1/<method>-
seed<k>/` (so `ts3ray table compare <out>/table1 --sparsity 0,87.5` reads them); a finished
run is not repeated and an interrupted one resumes, so the script can be stopped and started
again. Each candidate spells out every studied key, so its rows keep their meaning when the
defaults change. Needs real MNIST: `ts3ray data fetch mnist`.
Prints the study table (S's test accuracy at the last epoch of level 0 (dense) and level 3
(87.5%), the paper's numbers beside them, TS3-Net's S at the end of the alternate stage
(epoch E1 + E2) vs the end of refinement in level 3, each run's wall time) and the Table I-
style table (each method dense and at 87.5%, the paper's Table I beside them).
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
    "adopted-lr-decay": ("the adopted defaults with lr 0.01 -> 0.001 at epoch 30 (not the "
                         "paper's constant lr)", dict(ADOPTED, lr_decay_epochs="30"), {}),
}
STUDY = ("before", "prune-output", "train-50k", "wd-0", "lr-decay", "lr-1.0", "lr-1.0-m0",
         "adopted", "batch-128", "adopted-lr-decay")
METHOD_VALUES = {"ts3net": dict(method="ts3net", variant="full"), "ce": dict(method="ce")}
TABLE1_METHODS = ("ce", "sce", "apl", "mae", "itlm", "coteaching", "jocor", "dividemix",
                  "ts3net")
# Table I, MNIST sym-40% (the competitors dense, TS3-Net at 87.5%); ce = the "Baseline"
TABLE1 = {"ce": 84.82, "sce": 96.77, "apl": 95.76, "mae": 88.93, "itlm": 94.91,
          "coteaching": 95.49, "jocor": 96.81, "dividemix": 95.37, "ts3net (dense)": 97.02,
          "ts3net": 97.11}
PAPER = {  # Table I (87.5%) and Table VIII (0% and 87.5%), MNIST sym-40%
    "ts3net": {0: 97.02, 3: 97.11},
    "ce": {0: 84.82, 3: 92.29},  # Table VIII `warm` row (the plain-CE ticket)
}


def run_values(candidate: str, method: str, root: str, seed: int = 0) -> dict:
    _, studied, extra = CANDIDATES[candidate]
    method_values = METHOD_VALUES.get(method, dict(method=method))
    return {**SETTING, **studied, **extra, **method_values, "seed": seed, "data_root": root}


def run_dir(out: Path, candidate: str, method: str, seed: int = 0, dense: bool = False) -> Path:
    if candidate == "adopted":
        return out / "table1" / f"{method}-seed{seed}{'-dense' if dense else ''}"
    return out / f"{candidate}-{method}"


def complete(directory: Path, values: dict) -> bool:
    levels = directory / "levels.parquet"
    if not levels.exists():
        return False
    import pandas as pd

    return len(pd.read_parquet(levels)) == int(values["rounds"]) + 1


def run_one(directory: Path, values: dict) -> None:
    if complete(directory, values):
        return
    args = [f"{k}={v}" for k, v in values.items()]
    cmd = [sys.executable, "-m", "ts3ray.cli", "run", *args, "--threads", "1", "--quiet",
           "--out", str(directory), "--resume", "--checkpoint-every", "10"]
    print(f"[{time.strftime('%H:%M:%S')}] {directory.name}: {' '.join(cmd[3:])}", flush=True)
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - started
    wall_file = directory / "wall_seconds.json"
    previous = json.loads(wall_file.read_text())["seconds"] if wall_file.exists() else 0.0
    wall_file.write_text(json.dumps({"seconds": previous + wall}))
    print(f"[{time.strftime('%H:%M:%S')}] {directory.name}: done in {wall / 60:.1f} min",
          flush=True)


def read_levels(directory: Path):
    """The run's levels rows indexed by round; None before its first level ends."""
    import pandas as pd

    path = directory / "levels.parquet"
    if not path.exists():
        return None
    levels = pd.read_parquet(path)
    return levels.set_index("round") if len(levels) else None


def wall_minutes(directory: Path) -> str:
    wall_file = directory / "wall_seconds.json"
    if not wall_file.exists():
        return "–"
    return f"{json.loads(wall_file.read_text())['seconds'] / 60:.1f}"


def table(out: Path, candidates: list[str], methods: list[str]) -> str:
    import pandas as pd

    lines = ["| candidate | method | level 0 (0%) | level 3 (87.5%) | paper 0% / 87.5% | "
             "L3 end of alternate -> end of refine | wall (min) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for candidate in candidates:
        for method in methods:
            directory = run_dir(out, candidate, method)
            values = run_values(candidate, method, "")
            levels = read_levels(directory)
            if levels is None:
                continue
            epochs = pd.read_parquet(directory / "epochs.parquet")
            acc = {r: 100 * levels.loc[r, "acc_sparse_last"] for r in levels.index}
            last = max(acc)
            dense = f"{acc[0]:.2f}"
            sparse = f"{acc[last]:.2f}" if last == 3 else "–"
            if not complete(directory, values):
                sparse += " (running)"
            paper = PAPER[method]
            clue = "–"
            if method == "ts3net" and last == 3:
                row = epochs[epochs["round"] == 3].set_index("epoch")["acc_sparse"]
                end_alt = int(levels.loc[3, "e1"] + levels.loc[3, "e2"])
                clue = f"{100 * row[end_alt]:.2f} -> {100 * row.iloc[-1]:.2f}"
            lines.append(f"| {candidate} | {method} | {dense} | {sparse} | "
                         f"{paper[0]:.2f} / {paper[3]:.2f} | {clue} | "
                         f"{wall_minutes(directory)} |")
    notes = [f"- {name}: {CANDIDATES[name][0]}" for name in candidates]
    return "\n".join(lines + ["", "Candidates:"] + notes)


def table1(out: Path, methods: list[str], seeds: list[int], dense_only: set[str]) -> str:
    """Each method dense (level 0) and at 87.5% (level 3), mean ± std over the seeds run,
    S's test accuracy at the last epoch; the paper's Table I (sym-40%) beside them."""
    import numpy as np

    def fmt(values):
        if not values:
            return "–"
        text = f"{np.mean(values):.2f}"
        return text + (f" ± {np.std(values, ddof=1):.2f}" if len(values) > 1 else "")

    lines = ["| method | dense (0%) | 87.5% | paper Table I | params at 87.5% (M) | "
             "wall (min, seed 0) |", "|---|---:|---:|---:|---:|---:|"]
    for method in [*methods, "ts3net (dense)"] if "ts3net" in methods else methods:
        name = method.split(" ")[0]
        column = "acc_dense_last" if method.endswith("(dense)") else "acc_sparse_last"
        dense_values, sparse_values, params, wall = [], [], "–", "–"
        for seed in seeds:
            directory = run_dir(out, "adopted", name, seed, dense=name in dense_only)
            levels = read_levels(directory)
            if levels is None:
                continue
            dense_values.append(100 * levels.loc[0, column])
            if 3 in levels.index:
                sparse_values.append(100 * levels.loc[3, column])
                kept = 1.0 if column == "acc_dense_last" else 1 - levels.loc[3, "sparsity"]
                params = f"{levels.loc[3, 'total_params'] * kept / 1e6:.3f}"
            if seed == seeds[0]:
                wall = wall_minutes(directory)
        lines.append(f"| {method} | {fmt(dense_values)} | {fmt(sparse_values)} | "
                     f"{TABLE1[method]:.2f} | {params} | {wall} |")
    return "\n".join(lines + ["", "Paper: Table I, MNIST sym-40% (competitors dense, "
                                   "TS3-Net at 87.5%; ce = the Baseline)."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("study", "table1", "all"), default="all")
    parser.add_argument("--root", default="data", help="data root holding MNIST/raw")
    parser.add_argument("--out", default="runs/mnist_study", help="runs go here")
    parser.add_argument("--candidates", default=",".join(STUDY))
    parser.add_argument("--methods", default=None,
                        help="study: ts3net,ce; table1: all nine methods")
    parser.add_argument("--seeds", default="0", help="table1 seeds (the study runs seed 0)")
    parser.add_argument("--dense-only", default="",
                        help="table1: methods run dense only (R = 0), to save time "
                             "(default: none, every method inside IMP)")
    parser.add_argument("--table-only", action="store_true", help="print the tables, run nothing")
    args = parser.parse_args(argv)
    candidates = [c for c in args.candidates.split(",") if c]
    for name in candidates:
        if name not in CANDIDATES:
            parser.error(f"--candidates: {name!r} is not one of {', '.join(CANDIDATES)}")
    study_methods = [m for m in (args.methods or "ts3net,ce").split(",") if m]
    table_methods = [m for m in (args.methods or ",".join(TABLE1_METHODS)).split(",") if m]
    for name in study_methods if args.part == "study" else table_methods:
        if name not in TABLE1_METHODS:
            parser.error(f"--methods: {name!r} is not one of {', '.join(TABLE1_METHODS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    dense_only = {m for m in args.dense_only.split(",") if m}
    out = Path(args.out)
    root = str(Path(args.root).resolve())
    if not args.table_only and args.part in ("study", "all"):
        for candidate in candidates:
            for method in study_methods:
                run_one(run_dir(out, candidate, method), run_values(candidate, method, root))
    if not args.table_only and args.part in ("table1", "all"):
        for seed in seeds:
            for method in table_methods:
                values = run_values("adopted", method, root, seed)
                if method in dense_only:
                    values["rounds"] = 0
                run_one(run_dir(out, "adopted", method, seed, method in dense_only), values)
    if args.part in ("study", "all"):
        print(table(out, candidates, [m for m in study_methods if m in METHOD_VALUES]))
    if args.part in ("table1", "all"):
        print()
        print(table1(out, table_methods, seeds, dense_only))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
