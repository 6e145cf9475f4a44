"""What a sweep costs beyond its lottery runs, as the number of trials grows.

    python benchmarks/bench_sweep_scale.py --trials 2000 [--epochs 2]

Runs N tiny ts3ray trials (synthetic data, `--epochs` epochs, one IMP level, one CPU each on
a local Ray with 2 CPUs) and, in a separate process with the same Ray settings, N trials of
Ray Tune's own trivial function trainable (one `tune.report`). For each it prints:

* Tune-side overhead per trial: (fit wall time x 2 trial slots - the lottery runs' own time,
  summed from the epoch rows' `seconds`) / N; for the trivial trainable the run time is 0;
* the driver's RSS growth per trial while trials run (RSS sampled every 0.5 s; the slope over
  the second half of the samples up to the last trial's end, divided by the trials finished
  per second) and its peak, with the rise after the last trial's end (the end-of-run reads:
  Tune's result grid loads every trial's result.json) shown apart;
* the experiment-state bytes per trial (`experiment_state-*.json` at the end, / N);
* result files under `results/` before and after compaction, and what compacting them costs
  (seconds, the driver's RSS rise; ts3ray only: the fit runs with compaction off so that the
  files can be counted first).

Each role runs in its own process (`--role`), so RSS figures do not mix. Targets (issue 10):
overhead <= 2x the trivial trainable's, state <= 4 KB per trial, RSS growth <= 50 KB per
trial, <= 2 files per table after compaction. Works against older checkouts too (put them
first on PYTHONPATH); steps they lack print as n/a.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import threading
import time


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, int]] = []  # (wall-clock time, RSS KB)
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.samples.append((time.time(), rss_kb()))
            self.stop.wait(0.5)

    def growth_per_second(self, until: float) -> float:
        """Least-squares slope (KB/s) of RSS over the second half of the samples taken
        before `until` (the last trial's end)."""
        during = [s for s in self.samples if s[0] <= until]
        half = during[len(during) // 2:]
        if len(half) < 3:
            return 0.0
        ts = [t for t, _ in half]
        rs = [r for _, r in half]
        mt, mr = sum(ts) / len(ts), sum(rs) / len(rs)
        den = sum((t - mt) ** 2 for t in ts)
        return sum((t - mt) * (r - mr) for t, r in zip(ts, rs)) / den if den else 0.0

    def rss_at(self, when: float) -> int:
        before = [r for t, r in self.samples if t <= when]
        return before[-1] if before else self.samples[0][1]


def last_trial_end(experiment: str, default: float) -> float:
    """When the last trial reported: the newest `result.json` (Tune's JSON logger, on in
    every checkout measured and for the trivial trainable); `default` where none was kept."""
    found = [os.path.getmtime(p) for p in glob.glob(f"{experiment}/*/result.json")]
    return max(found, default=default)


def count_files(root: str) -> dict[str, int]:
    counts = {}
    for table in ("epochs", "levels"):
        counts[table] = sum(len([f for f in files if f.endswith(".parquet")])
                            for _, _, files in os.walk(os.path.join(root, table)))
    # tickets: a bit-packed mask file per level and trial.json per trial, theta_0 once per
    # distinct content (seed, architecture) (results/tickets.py)
    counts["tickets"] = sum(len(files) for _, _, files in os.walk(os.path.join(root, "tickets")))
    # other: anything else, but for the sweep's id manifest (results/sweep_files.py)
    counts["other"] = sum(len([f for f in files if (d, f) != (root, "ts3ray-results.json")])
                          for d, _, files in os.walk(root)
                          if not d.startswith(tuple(os.path.join(root, t)
                                                    for t in ("epochs", "levels", "tickets"))))
    return counts


def state_bytes(experiment: str) -> int:
    return sum(os.path.getsize(p) for p in glob.glob(f"{experiment}/experiment_state-*.json"))


def measure(fit, experiment: str, trials: int) -> dict:
    """RSS growth per trial is taken while trials run (up to the last trial's end); what the
    driver does after that (Tune's result grid reads every trial's result.json; ts3ray then
    reads its level rows) is reported apart, as the end-of-run rise to the peak."""
    sampler = RssSampler()
    sampler.start()
    started, wall_start = time.perf_counter(), time.time()
    fit()
    seconds = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    trials_end = last_trial_end(experiment, default=time.time())
    per_second = trials / max(trials_end - wall_start, 1e-9)
    peak = max(r for _, r in sampler.samples)
    return {"trials": trials, "fit_s": seconds,
            "peak_rss_mb": peak / 1024,
            "end_rise_mb": (peak - sampler.rss_at(trials_end)) / 1024,
            "rss_growth_kb_per_trial": sampler.growth_per_second(trials_end) / per_second,
            "state_bytes_per_trial": state_bytes(experiment) / trials}


def role_ts3ray(args, storage: str) -> dict:
    import pandas as pd
    import pyarrow.dataset as ds

    from ts3ray.tune.plans import SweepPlan, full_config
    from ts3ray.tune.resources import TrialResources
    from ts3ray.tune.runner import SweepOptions, run_plan

    common = full_config({"dataset": "synthetic", "epochs": args.epochs, "e1": 1,
                          "e2": max(0, args.epochs - 1), "rounds": 0})
    cells = [{"seed": i} for i in range(args.trials)]
    plan = SweepPlan("scale", common, cells=cells)
    try:  # count the files trials wrote, then compact them here
        opts = SweepOptions(name="scale", storage=storage, resources=TrialResources(cpu=1),
                            compact=False)
    except TypeError:  # a checkout without compaction
        opts = SweepOptions(name="scale", storage=storage, resources=TrialResources(cpu=1))
    experiment = f"{storage}/scale"
    out = measure(lambda: run_plan(plan, opts), experiment, args.trials)
    results = f"{experiment}/results"
    epochs = ds.dataset(f"{results}/epochs", format="parquet").to_table().to_pandas()
    out["run_s_total"] = float(pd.to_numeric(epochs["seconds"]).sum())
    out["rows"] = len(epochs)
    out["files_before"] = count_files(results)
    try:
        from ts3ray.results.compact import compact
    except ImportError:
        out["files_after"] = "n/a (no compaction in this checkout)"
    else:
        sampler = RssSampler()
        sampler.start()
        started = time.perf_counter()
        compact(results)
        out["compact_s"] = time.perf_counter() - started
        sampler.stop.set()
        sampler.join()
        out["compact_rise_mb"] = (max(r for _, r in sampler.samples)
                                  - sampler.samples[0][1]) / 1024
        out["files_after"] = count_files(results)
    return out


def trivial(config):
    from ray import tune

    tune.report({"x": 1})


def role_trivial(args, storage: str) -> dict:
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(trivial, {"cpu": 1}),
        param_space={"i": tune.grid_search(list(range(args.trials)))},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(name="trivial", storage_path=storage, verbose=0))
    out = measure(tuner.fit, f"{storage}/trivial", args.trials)
    out["run_s_total"] = 0.0
    return out


def run_role(args) -> None:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune's default loggers for the trivial trainable (a caller that ran a ts3ray sweep in
    # its own process, e.g. the test suite, has them switched off in the environment)
    os.environ.pop("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", None)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = measure_role(args.role, args)
    finally:
        ray.shutdown()
    print("RESULT " + json.dumps(out), flush=True)


def measure_role(role: str, args) -> dict:
    """One role's numbers, on the Ray this process is connected to."""
    storage = tempfile.mkdtemp(prefix=f"ts3ray-scale-{role}-")
    out = {"ts3ray": role_ts3ray, "trivial": role_trivial}[role](args, storage)
    out["overhead_s_per_trial"] = (out["fit_s"] * 2 - out["run_s_total"]) / out["trials"]
    out["storage"] = storage
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--role", choices=("ts3ray", "trivial"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trials < 2 or args.epochs < 1:
        parser.error("--trials >= 2 and --epochs >= 1")
    if args.role:
        run_role(args)
        return 0
    import ts3ray  # the checkout on PYTHONPATH, e.g. an old commit for the "before" numbers

    # Ray puts the driver's working directory first on its workers' sys.path: run the roles
    # from the measured checkout, or the trials import whatever ts3ray lies in the cwd
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(ts3ray.__file__)))
    found = {}
    for role in ("trivial", "ts3ray"):
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--role", role,
                               "--trials", str(args.trials), "--epochs", str(args.epochs)],
                              capture_output=True, text=True, cwd=checkout)
        lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
        if proc.returncode or not lines:
            sys.stderr.write(proc.stderr[-3000:])
            sys.exit(f"role {role} failed (exit {proc.returncode})")
        found[role] = json.loads(lines[-1][len("RESULT "):])
    print("\n".join(report(found["ts3ray"], found["trivial"], args)))
    return 0


