"""The controlled protocol's tuning: every method re-tunes its optimiser-coupled constants
under the shared SGD, on validation data, with the same budget, before the comparison runs.

`sweeps/compare.py --protocol controlled --tune-budget N`:

1. For each method and setting of the comparison, one Optuna search (TPE, level-aware
   grouped ASHA) of N trials over the method's tunables (`MethodDef.tunables`: JoCoR lam
   and T_k, SCE/APL alpha and beta, the MAE scale, DivideMix lambda_u, Co-teaching T_k,
   TS3-Net lam tau gamma), starting from the published constants, on the tuning seed
   (`--tune-seed`, never one of the comparison's seeds), choosing on S's accuracy on the
   held-out noisy labels (`val`); test accuracy is never read. A method with nothing to tune
   (CE, ITLM) runs no search: its budget is unused, not given to another method.
2. Each method's pick: the full-budget trial with the best validation accuracy at its last
   level (ties: the earlier trial).
3. The comparison: every method with its pick, on the comparison's seeds (`--seeds`), under
   `protocol=controlled` — the rows record the picked values in full.

Each search is a sweep of its own, `<name>.tune-<method>-<k>`, beside the comparison in the
same storage: it resumes with `--resume` like any sweep, and one already complete is read,
not run again.
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any

from ts3ray.errors import UserError
from ts3ray.tune.plans import CHOOSING_VAL_FRACTION, SweepPlan, split_common

DEFAULT_TUNE_SEED = 100


@dataclass
class TuningJob:
    """The search of one method in one setting."""

    method: str
    cell_indices: list[int]  # the comparison's cells it tunes (its seeds)
    plan: SweepPlan | None  # None: nothing to tune


def _tunables(method: str):
    from ts3ray.method.registry import method_def

    return method_def(method).tunables


def tuning_jobs(compare: SweepPlan, tune_seed: int) -> list[TuningJob]:
    """One search per (method, setting) of the comparison's cells."""
    from ts3ray.tune.search import TunableSpace

    groups: dict[tuple, list[int]] = {}
    for i, cell in enumerate(compare.cells):
        config = {**compare.common, **cell}
        if int(config["seed"]) == tune_seed:
            raise UserError(f"--tune-seed={tune_seed} is one of the comparison's --seeds: the "
                            "picks must be compared on fresh seeds")
        key = (config["method"], config["dataset"], config["noise"], config["noise_rate"])
        groups.setdefault(key, []).append(i)
    jobs = []
    for (method, *_), indices in groups.items():
        config = {**compare.common, **compare.cells[indices[0]], "seed": tune_seed}
        tunables = _tunables(method)
        if not tunables:
            jobs.append(TuningJob(method, indices, None))
            continue
        config_keys = method == "ts3net"
        space = TunableSpace(tunables, config_keys, "" if config_keys else config["method_options"])
        searched = tuple(t.name for t in tunables) if config_keys else (
            "method_options", *(space.coordinate(t.name) for t in tunables))
        plan = SweepPlan(sweep="search", common=config, search=True, searched=searched,
                         selected_on="val", space=space)
        jobs.append(TuningJob(method, indices, plan))
    return jobs


def check_controlled(compare: SweepPlan) -> None:
    """The comparison and its searches choose on held-out data: val_fraction > 0."""
    configs = [{**compare.common, **cell} for cell in compare.cells]
    if any(float(c["val_fraction"]) <= 0 for c in configs):
        raise UserError("--protocol controlled needs validation data to tune on: set "
                        f"val_fraction (e.g. {CHOOSING_VAL_FRACTION}); the comparison keeps it too")


def pick(results_uri: str, job: TuningJob) -> dict[str, Any]:
    """The values of the best full-budget trial of a finished search (validation only)."""
    from ts3ray.results.load import read_table

    levels = read_table(results_uri, "levels")
    full = levels[~levels["stopped_early"].astype(bool)]
    if full.empty:
        raise UserError(f"the tuning search of {job.method} ({results_uri}) has no full-budget "
                        "trial to pick from")
    last = full.sort_values("round").drop_duplicates("trial_id", keep="last")
    last = last.sort_values(["val_acc_sparse_last", "started_at"], ascending=[False, True])
    best = last.iloc[0]
    if job.method == "ts3net":
        return {t.name: float(best[t.name]) for t in _tunables(job.method)}
    return {"method_options": str(best["method_options"])}


def apply_picks(compare: SweepPlan, picks: dict[int, dict[str, Any]]) -> SweepPlan:
    """The comparison with each cell's method tuned: the picked values in its cells."""
    configs = [{**compare.common, **cell, **picks.get(i, {})} for i, cell in enumerate(compare.cells)]
    common, cells = split_common(configs)
    return dataclasses.replace(compare, common=common, cells=cells)


def run_tuning(compare: SweepPlan, opts, budget: int, tune_seed: int, run_plan) -> SweepPlan:
    """Run (or read) every method's search, then return the comparison with the picks."""
    from ts3ray import storage
    from ts3ray.tune.runner import RECORD

    check_controlled(compare)
    picks: dict[int, dict[str, Any]] = {}
    for k, job in enumerate(tuning_jobs(compare, tune_seed)):
        if job.plan is None:
            print(f"controlled: {job.method} has no optimiser-coupled constant to tune",
                  file=sys.stderr, flush=True)
            continue
        name = f"{opts.name}.tune-{job.method}-{k}"
        sub = dataclasses.replace(opts, name=name, num_samples=budget, scheduler="asha",
                                  seed=tune_seed, optuna_storage=None, fuse=1)
        exists = storage.exists(storage.join(sub.experiment_path, RECORD))
        sub = dataclasses.replace(sub, resume=exists)
        print(f"controlled: tuning {job.method} ({budget} trials, seed {tune_seed}) in "
              f"{sub.experiment_path}", file=sys.stderr, flush=True)
        run_plan(job.plan, sub)
        chosen = pick(sub.results_uri, job)
        print(f"controlled: {job.method} picks {chosen}", file=sys.stderr, flush=True)
        for i in job.cell_indices:
            picks[i] = chosen
    return apply_picks(compare, picks)
