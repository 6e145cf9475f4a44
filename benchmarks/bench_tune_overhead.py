"""Overhead of running a lottery run as a Ray Tune trial, and 2-trial throughput.

    python benchmarks/bench_tune_overhead.py [key=value ...]

1. the same lottery run (digits, one torch thread) directly vs inside one Tune trial
   (Tuner.fit wall time on an already started local Ray: actor start, reports, checkpoints,
   per-epoch Parquet writes);
2. two concurrent one-CPU trials vs one trial: throughput = trials per second.
Prints the times and ratios of one run; the local Ray has 2 CPUs.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

from ts3ray.config import make_config, parse_overrides
from ts3ray.run import LotteryRun
from ts3ray.tune.plans import SweepPlan, full_config
from ts3ray.tune.resources import RaySettings, ray_session
from ts3ray.tune.runner import SweepOptions, run_plan

BASE = {"dataset": "digits", "epochs": 40, "e1": 10, "e2": 20, "rounds": 1, "seed": 0}


def direct_seconds(values: dict) -> float:
    torch.set_num_threads(1)
    started = time.perf_counter()
    run = LotteryRun(make_config(values))
    for _ in run.epochs():
        pass
    return time.perf_counter() - started


def tune_seconds(values: dict, storage: str, name: str, trials: int, concurrent: int) -> float:
    """Wall time of Tuner.fit for `trials` copies of the run (different seeds)."""
    common = full_config(values)
    cells = [{"seed": int(values["seed"]) + i} for i in range(trials)]
    plan = SweepPlan("bench", {k: v for k, v in common.items() if k != "seed"}, cells=cells)
    opts = SweepOptions(name=name, storage=storage, max_concurrent=concurrent,
                        checkpoint_every=10)
    started = time.perf_counter()
    outcome = run_plan(plan, opts)
    assert outcome.completed == trials, outcome
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help=f"run config values (default {BASE})")
    values = {**BASE, **parse_overrides(parser.parse_args(argv).overrides)}
    epochs = (int(values["rounds"]) + 1) * int(values["epochs"])
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    direct = direct_seconds(values)
    with tempfile.TemporaryDirectory() as storage, ray_session(RaySettings(num_cpus=2)):
        warm = tune_seconds(values, storage, "warmup", 1, 1)  # first actor, imports
        one = tune_seconds(values, storage, "one", 1, 1)
        two = tune_seconds(values, storage, "two", 2, 2)
    print(f"lottery run: {values['dataset']}, {epochs} epochs over {int(values['rounds']) + 1} "
          f"levels, 1 CPU thread per run; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    print(f"direct run                         {direct:7.2f} s")
    print(f"one Tune trial (first, cold)       {warm:7.2f} s   ratio {warm / direct:5.2f}")
    print(f"one Tune trial (warm Ray)          {one:7.2f} s   ratio {one / direct:5.2f}")
    print(f"two concurrent 1-CPU trials        {two:7.2f} s")
    print(f"throughput 2 concurrent vs 1 trial {2 * one / two:7.2f} x  (2.00 = perfect)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