def report(ours: dict, base: dict, args) -> list[str]:
    lines = [f"N = {args.trials} trials, {args.epochs} epoch(s) each, 2 trial slots"]
    for name, r in (("trivial trainable", base), ("ts3ray", ours)):
        lines.append(
            f"{name:>17}: fit {r['fit_s']:.1f} s, overhead {r['overhead_s_per_trial']:.3f} "
            f"s/trial, RSS growth {r['rss_growth_kb_per_trial']:.1f} KB/trial while trials "
            f"run, peak RSS {r['peak_rss_mb']:.0f} MB ({r['end_rise_mb']:+.0f} MB after the "
            f"last trial), experiment state {r['state_bytes_per_trial'] / 1024:.2f} KB/trial")
    ratio = ours["overhead_s_per_trial"] / base["overhead_s_per_trial"]
    lines.append(f"overhead ratio ts3ray / trivial: {ratio:.2f}x; lottery runs' own time "
                 f"{ours['run_s_total']:.1f} s over {ours['rows']} epoch rows")
    lines.append(f"result files before compaction: {ours['files_before']}; "
                 f"after: {ours['files_after']}")
    if "compact_s" in ours:
        lines.append(f"compaction: {ours['compact_s']:.1f} s, driver RSS "
                     f"{ours['compact_rise_mb']:+.0f} MB at its peak")
    return lines


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
