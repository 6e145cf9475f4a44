"""`--tracker tensorboard|mlflow|wandb`: a sweep's trials in the tracker its user already has,
through Ray Tune's own logger callbacks (TBXLoggerCallback, MLflowLoggerCallback,
WandbLoggerCallback).

With a tracker, every trial reports every epoch (not only at level ends) the metrics below,
with the epoch as the step (`timesteps_total`), and each trial is logged with its *resolved*
run configuration (what `RunValues` makes of its grid cell or Optuna suggestion: every
config key, E2 as epochs), not Tune's trial config (a cell index). Trials are grouped per
sweep: TensorBoard files in each trial's folder under the sweep folder, one MLflow experiment
and one W&B group named after the sweep (W&B project `ts3ray`).

mlflow and wandb are optional extras (`pip install 'ts3ray[mlflow]'`, `'ts3ray[wandb]'`);
tensorboardX comes with Ray Tune. A tracker that is not installed is refused, one line,
before Ray starts.
"""
from __future__ import annotations

import importlib.util
import math
from typing import Any

from ts3ray.errors import UserError

TRACKERS = {"tensorboard": "tensorboardX", "mlflow": "mlflow", "wandb": "wandb"}  # -> module
PROJECT = "ts3ray"

# what a tracked trial reports per epoch (columns of the epochs table, short names)
EPOCH_METRICS = {"level": "round", "epoch": "epoch", "global_epoch": "global_epoch",
                 "test_acc": "acc_sparse", "val_acc": "val_acc_sparse", "test_acc_dense": "acc_dense",
                 "clean_val_acc": "clean_val_acc_sparse", "label_precision": "label_precision",
                 "sparsity": "sparsity", "lr": "lr"}


def check_tracker(name: str | None) -> None:
    if name is None:
        return
    if name not in TRACKERS:
        raise UserError(f"--tracker={name!r} is not allowed: one of {', '.join(TRACKERS)}")
    if importlib.util.find_spec(TRACKERS[name]) is None:
        extra = "" if name == "tensorboard" else f" (pip install 'ts3ray[{name}]')"
        raise UserError(f"--tracker {name} needs the {TRACKERS[name]} package, which is not "
                        f"installed here{extra}")


def epoch_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """The per-epoch metrics of a tracked trial (NaN ones left out: no such data)."""
    out: dict[str, Any] = {"timesteps_total": record["global_epoch"], "stage": record["stage"]}
    for name, column in EPOCH_METRICS.items():
        value = record.get(column)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            out[name] = value
    return out


def _resolved(base):
    """A logger callback class that logs each trial with its resolved configuration."""

    class Resolved(base):
        def __init__(self, run_values, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.run_values = run_values

        def log_trial_start(self, trial):
            saved = trial.config  # the callbacks read trial.config: show the resolved one
            trial.config = self.run_values(saved)
            try:
                super().log_trial_start(trial)
            finally:
                trial.config = saved

        def _try_log_hparams(self, trial, result):  # TensorBoard's HPARAMS tab
            saved = trial.evaluated_params
            trial.evaluated_params = self.run_values(trial.config)
            try:
                super()._try_log_hparams(trial, result)
            finally:
                trial.evaluated_params = saved

    Resolved.__name__ = f"Resolved{base.__name__}"
    return Resolved


def tracker_callbacks(name: str | None, run_values, sweep_name: str) -> list:
    """Ray Tune logger callbacks for `name` (none for None)."""
    if name is None:
        return []
    check_tracker(name)
    if name == "tensorboard":
        from ray.tune.logger import TBXLoggerCallback

        return [_resolved(TBXLoggerCallback)(run_values)]
    if name == "mlflow":
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        return [_resolved(MLflowLoggerCallback)(run_values, experiment_name=sweep_name)]
    from ray.air.integrations.wandb import WandbLoggerCallback

    return [_resolved(WandbLoggerCallback)(run_values, project=PROJECT, group=sweep_name)]
