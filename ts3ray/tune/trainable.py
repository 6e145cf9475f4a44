"""The Ray Tune function trainable: one lottery run per trial.

The trial's config holds the `RunConfig` fields as top-level keys (so Tune's `config/<name>`
columns and Optuna see them), optionally a `cell` dict of per-trial values (grid sweeps),
and sweep keys starting with `_`. The dataset is loaded on the worker from `data_root`
(an absolute path set by the driver), never shipped in a closure.

After every epoch the trial reports a few numbers to Tune: the selection signals (validation
accuracies, and test accuracy for progress lines only), the epoch counters and
`levels_done`, the number of completed IMP levels, which is the scheduler's time axis
(scheduler.py). Every row of the run lives in the Parquet files (results.py), not in Tune.

At the end of every IMP level and every `_checkpoint_every` epochs the trial rewrites its
Parquet files and then reports a checkpoint of the full run state, from which a retried or
resumed trial continues; so the files hold what the checkpoint holds. ASHA can only stop a
trial at a level end (its rungs are levels), right after such a write.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ts3ray.config import FIELD_NAMES, SELECTION_COLUMNS, make_config
from ts3ray.tune import results
from ts3ray.tune.search import LEVEL_END, LEVELS_DONE, TOTAL_LEVELS

STATE_FILE = "state.pt"
CELL = "cell"
SWEEP = "_sweep"
CHECKPOINT_EVERY = "_checkpoint_every"
SELECTED_ON = "_selected_on"  # the sweep's selection signal (val, clean_val, test) or None
CRASH_AT_EPOCH = "_crash_at_epoch"  # tests only: kill the worker once at this epoch


def run_values(trial_config: dict[str, Any]) -> dict[str, Any]:
    """The RunConfig fields of a trial: top-level fields, then the grid cell's values."""
    merged = {**trial_config, **trial_config.get(CELL, {})}
    return {k: v for k, v in merged.items() if k in FIELD_NAMES}


def total_levels(trial_config: dict[str, Any]) -> int:
    """IMP levels of a trial (R + 1): the scheduler's max_t."""
    return int(run_values(trial_config)["rounds"]) + 1


def tune_metrics(record: dict[str, Any], run, attempt: int) -> dict[str, Any]:
    """What Tune sees of an epoch: the selection signals, the counters, the attempt."""
    signals = {column: record[column] for column in SELECTION_COLUMNS.values()}
    return {
        **signals,
        LEVELS_DONE: run.level,  # completed IMP levels: the scheduler's time axis
        TOTAL_LEVELS: run.config.rounds + 1,
        LEVEL_END: record["epoch"] == run.config.epochs,
        "global_epoch": record["global_epoch"],
        "total_epochs": run.total_epochs,
        "attempt": attempt,
    }


def sweep_value(trial_config: dict[str, Any], key: str, default=None):
    return trial_config.get(CELL, {}).get(key, trial_config.get(key, default))


def trial_cpus(trial_config: dict[str, Any]) -> int:
    """Whole CPUs Ray gave this trial (at least 1): torch's thread count."""
    from ray import tune

    try:
        cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    except Exception:  # outside a Tune session (direct calls in tests)
        cpus = 1
    return max(1, int(cpus))


def assigned_device(requested: str) -> str:
    """The GPU Ray assigned (it sets CUDA_VISIBLE_DEVICES), else the CPU."""
    import ray

    if requested != "auto":
        return requested
    return "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"


def report(metrics: dict[str, Any], run, with_checkpoint: bool) -> None:
    """`tune.report`, with a checkpoint of the full run state (state.pt) when asked."""
    from ray import tune

    if not with_checkpoint:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix="ts3ray-ckpt-") as directory:
        torch.save(run.state_dict(), Path(directory) / STATE_FILE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def load_checkpoint(run, checkpoint) -> None:
    with checkpoint.as_directory() as directory:
        state = torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)
    run.load_state_dict(state)


def crash_once(trial_config: dict[str, Any], results_uri: str, trial_id: str,
               global_epoch: int) -> None:
    """Tests: end the worker process abruptly the first time `global_epoch` is reached
    (a marker under the local results directory remembers that it happened)."""
    if sweep_value(trial_config, CRASH_AT_EPOCH) != global_epoch:
        return
    marker = Path(results_uri) / "_crashed" / f"{trial_id}-{global_epoch}"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("crashed once\n")
        os._exit(1)


def lottery_trainable(trial_config: dict[str, Any], results_uri: str) -> None:
    """Run (or continue) one lottery run, reporting every epoch to Tune; its Parquet rows go
    to `results_uri` (given through tune.with_parameters, see runner.make_trainable)."""
    import ray
    from ray import tune

    from ts3ray.run import LotteryRun

    started_at = time.time()
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # no line per checkpoint
    torch.set_num_threads(trial_cpus(trial_config))
    values = run_values(trial_config)
    values["device"] = assigned_device(str(values.get("device", "auto")))
    config = make_config(values)
    run = LotteryRun(config)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        load_checkpoint(run, checkpoint)

    trial_id = tune.get_context().get_trial_id()
    info = results.TrialInfo(
        sweep=trial_config[SWEEP],
        trial_id=trial_id,
        attempt=results.next_attempt(results_uri, trial_id),
        node=ray.get_runtime_context().get_node_id(),
        resumed_from=run.global_epoch,
        started_at=started_at,
        selected_on=trial_config.get(SELECTED_ON),
    )
    every = int(trial_config.get(CHECKPOINT_EVERY, 1))
    if run.done:  # restored from its final checkpoint (driver died before recording it)
        results.write_trial(results_uri, info, run)
        report(tune_metrics(run.epoch_rows[-1], run, info.attempt), run, with_checkpoint=True)
        return
    for record in run.epochs():
        crash_once(trial_config, results_uri, trial_id, record["global_epoch"])
        due = record["epoch"] == run.config.epochs or run.global_epoch % every == 0
        if due:  # a level end (where ASHA may stop the trial) or a checkpoint epoch
            results.write_trial(results_uri, info, run)
        report(tune_metrics(record, run, info.attempt), run, with_checkpoint=due)
