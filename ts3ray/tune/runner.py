"""Build, run and resume the Tuner of a sweep plan; record ASHA's early stops afterwards.

Layout under `<storage>/<name>/`: Tune's experiment state and trial directories, and
`results/epochs/<trial_id>.parquet`, `results/levels/<trial_id>.parquet` (results.py).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from ts3ray.errors import UserError
from ts3ray.tune import results, trainable
from ts3ray.tune.plans import SweepPlan
from ts3ray.tune.resources import TrialResources
from ts3ray.tune.search import METRIC, MODE, make_searcher


@dataclass(frozen=True)
class SweepOptions:
    """How to run a plan (everything but what the trials compute)."""

    name: str
    storage: str  # absolute local path or URI
    resources: TrialResources = TrialResources()
    scheduler: str = "none"
    grace_period: int = 10
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
        trainable.WRITE_EVERY_EPOCH: opts.scheduler != "none",
    }
    if plan.search:
        for key in ("lam", "tau", "gamma", "e1", "e2"):  # suggested by Optuna instead
            space.pop(key, None)
    else:
        space[trainable.CELL] = tune.grid_search(plan.cells)
    return space


def total_epochs(plan: SweepPlan) -> int:
    """The longest trial's epoch count over all IMP levels (ASHA's max_t)."""
    configs = [{**plan.common, **cell} for cell in plan.cells] or [plan.common]
    return max((int(c["rounds"]) + 1) * int(c["epochs"]) for c in configs)


def make_scheduler(plan: SweepPlan, opts: SweepOptions):
    from ray.tune.schedulers import ASHAScheduler

    if opts.scheduler == "none":
        return None
    if opts.scheduler != "asha":
        raise UserError(f"--scheduler={opts.scheduler!r} is not allowed: none | asha")
    max_t = total_epochs(plan)
    if not 1 <= opts.grace_period <= max_t:
        raise UserError(f"--grace-period={opts.grace_period} is not allowed: "
                        f"1..{max_t} (epochs over all levels)")
    if opts.reduction_factor <= 1:
        raise UserError(f"--reduction-factor={opts.reduction_factor:g} is not allowed: > 1")
    return ASHAScheduler(time_attr="global_epoch", max_t=max_t, grace_period=opts.grace_period,
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
            shown = " ".join(f"{k}={values[k]}" for k in ("dataset", "variant", "lam", "tau",
                                                           "gamma", "e1", "e2",
                                                           "prune_fraction", "seed"))
            acc = last.get("acc_sparse")
            acc_text = f"acc_sparse={100 * acc:.2f}%" if acc is not None else "no result"
            epoch = f"epoch {last.get('global_epoch', 0)}/{last.get('total_epochs', '?')}"
            print(f"[{self.finished}/{total}] {verdict} {trial.trial_id} {shown} "
                  f"{acc_text} at {epoch}", file=sys.stderr, flush=True)

    return TrialProgress()


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
        searcher = make_searcher(plan.common, sampler=opts.sampler, seed=opts.seed,
                                 storage=opts.optuna_storage, study_name=opts.name)
        num_samples = opts.num_samples
    run_config = tune.RunConfig(
        name=opts.name,
        storage_path=opts.storage,
        failure_config=tune.FailureConfig(max_failures=opts.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=[_progress_callback(num_samples * max(1, plan.num_trials))],
        verbose=opts.verbose,
    )
    tune_config = tune.TuneConfig(
        metric=METRIC,
        mode=MODE,
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
