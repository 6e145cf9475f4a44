"""Build, run and resume the Tuner of a sweep plan; record ASHA's early stops afterwards.

Layout under `<storage>/<name>/`: Tune's experiment state and trial directories, and
`results/epochs/<trial_id>.parquet`, `results/levels/<trial_id>.parquet` (results.py).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from ts3ray.config import METHOD_PARAMS, SELECTION_COLUMNS
from ts3ray.errors import UserError
from ts3ray.tune import results, trainable
from ts3ray.tune.plans import SweepPlan
from ts3ray.tune.resources import TrialResources
from ts3ray.tune.search import MODE, make_searcher


@dataclass(frozen=True)
class SweepOptions:
    """How to run a plan (everything but what the trials compute)."""

    name: str
    storage: str  # absolute local path or URI
    resources: TrialResources = TrialResources()
    scheduler: str = "none"
    grace_period: int = 1  # IMP levels
    reduction_factor: float = 2
    max_concurrent: int | None = None
    max_failures: int = 0
    checkpoint_every: int = 1
    num_samples: int = 16
    sampler: str = "tpe"
    seed: int = 0
    optuna_storage: str | None = None
    resume: bool = False
    verbose: int = 0

    @property
    def experiment_path(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"

    @property
    def results_uri(self) -> str:
        return f"{self.experiment_path}/results"


def trial_dirname(trial) -> str:
    """Short trial directory names (Tune's default embeds the whole config)."""
    return f"trial_{trial.trial_id}"


def param_space(plan: SweepPlan, opts: SweepOptions) -> dict[str, Any]:
    from ray import tune

    space = {
        **plan.common,
        trainable.SWEEP: plan.sweep,
        trainable.CHECKPOINT_EVERY: opts.checkpoint_every,
        trainable.SELECTED_ON: plan.selected_on,
    }
    if plan.search:
        for key in METHOD_PARAMS:  # suggested by Optuna instead
            space.pop(key, None)
    else:
        space[trainable.CELL] = tune.grid_search(plan.cells)
    return space


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


def make_scheduler(plan: SweepPlan, opts: SweepOptions):
    """Grouped level-aware ASHA (scheduler.py), or None."""
    if opts.scheduler == "none":
        return None
    from ts3ray.tune.scheduler import ComparableGroup, GroupedLevelASHA

    check_scheduler_options(plan, opts)
    group = ComparableGroup(searched=plan.searched, run_values=trainable.run_values)
    return GroupedLevelASHA(objective_metric(plan), group, trainable.total_levels,
                            grace_period=opts.grace_period,
                            reduction_factor=opts.reduction_factor)


def _progress_callback(total: int):
    from ray import tune

    class TrialProgress(tune.Callback):
        """One line per finished trial: its values, final accuracy and where it stopped."""

        finished = 0

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._line(trials, trial, "done")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._line(trials, trial, "FAILED")

        def _line(self, trials, trial, verdict):
            self.finished += 1
            last = trial.last_result or {}
            values = trainable.run_values(trial.config)
            keys = ("dataset", "method", "variant", *METHOD_PARAMS, "prune_fraction", "seed")
            shown = " ".join(f"{k}={_short(values[k])}" for k in keys)
            accuracies = " ".join(f"{name}={100 * last[column]:.2f}%"
                                  for name, column in SELECTION_COLUMNS.items()
                                  if last.get(column) == last.get(column) and column in last)
            epoch = f"epoch {last.get('global_epoch', 0)}/{last.get('total_epochs', '?')}"
            print(f"[{self.finished}/{total}] {verdict} {trial.trial_id} {shown} "
                  f"{accuracies or 'no result'} at {epoch}", file=sys.stderr, flush=True)

    return TrialProgress()


def _short(value):
    return f"{value:.3g}" if isinstance(value, float) else value


def make_trainable(opts: SweepOptions):
    """The trainable with its resources and the results location. The location is a
    parameter, not part of the trial config, so a sweep moved to new storage and resumed
    writes its rows where it now lives (restore re-supplies the parameters)."""
    from ray import tune

    with_results = tune.with_parameters(trainable.lottery_trainable, results_uri=opts.results_uri)
    return tune.with_resources(with_results, opts.resources.as_tune())


def make_tuner(plan: SweepPlan, opts: SweepOptions):
    from ray import tune

    trainable_fn = make_trainable(opts)
    searcher = None
    num_samples = 1
    if plan.search:
        searcher = make_searcher(plan.common, objective_metric(plan), sampler=opts.sampler,
                                 seed=opts.seed, storage=opts.optuna_storage,
                                 study_name=opts.name)
        num_samples = opts.num_samples
    run_config = tune.RunConfig(
        name=opts.name,
        storage_path=opts.storage,
        failure_config=tune.FailureConfig(max_failures=opts.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=[_progress_callback(num_samples * max(1, plan.num_trials))],
        verbose=opts.verbose,
    )
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
    return tune.Tuner(trainable_fn, param_space=param_space(plan, opts),
                      tune_config=tune_config, run_config=run_config)


def restore_tuner(plan: SweepPlan, opts: SweepOptions):
    from ray import tune

    return tune.Tuner.restore(opts.experiment_path, trainable=make_trainable(opts),
                              resume_unfinished=True, resume_errored=True)


def check_experiment(opts: SweepOptions) -> None:
    """--resume needs an experiment to restore; a fresh sweep must not overwrite one."""
    from ray import tune

    exists = tune.Tuner.can_restore(opts.experiment_path)
    if opts.resume and not exists:
        raise UserError(f"--resume: {opts.experiment_path} holds no sweep to resume; "
                        "check --storage and --name")
    if not opts.resume and exists:
        raise UserError(f"--name {opts.name}: {opts.experiment_path} already holds a sweep; "
                        "pass --resume to finish it or choose another --name")


@dataclass
class SweepOutcome:
    trials: int
    completed: int
    stopped_early: int
    errors: list[str]


def record_stops(result_grid, results_uri: str) -> SweepOutcome:
    """Mark each trial's files: stopped early (at its last epoch) or run to its budget."""
    completed = stopped = 0
    errors = []
    for result in result_grid:
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id")
        if result.error is not None:
            errors.append(f"{trial_id or result.path}: {str(result.error).splitlines()[0]}")
            if trial_id is not None:  # its rows end early: never count it as full budget
                results.mark_stopped(results_uri, trial_id, True, int(metrics["global_epoch"]))
            continue
        if trial_id is None:
            continue
        last, budget = int(metrics["global_epoch"]), int(metrics["total_epochs"])
        early = last < budget
        results.mark_stopped(results_uri, trial_id, early, last)
        stopped += early
        completed += not early
    return SweepOutcome(len(result_grid), completed, stopped, errors)


def run_plan(plan: SweepPlan, opts: SweepOptions) -> SweepOutcome:
    """Fit (or restore and finish) the sweep, then record early stops in the results."""
    check_experiment(opts)
    tuner = restore_tuner(plan, opts) if opts.resume else make_tuner(plan, opts)
    grid = tuner.fit()
    return record_stops(grid, opts.results_uri)
