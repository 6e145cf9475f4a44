"""What grouped level-aware ASHA saves on a full-factorial grid, and what it costs in accuracy.

    python benchmarks/bench_asha_grid.py [--reduction-factors 2,3] [--fuse K] [--seeds 0,1,2]
                                         [--grid ...] [key=value ...]

Runs the same grid (default: 4 x 4 x 4 = 64 configurations of lambda, tau, gamma on digits,
sym-40 %, p_f 0.5, R = 3, E = 10, every trial holding out 10 % of the noisy training set)
once without early stopping and once per reduction factor with grouped level-aware ASHA
(grace period 1 level), all on one local Ray with 2 CPUs. For each ASHA run it prints:

* trial-epochs spent (the sum of every trial's last global epoch) against the complete grid;
* ASHA's pick (the full-budget trial with the best validation accuracy at the last level)
  and its test accuracy, against the complete grid's pick by the same rule (the regret), and
  against the grid's best test accuracy (an oracle nobody can select, shown for scale).

Training is deterministic, so a configuration that ASHA runs to the end produces the same
numbers as in the complete grid. With `--fuse K` the complete grid and each ASHA run also
run as fused arrays of K (with ASHA each array halves itself at ASHA's rungs and shrinks,
tune/fusing.py), printed beside the unfused ones, each against its own complete grid.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import pandas as pd

from ts3ray.results.load import add_trial_key, read_table
from ts3ray.results.rungs import level_agreement
from ts3ray.tune.cli import run_sweep
from ts3ray.tune.resources import RaySettings, ray_session

GRID = ["lam=0,0.33,0.67,1", "tau=0.3,0.5,0.7,0.9", "gamma=0.1,0.4,0.7,1"]
BASE = ["epochs=10", "e1=3", "e2=4", "rounds=3", "prune_fraction=0.5", "val_fraction=0.1"]


def sweep(storage: str, name: str, overrides: list[str], grid: list[str], extra: list[str]):
    started = time.perf_counter()
    code = run_sweep("grid", ["--storage", storage, "--name", name, "--max-concurrent", "2",
                              "--checkpoint-every", "100", *extra, *overrides, "--grid", *grid])
    if code != 0:
        sys.exit(f"sweep {name} failed with exit code {code}")
    seconds = time.perf_counter() - started
    levels = read_table(f"{storage}/{name}", "levels")
    epochs = read_table(f"{storage}/{name}", "epochs")
    return seconds, levels, epochs


KEYS: list[str] = []  # the grid's keys (main), in --grid order


def full_budget(levels: pd.DataFrame) -> pd.DataFrame:
    last = levels[levels["round"] == levels["rounds"]]
    return last[~last["stopped_early"].astype(bool)]


def pick(levels: pd.DataFrame) -> pd.Series:
    """The full-budget trial with the best validation accuracy at its last level; ties by
    the configuration (every grid key), so fused and unfused runs pick alike."""
    return full_budget(levels).sort_values(["val_acc_sparse_last", *KEYS],
                                           ascending=[False] + [True] * len(KEYS)).iloc[0]


def tied(levels: pd.DataFrame, chosen: pd.Series) -> str:
    """The configurations tied with the pick on validation, and their test accuracies: how
    far apart a pick among validation-equal configurations can land on test."""
    full = full_budget(levels)
    same = full[(full["val_acc_sparse_last"] - chosen["val_acc_sparse_last"]).abs() < 1e-12]
    return (f"{len(same)} tied on validation, test {100 * same['acc_sparse_last'].min():.2f}-"
            f"{100 * same['acc_sparse_last'].max():.2f}% (mean "
            f"{100 * same['acc_sparse_last'].mean():.2f})")


def rung_signal(levels: pd.DataFrame) -> str:
    """How well each earlier level's validation accuracy ranks the configurations as the
    last level does over the complete grid (`ts3ray table rungs`): ASHA's premise. Near 0,
    a rung's cut is a random draw and the regret measures luck, not the scheduler."""
    agreement = level_agreement(add_trial_key(levels), "val_acc_sparse_last")
    return ", ".join(f"level {a.level} {a.spearman:+.2f}" for a in agreement.itertuples())


