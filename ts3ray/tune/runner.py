"""Build, run and resume the Tuner of a sweep plan.

Layout (storage.SweepLayout): `<storage>/<name>/` holds Ray Tune's experiment (its state,
trial folders, checkpoints) and `results/<table>/` the Parquet rows (results.py). After the
fit the rows are compacted into one file per table. Nothing about a trial's fate is written
afterwards: readers derive it from the rows (results/load.py).

Lean Tune state (issue: 10,000 trials on S3): trial configs hold only what differs between
trials, reports only what the scheduler and searcher use, CSV and TensorBoard loggers are off
(`tune_loggers=True` keeps them), trials checkpoint rarely enough that keeping two per trial
never forces a blocking experiment-state sync (trainable.py), and Tune's running 5- and
10-report windows of every metric are not kept per trial (`LeanTrialState`).
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from ts3ray import storage
from ts3ray.config import METHOD_PARAMS, SELECTION_COLUMNS
from ts3ray.errors import SweepInterrupted, UserError
from ts3ray.tune import trainable
from ts3ray.tune.memory import FreedMemoryReturner
from ts3ray.tune.plans import SweepPlan
from ts3ray.tune.resources import TrialResources
from ts3ray.tune.search import LEVELS_DONE, MODE, make_searcher

STATUS_EVERY_S = 60.0
RECORD = "ts3ray-sweep.json"  # the plan and options a sweep was started with
# Options baked into Tune's stored experiment: a resume cannot change them.
FIXED_OPTIONS = ("scheduler", "grace_period", "reduction_factor", "num_samples", "sampler",
                 "seed", "max_concurrent", "max_failures", "keep_checkpoints", "optuna_storage",
                 "tune_loggers", "fuse")
ADDED_OPTIONS = {"fuse": 1}  # options newer than some stored records: their value before
MOVABLE_FIELDS = ("data_root", "device", "eval_batch_size")  # where trials run, not what


@dataclass(frozen=True)
class SweepOptions:
    """How to run a plan (everything but what the trials compute)."""

    name: str
    storage: str  # absolute local path or URI
    resources: TrialResources = TrialResources()
    scheduler: str = "none"
    grace_period: int = 1  # IMP levels
    reduction_factor: float = 3
    max_concurrent: int | None = None
    max_failures: int = 0
    checkpoint_every: int | None = None  # epochs; None: level ends and the timer
    checkpoint_minutes: float = 10.0
    keep_checkpoints: int | None = 2  # per trial (trainable.py: why this forces no syncs)
    num_samples: int = 16
    sampler: str = "tpe"
    seed: int = 0
    optuna_storage: str | None = None
    resume: bool = False
    restart_errored: bool = False
    trust_storage: bool = False  # resume state that ts3ray cannot verify (trust.py)
    compact: bool = True  # merge the result files into one per table after the fit
    tune_loggers: bool = False  # Tune's CSV and TensorBoard files per trial
    tracker: str | None = None  # tensorboard | mlflow | wandb (trackers.py)
    gpu_memory_fraction: bool = False  # cap each trial's GPU memory at its GPU share
    verbose: int = 0
    fuse: int = 1  # --fuse K: lottery runs per fused array (fusing.py); 1: unfused

    @property
    def layout(self) -> storage.SweepLayout:
        return storage.SweepLayout(self.storage, self.name)

    @property
    def experiment_path(self) -> str:
        return self.layout.experiment

    @property
    def results_uri(self) -> str:
        return self.layout.results


def trial_dirname(trial) -> str:
    """Short trial directory names (Tune's default embeds the whole config)."""
    return f"trial_{trial.trial_id}"


def param_space(plan: SweepPlan) -> dict[str, Any]:
    """Only what differs between trials: the index of a grid cell (trainable.py; a search's
    values come from Optuna)."""
    from ray import tune

    if plan.arrays:  # --fuse: one trial per fused array (fusing.py)
        return {trainable.ARRAY: tune.grid_search(list(range(len(plan.arrays))))}
    indices = list(range(len(plan.cells)))
    return {} if plan.search else {trainable.CELL: tune.grid_search(indices)}


def sweep_settings(plan: SweepPlan, opts: SweepOptions) -> trainable.SweepSettings:
    """What every trial shares; a new sweep's id is written to its results folder here."""
    from ts3ray.results.sweep_files import own_sweep_id

    common = dict(plan.common)
    if plan.search:
        for key in plan.searched:  # suggested by Optuna instead
            common.pop(key, None)
    fraction = opts.resources.gpu if opts.gpu_memory_fraction and opts.resources.gpu else None
    return trainable.SweepSettings(
        sweep=plan.sweep, common=common, results_uri=opts.results_uri,
        checkpoint_every=opts.checkpoint_every, checkpoint_minutes=opts.checkpoint_minutes,
        selected_on=plan.selected_on, cells=tuple(plan.cells), argv=tuple(sys.argv),
        tracked=opts.tracker is not None, arrays=plan.arrays, halving=halving(plan, opts),
        sweep_id=own_sweep_id(opts.results_uri, opts.name, create=not opts.resume),
        gpu_memory_fraction=fraction if fraction and fraction < 1 else None)


def halving(plan: SweepPlan, opts: SweepOptions):
    """--fuse with ASHA: the arrays' own successive halving (fusing.Halving), else None."""
    if not plan.arrays or opts.scheduler == "none":
        return None
    from ts3ray.tune.fusing import Halving

    return Halving(opts.grace_period, opts.reduction_factor)


def fewest_levels(plan: SweepPlan) -> int:
    """IMP levels (R + 1) of the shortest trial: the largest grace period that can stop one."""
    configs = [{**plan.common, **cell} for cell in plan.cells] or [plan.common]
    return min(int(c["rounds"]) + 1 for c in configs)


def check_scheduler_options(plan: SweepPlan, opts: SweepOptions) -> None:
    """ASHA's options, in IMP levels; raises UserError before Ray starts."""
    if opts.scheduler == "none":
        return
    levels = fewest_levels(plan)
    if levels < 2:
        raise UserError("--scheduler asha is not allowed with rounds=0: a trial has one IMP "
                        "level, so there is no level end to stop it at (use rounds >= 1)")
    if not 1 <= opts.grace_period < levels:
        raise UserError(f"--grace-period={opts.grace_period} is not allowed: 1..{levels - 1} "
                        f"(IMP levels completed before a trial may be stopped; a trial has "
                        f"{levels} levels)")
    if not opts.reduction_factor > 1:
        raise UserError(f"--reduction-factor={opts.reduction_factor:g} is not allowed: > 1")


def objective_metric(plan: SweepPlan) -> str:
    """The per-epoch column the sweep chooses on (validation accuracy unless asked)."""
    return SELECTION_COLUMNS[plan.selected_on or "val"]


def run_values(plan: SweepPlan) -> trainable.RunValues:
    return trainable.RunValues(plan.common, tuple(plan.cells), plan.arrays)


def make_scheduler(plan: SweepPlan, opts: SweepOptions):
    """Grouped level-aware ASHA (scheduler.py), or None."""
    if opts.scheduler == "none":
        return None
    from ts3ray.tune.scheduler import ComparableGroup, GroupedLevelASHA

    check_scheduler_options(plan, opts)
    values = run_values(plan)
    group = ComparableGroup(searched=plan.searched, run_values=values)
    return GroupedLevelASHA(objective_metric(plan), group, trainable.TotalLevels(values),
                            grace_period=opts.grace_period,
                            reduction_factor=opts.reduction_factor,
                            halves_itself=values.fused if plan.arrays else None)


def _short(value):
    return f"{value:.3g}" if isinstance(value, float) else value


def trial_label(config: dict[str, Any]) -> str:
    """`dataset=digits method=jocor prune_fraction=0.5 seed=0`: what a progress line shows of
    a trial; λ τ γ E1 E2 only for TS3-Net (a competitor has none of them)."""
    own = METHOD_PARAMS if config.get("method", "ts3net") == "ts3net" else ()
    keys = ("dataset", "method", "variant", *own, "prune_fraction", "seed")
    return " ".join(f"{k}={_short(v)}" for k, v in config.items() if k in keys
                    and not (k == "variant" and not own))


def sweep_callbacks(plan: SweepPlan, opts: SweepOptions, total: int) -> list:
    """Progress lines, lean trial state, and the one Tune logger the result grid reads."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

    values, levels = run_values(plan), trainable.TotalLevels(run_values(plan))

    class SweepProgress(tune.Callback):
        """A line per finished trial, a status line at least every minute, and the counts
        of the sweep's outcome; freed heap memory handed back every few seconds."""

        def __init__(self):
            self.finished = 0
            self.started = self.last_status = time.monotonic()
            self.memory = FreedMemoryReturner()

        def on_trial_complete(self, iteration, trials, trial, **info):
            last = trial.last_result or {}
            early = last.get(LEVELS_DONE, 0) < levels(trial.config)
            self._line(trial, "stopped early" if early else "done")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._line(trial, "FAILED")

        def _line(self, trial, verdict):
            self.finished += 1
            last = trial.last_result or {}
            shown = trial_label(values(trial.config))
            print(f"[{self.finished}/{total}] {verdict} {trial.trial_id} {shown} "
                  f"{last.get(trainable.PROGRESS, 'no result')}", file=sys.stderr, flush=True)

        def on_step_end(self, iteration, trials, **info):
            self.memory.due()  # memory.py: the driver's RSS would climb with every trial
            now = time.monotonic()
            if now - self.last_status >= STATUS_EVERY_S:
                self.last_status = now
                print(status_line(trials, levels, now - self.started, total), file=sys.stderr,
                      flush=True)

    objective = objective_metric(plan) if plan.selected_on is not None else None
    reported = (LEVELS_DONE, *([objective] if objective else []))
    callbacks = [SweepProgress(), LeanTrialState(reported, objective), JsonLoggerCallback()]
    if opts.tune_loggers:
        callbacks += [CSVLoggerCallback(), TBXLoggerCallback()]
    from ts3ray.tune.trackers import tracker_callbacks

    return callbacks + tracker_callbacks(opts.tracker, values, opts.name)


def status_line(trials, levels, elapsed: float, total: int) -> str:
    """`status: 3 running, 10 pending, 5 done, 2 stopped early, 0 failed; 31% of IMP levels
    in 120 s, ETA ~270 s` (the ETA extrapolates the levels finished so far)."""
    counts = {"RUNNING": 0, "PENDING": 0, "TERMINATED": 0, "ERROR": 0, "PAUSED": 0}
    stopped = finished_levels = budget = 0
    for trial in trials:
        counts[trial.status] = counts.get(trial.status, 0) + 1
        need = levels(trial.config)
        got = (trial.last_result or {}).get(LEVELS_DONE, 0)
        if trial.status == "TERMINATED":
            stopped += got < need
            got = need  # a stopped trial needs no more levels
        finished_levels += got
        budget += need
    budget += levels({}) * max(0, total - len(trials))  # trials not yet suggested
    share = finished_levels / budget if budget else 0.0
    eta = f"ETA ~{elapsed * (1 - share) / share:.0f} s" if share > 0 else "ETA unknown"
    return (f"status: {counts['RUNNING']} running, {counts['PENDING'] + counts['PAUSED']} "
            f"pending, {counts['TERMINATED'] - stopped} done, {stopped} stopped early, "
            f"{counts['ERROR']} failed; {100 * share:.0f}% of IMP levels in {elapsed:.0f} s, {eta}")


def _lean_state_class():
    from ray import tune

    class _LeanTrialState(tune.Callback):
        """What Tune's experiment state keeps per trial beyond what ts3ray needs, trimmed.

        While a trial runs, Tune keeps windows of the last 5 and 10 values of every numeric
        metric (`last-5-avg`...): about 2-5 KB per trial that no part of ts3ray reads; an
        empty window list makes Tune keep only max/min/avg/last. When a trial ends, its record
        keeps (measured at N = 2,000 in benchmarks/bench_sweep_scale.py):
        * of the last result, only what ts3ray reads (the reported metrics and the progress
          line), not Tune's counters, timers, host, pid, date and copy of the config (-0.5 KB
          per trial);
        * statistics only of the objective the sweep chooses on (-0.14 KB);
        * not the trial-folder naming function, which Tune pickles into every trial record
          although a trial is named once, at its start (-0.17 KB).
        Touches private attributes; where a Ray version lacks them, nothing changes."""

        def __init__(self, reported: tuple[str, ...], objective: str | None):
            self.kept_result = (*reported, trainable.PROGRESS)
            self.kept_stats = (objective,) if objective else ()

        def on_trial_start(self, iteration, trials, trial, **info):
            metadata = getattr(trial, "run_metadata", None)
            if metadata is not None and hasattr(metadata, "_n_steps"):
                metadata._n_steps = ()

        on_trial_restore = on_trial_start

        def on_trial_complete(self, iteration, trials, trial, **info):
            metadata = getattr(trial, "run_metadata", None)
            for name in ("metric_analysis", "metric_n_steps"):
                stats = getattr(metadata, name, None)
                if isinstance(stats, dict):  # (assignment refreshes Tune's cached JSON)
                    setattr(metadata, name, {k: v for k, v in stats.items()
                                             if k in self.kept_stats})
            last = getattr(metadata, "last_result", None)
            if isinstance(last, dict):
                metadata.last_result = {k: v for k, v in last.items() if k in self.kept_result}
            if getattr(trial, "custom_dirname", None) and hasattr(trial, "invalidate_json_state"):
                trial.trial_dirname_creator = None
                trial.invalidate_json_state()

    return _LeanTrialState


def LeanTrialState(reported: tuple[str, ...], objective: str | None):  # noqa: N802 - made
    return _lean_state_class()(reported, objective)  # on demand (needs Ray)


def make_trainable(plan: SweepPlan, opts: SweepOptions):
    """The trainable with its resources and the sweep's shared settings (given once, not in
    every trial config). The results location is a parameter, so a sweep moved to new
    storage and resumed writes its rows where it now lives."""
    from ray import tune

    with_settings = tune.with_parameters(trainable.lottery_trainable,
                                         settings=sweep_settings(plan, opts))
    return tune.with_resources(with_settings, opts.resources.as_tune(run_values(plan)))


def run_config(plan: SweepPlan, opts: SweepOptions, total: int):
    from ray import tune

    fs, path = storage.resolve(opts.storage)
    return tune.RunConfig(
        name=opts.name,
        storage_path=path,
        storage_filesystem=fs,
        failure_config=tune.FailureConfig(max_failures=opts.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=opts.keep_checkpoints),
        callbacks=sweep_callbacks(plan, opts, total),
        verbose=opts.verbose,
    )


def make_tuner(plan: SweepPlan, opts: SweepOptions):
    from ray import tune

    searcher = None
    num_samples = 1
    if plan.search:
        searcher = make_searcher(plan.common, objective_metric(plan), sampler=opts.sampler,
                                 seed=opts.seed, storage=opts.optuna_storage,
                                 study_name=opts.name,
                                 total_levels=int(plan.common["rounds"]) + 1,
                                 space=plan.space, results=opts.results_uri)
        num_samples = opts.num_samples
    chooses = plan.selected_on is not None
    tune_config = tune.TuneConfig(
        metric=objective_metric(plan) if chooses else None,
        mode=MODE if chooses else None,
        search_alg=searcher,
        scheduler=make_scheduler(plan, opts),
        num_samples=num_samples,
        max_concurrent_trials=opts.max_concurrent,
        trial_dirname_creator=trial_dirname,
        reuse_actors=True,  # skip a worker start (torch import) per trial
    )
    total = num_samples * max(1, len(plan.arrays) or plan.num_trials)
    return tune.Tuner(make_trainable(plan, opts), param_space=param_space(plan),
                      tune_config=tune_config, run_config=run_config(plan, opts, total))


def restore_tuner(plan: SweepPlan, opts: SweepOptions):
    from ray import tune

    fs, path = storage.resolve(opts.experiment_path)
    return tune.Tuner.restore(path, trainable=make_trainable(plan, opts),
                              resume_unfinished=True, resume_errored=not opts.restart_errored,
                              restart_errored=opts.restart_errored, storage_filesystem=fs)


def check_experiment(opts: SweepOptions) -> None:
    """--resume needs an experiment to restore; a fresh sweep must not overwrite one."""
    from ray import tune

    fs, path = storage.resolve(opts.experiment_path)
    exists = tune.Tuner.can_restore(path, storage_filesystem=fs)
    if opts.resume and not exists:
        raise UserError(f"--resume: {opts.experiment_path} holds no sweep to resume; "
                        "check --storage and --name")
    if not opts.resume and exists:
        raise UserError(f"--name {opts.name}: {opts.experiment_path} already holds a sweep; "
                        "pass --resume to finish it or choose another --name")


def sweep_record(plan: SweepPlan, opts: SweepOptions) -> dict[str, Any]:
    """What the sweep computes and how Tune runs it, as JSON values."""
    what = {"sweep": plan.sweep, "common": plan.common, "cells": plan.cells,
            "search": plan.search, "searched": list(plan.searched),
            "selected_on": plan.selected_on}
    how = {name: getattr(opts, name) for name in FIXED_OPTIONS}
    return json.loads(json.dumps({"version": 1, "plan": what, "options": how}, default=list))


def _record_text(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True)


def write_record(plan: SweepPlan, opts: SweepOptions) -> None:
    """The record of a new sweep, signed together with the tuner.pkl Tune just wrote."""
    from ts3ray.tune import trust

    record = sweep_record(plan, opts)
    signed = trust.signature(_record_text(record), trust.tuner_pkl(opts.experiment_path) or b"")
    from ts3ray import provenance  # beside the signed record: not compared on a resume

    storage.write_text_atomic(storage.join(opts.experiment_path, RECORD),
                              json.dumps({"record": record, "signature": signed,
                                          "provenance": provenance.collect()}, indent=1))


def resume_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names of what a resume would change, with the stored and the current value."""
    out = []
    for name in FIXED_OPTIONS:
        old = stored["options"].get(name, ADDED_OPTIONS.get(name))
        new = current["options"][name]
        if old != new:
            out.append(f"--{name.replace('_', '-')} (stored {old}, now {new})")
    old_plan, new_plan = stored["plan"], current["plan"]
    for key in ("sweep", "search", "searched", "selected_on"):
        if old_plan.get(key) != new_plan[key]:
            out.append(f"{key} (stored {old_plan.get(key)}, now {new_plan[key]})")
    common = set(old_plan["common"]) | set(new_plan["common"])
    for key in sorted(common - set(MOVABLE_FIELDS)):
        old, new = old_plan["common"].get(key), new_plan["common"].get(key)
        if old != new:
            out.append(f"{key} (stored {old}, now {new})")
    if old_plan["cells"] != new_plan["cells"]:
        out.append(f"the trials (stored {len(old_plan['cells'])} cells, now "
                   f"{len(new_plan['cells'])}, or other values)")
    return out


def check_resume(plan: SweepPlan, opts: SweepOptions) -> None:
    """Before Ray reads anything: the sweep folder is trusted (trust.py: signature, owner),
    and the resume continues the stored sweep: a changed plan or a changed option that Tune
    keeps from the first start is refused, naming what differs. (Resources, checkpoint
    settings, --restart-errored and where the data lives may change: they apply.)"""
    from ts3ray.tune import trust

    trust.check_trust_option(opts.experiment_path, opts.trust_storage)
    raw = storage.read_bytes(storage.join(opts.experiment_path, RECORD))
    try:
        kept = json.loads(raw) if raw is not None else None
        stored, signed = kept["record"], kept["signature"]
    except (ValueError, TypeError, KeyError):
        raise UserError(f"--resume: {opts.experiment_path} has no valid signed ts3ray record "
                        f"({RECORD}): not a sweep this ts3ray started, or changed since; refusing "
                        "to unpickle its state (even with --trust-storage)") from None
    trust.check_signature(opts.experiment_path, _record_text(stored), signed)  # always
    statement = trust.check_folder(opts.experiment_path, opts.trust_storage)
    if statement:
        print(statement, file=sys.stderr, flush=True)
    changed = resume_differences(stored, sweep_record(plan, opts))
    if changed:
        raise UserError(f"--resume: this command differs from the stored sweep in "
                        f"{'; '.join(changed)}; resume with the original command, or start a new "
                        "sweep with another --name")


@dataclass
class SweepOutcome:
    trials: int
    completed: int
    stopped_early: int
    errors: list[str] = field(default_factory=list)
    compacted: dict[str, tuple[int, int]] = field(default_factory=dict)


def prepare(plan: SweepPlan, opts: SweepOptions) -> None:
    """The checks that come before Ray starts: an experiment to resume (trusted, same plan)
    or none to overwrite."""
    check_experiment(opts)
    if opts.resume:
        check_resume(plan, opts)


def run_plan(plan: SweepPlan, opts: SweepOptions) -> SweepOutcome:
    """Fit (or restore and finish) the sweep, then compact its result files."""
    from ts3ray.results.compact import compact

    prepare(plan, opts)
    # CSV/TensorBoard loggers are added by Tune unless this is set; the JSON logger that the
    # result grid reads is passed explicitly (sweep_callbacks).
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    if opts.resume:
        tuner = restore_tuner(plan, opts)
    else:
        tuner = make_tuner(plan, opts)
        write_record(plan, opts)
    grid = fit(tuner)
    errors = [f"{r.path.rsplit('/', 1)[-1]}: {str(r.error).splitlines()[0]}"
              for r in grid if r.error is not None]
    outcome = SweepOutcome(len(grid), 0, 0, errors)
    if storage.exists(opts.results_uri):
        if opts.compact:
            outcome.compacted = compact(opts.results_uri)
        outcome.completed, outcome.stopped_early = count_budgets(opts.results_uri)
    return outcome


def fit(tuner):
    """`tuner.fit()`; raises SweepInterrupted when Ray Tune caught a Ctrl-C itself (it then
    stops the trials, saves the experiment's state and returns as if the sweep had ended).
    Any KeyboardInterrupt from here on (Terminated included) is marked resumable: the
    experiment exists, `--resume` finishes it (results.py: no row lost or duplicated)."""
    import signal
    import threading

    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT) if main else None
    tune_catches = main and not int(os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") or 0)
    caught = False
    try:
        grid = tuner.fit()
    except KeyboardInterrupt as err:
        err.resumable = True
        raise
    finally:
        if main:  # Tune leaves its handler installed: a later Ctrl-C would do nothing
            caught = signal.getsignal(signal.SIGINT) is before  # Tune put it back: it fired
            signal.signal(signal.SIGINT, before)
    if (tune_catches and caught) or unfinished_trials(grid):
        interrupted = SweepInterrupted()
        interrupted.resumable = True
        raise interrupted
    return grid


def unfinished_trials(grid) -> int:
    """Trials of the fit neither TERMINATED nor ERROR (pending, paused, running at a stop)."""
    trials = getattr(getattr(grid, "_experiment_analysis", None), "trials", None) or []
    return sum(getattr(t, "status", "TERMINATED") not in ("TERMINATED", "ERROR") for t in trials)


def count_budgets(results_uri: str) -> tuple[int, int]:
    """(full-budget trials, trials that stopped before it), derived from the level rows."""
    from ts3ray.results.load import read_table

    try:  # only the columns the budget status is derived from: a cheap read of every file
        levels = read_table(results_uri, "levels", columns=())
    except UserError:  # no trial finished a level
        return 0, 0
    per_trial = levels.groupby("trial_id")["stopped_early"].first()
    return int((~per_trial).sum()), int(per_trial.sum())