def reproducibility(grids: dict[int, pd.DataFrame]) -> str:
    """Whether the configurations differ reproducibly (complete grids of several seeds,
    reported, never chosen on): the spread of one configuration's last-level test accuracy
    over the seeds against the spread between configurations' seed means (which seed noise
    alone would make std/sqrt(seeds)), and the Spearman of the configurations' test
    accuracies between two seeds (listed up to three pairs, else their mean and range)."""
    tests = pd.concat({seed: levels[levels["round"] == levels["rounds"]].assign(
        **{k: levels[k].round(6) for k in KEYS}).set_index(KEYS)["acc_sparse_last"]
        for seed, levels in grids.items()}, axis=1)
    seeds = list(tests.columns)
    pairs = [tests[a].corr(tests[b], method="spearman")
             for i, a in enumerate(seeds) for b in seeds[i + 1:]]
    within = 100 * tests.std(axis=1).mean()
    spearman = (", ".join(f"{r:+.2f}" for r in pairs) if len(pairs) <= 3 else
                f"mean {sum(pairs) / len(pairs):+.2f} over {len(pairs)} pairs "
                f"(min {min(pairs):+.2f}, max {max(pairs):+.2f})")
    return (f"one configuration's test accuracy over seeds: std {within:.2f} "
            f"points (mean over configurations); the configurations' seed means: std "
            f"{100 * tests.mean(axis=1).std():.2f} (seed noise alone: "
            f"{within / len(seeds) ** 0.5:.2f}); Spearman between seeds {spearman}")


def mean_and_error(values: list[float]) -> str:
    """The mean of per-seed values and its standard error (std with ddof 1 over sqrt(n)): a
    bar such as "regret within 0.5 points" is met when the mean and its error are, not by
    one seed's draw."""
    n = len(values)
    mean = sum(values) / n
    spread = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else float("nan")
    return f"mean {mean:+.2f} +- {spread / n ** 0.5:.2f} (standard error, {n} seeds)"


def key(row: pd.Series) -> tuple:
    return tuple(round(float(row[p]), 6) for p in KEYS)


def compare(storage: str, overrides: list[str], args, seed: int) -> dict[str, tuple[float, float]]:
    """The complete grid and each ASHA run (fused too with --fuse), printed; returns
    {run: (wall time as a multiple of its complete grid's, regret in points)}."""
    seeds = ["--seeds", str(seed)]
    full_s, full_levels, full_epochs = sweep(storage, "complete", overrides, args.grid, seeds)
    fused = (sweep(storage, f"complete-fused{args.fuse}", overrides, args.grid,
                   [*seeds, "--fuse", str(args.fuse)]) if args.fuse > 1 else None)
    runs = {}
    for rf in args.reduction_factors.split(","):
        asha = [*seeds, "--scheduler", "asha", "--grace-period", "1", "--reduction-factor", rf]
        runs[f"rf={rf}"] = sweep(storage, f"asha-rf{rf}", overrides, args.grid, asha)
        if fused is not None:
            runs[f"rf={rf} fused by {args.fuse}"] = sweep(
                storage, f"asha-rf{rf}-fused{args.fuse}", overrides, args.grid,
                [*asha, "--fuse", str(args.fuse)])
    full_spent = full_epochs.groupby("trial_id")["global_epoch"].max().sum()
    grid_pick = pick(full_levels)
    last = full_levels[full_levels["round"] == full_levels["rounds"]]
    oracle = last["acc_sparse_last"].max()
    print(f"grid: {full_epochs['trial_id'].nunique()} configurations x "
          f"{int(full_levels['rounds'].iloc[0]) + 1} levels; {storage}")
    print(f"complete grid: {full_spent} trial-epochs in {full_s:.0f} s "
          f"({1000 * full_s / full_spent:.0f} ms per trial-epoch); pick by validation "
          f"{key(grid_pick)}: val {100 * grid_pick['val_acc_sparse_last']:.2f}%, test "
          f"{100 * grid_pick['acc_sparse_last']:.2f}% ({tied(full_levels, grid_pick)}); "
          f"best test of any configuration {100 * oracle:.2f}% (oracle)")
    print(f"rung signal (Spearman of a level's validation accuracy with the last level's, "
          f"complete grid): {rung_signal(full_levels)}")
    if fused is not None:
        fused_s, fused_levels, _ = fused
        fused_pick = pick(fused_levels)
        print(f"complete grid fused by {args.fuse}: {fused_s:.0f} s ({fused_s / full_s:.2f}x the "
              f"unfused grid); pick {key(fused_pick)}: test "
              f"{100 * fused_pick['acc_sparse_last']:.2f}%")
    out = {}
    for name, (seconds, levels, epochs) in runs.items():
        spent = epochs.groupby("trial_id")["global_epoch"].max().sum()
        chosen = pick(levels)
        stopped = levels.groupby("trial_id")["stopped_early"].first().sum()
        regret = 100 * (grid_pick["acc_sparse_last"] - chosen["acc_sparse_last"])
        baseline = fused[0] if "fused" in name else full_s
        out[name] = (seconds / baseline, regret)
        print(f"asha {name}: {spent} trial-epochs ({100 * (1 - spent / full_spent):.1f}% saved) "
              f"in {seconds:.0f} s = {seconds / baseline:.2f}x its complete grid "
              f"({1000 * seconds / spent:.0f} ms per trial-epoch), {stopped} "
              f"trials stopped; pick {key(chosen)}: val "
              f"{100 * chosen['val_acc_sparse_last']:.2f}%, test "
              f"{100 * chosen['acc_sparse_last']:.2f}% ({tied(levels, chosen)}); regret vs "
              f"the grid's pick {regret:+.2f} points, vs the oracle "
              f"{100 * oracle - 100 * chosen['acc_sparse_last']:+.2f}", flush=True)
    return out, full_levels


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", default=[], help="config values (key=value)")
    parser.add_argument("--reduction-factors", default="2,3")
    parser.add_argument("--grid", nargs="+", default=GRID)
    parser.add_argument("--fuse", type=int, default=1, help="also the complete grid fused by K")
    parser.add_argument("--seeds", default="0", help="repeat everything per seed (a,b,c): "
                        "the regret of one pick is one draw of the validation noise")
    args = parser.parse_args(argv)
    KEYS[:] = [item.split("=", 1)[0] for item in args.grid]
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    seeds = [int(s) for s in args.seeds.split(",")]
    results, grids = {}, {}
    with ray_session(RaySettings(num_cpus=2)):
        for seed in seeds:
            print(f"== seed {seed}", flush=True)
            storage = tempfile.mkdtemp(prefix="ts3ray-bench-asha-")
            values = dict(item.split("=", 1) for item in [*BASE, *args.overrides])  # yours win
            results[seed], grids[seed] = compare(storage, [f"{k}={v}" for k, v in values.items()],
                                                 args, seed)
    if len(seeds) > 1:
        for name in results[seeds[0]]:
            ratios = [results[s][name][0] for s in seeds]
            regrets = [results[s][name][1] for s in seeds]
            print(f"over seeds {args.seeds}: asha {name}: wall time "
                  f"{', '.join(f'{r:.2f}' for r in ratios)}x (mean {sum(ratios) / len(ratios):.2f}x) "
                  f"its complete grid; regret {', '.join(f'{r:+.2f}' for r in regrets)} "
                  f"({mean_and_error(regrets)}) points")
        print(f"over seeds {args.seeds}: {reproducibility(grids)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
