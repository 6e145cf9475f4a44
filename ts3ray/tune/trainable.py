"""The Ray Tune function trainable: one lottery run per trial, lean on Tune's side.

What a trial's *config* holds is only what differs between trials: the index of its grid
cell in the plan (`cell`: a few bytes in Tune's experiment state, written three times per
trial and once more in its tag, whatever the cell holds) or Optuna's suggestions. The values
every trial shares, the cells and the sweep's settings reach the trainable once through
`tune.with_parameters` (`SweepSettings`), not 10,000 copies in the experiment state. The
dataset is loaded on the worker from `data_root` (an absolute path or URI set by the driver),
never shipped in a closure.

What Tune *sees* is what its scheduler and searcher use: `levels_done` (completed IMP levels,
ASHA's time axis), `level_end`, the sweep's objective column where it has one, and one
`progress` string for the sweep's status lines. Every row of the run lives in the Parquet
files (results.py). A trial reports at every level end, at every checkpoint, and otherwise at
most every `HEARTBEAT_S` seconds.

Rows are appended (results.TrialWriter) at every level end and before every checkpoint, so
the files hold at least what a checkpoint holds; ASHA can only stop a trial at a level end,
right after such a write. Checkpoints (the full run state) are taken at a level end when at
least `MIN_CHECKPOINT_GAP_S` passed since the previous one, every `checkpoint_every` epochs if
set, and whenever `checkpoint_minutes` passed; never at a trial's last epoch (nothing is left
to resume). So a trial checkpoints at most about once a minute on its own, and with Tune
keeping two checkpoints per trial it never checkpoints twice between two experiment-state
snapshots (taken every 10 s or more often): Tune has no reason to force a blocking sync.
"""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ts3ray.config import FIELD_NAMES, SELECTION_COLUMNS, make_config
from ts3ray.tune import results
from ts3ray.tune.search import LEVEL_END, LEVELS_DONE

STATE_FILE = "state.pt"
ATTEMPT_FILE = "attempt.json"
CELL = "cell"
ARRAY = "array"  # --fuse: the index of the trial's fused array (fusing.py), not a cell
CRASH_AT_EPOCH = "_crash_at_epoch"  # tests only: kill the worker once at this epoch
PROGRESS = "progress"
HEARTBEAT_S = 30.0
MIN_CHECKPOINT_GAP_S = 60.0


@dataclass(frozen=True)
class SweepSettings:
    """What every trial of a sweep shares (given once through tune.with_parameters)."""

    sweep: str
    common: dict[str, Any]  # RunConfig values shared by all trials
    results_uri: str
    checkpoint_every: int | None = None  # epochs; None: level ends and the timer only
    checkpoint_minutes: float = 10.0
    selected_on: str | None = None  # val | clean_val | test, or None: the sweep chooses nothing
    gpu_memory_fraction: float | None = None  # torch's per-process cap on a shared GPU
    cells: tuple[dict[str, Any], ...] = ()  # the grid's cells; trial configs hold an index
    argv: tuple[str, ...] = ()  # the driver's command line (provenance)
    tracked: bool = False  # --tracker: report every epoch's metrics (trackers.py)
    sweep_id: str | None = None  # tags every result file (results/sweep_files.py)
    arrays: tuple[tuple[int, ...], ...] = ()  # --fuse: cell indices per trial (fusing.py)
    halving: Any = None  # --fuse with ASHA: fusing.Halving, each array stops its own members

    @property
    def run_values(self) -> "RunValues":
        return RunValues(self.common, self.cells, self.arrays)

    @property
    def objective(self) -> str | None:
        return SELECTION_COLUMNS[self.selected_on] if self.selected_on else None


def run_fields(merged: dict[str, Any]) -> dict[str, Any]:
    """The RunConfig keys of merged trial values (not Tune's cell index or array index)."""
    return {k: v for k, v in merged.items() if k in FIELD_NAMES}


@dataclass(frozen=True)
class RunValues:
    """The RunConfig values of a trial: the shared ones, then its cell or suggestions
    (picklable: the driver's scheduler and callbacks keep one)."""

    common: dict[str, Any]
    cells: tuple[dict[str, Any], ...] = ()
    arrays: tuple[tuple[int, ...], ...] = ()  # --fuse: a trial's cells (fusing.py)

    def cell(self, trial_config: dict[str, Any]) -> dict[str, Any]:
        """The trial's grid cell: Tune's config holds its index (an experiment started
        before cells were indexed holds the cell itself; both resume). A fused trial's
        first member stands for it (labels, levels, resources)."""
        if ARRAY in trial_config:
            return self.cells[self.arrays[trial_config[ARRAY]][0]]
        cell = trial_config.get(CELL, {})
        return self.cells[cell] if isinstance(cell, int) else cell

    def fused(self, trial_config: dict[str, Any]) -> bool:
        """Whether the trial trains a fused array of two or more runs."""
        return ARRAY in trial_config and len(self.arrays[trial_config[ARRAY]]) > 1

    def members(self, trial_config: dict[str, Any]) -> list[dict[str, Any]]:
        """The RunConfig values of each lottery run the trial trains (one unless fused)."""
        if ARRAY not in trial_config:
            return [self(trial_config)]
        return [run_fields({**self.common, **self.cells[i]})
                for i in self.arrays[trial_config[ARRAY]]]


    def __call__(self, trial_config: dict[str, Any]) -> dict[str, Any]:
        return run_fields({**self.common, **trial_config, **self.cell(trial_config)})


@dataclass(frozen=True)
class TotalLevels:
    """IMP levels (R + 1) of a trial: the scheduler's max_t."""

    run_values: RunValues

    def __call__(self, trial_config: dict[str, Any]) -> int:
        return int(self.run_values(trial_config)["rounds"]) + 1


def progress_text(record: dict[str, Any], run, attempt: int) -> str:
    """`epoch 12/40 val=55.10% test=88.33% attempt 1`: for status lines, not for choices."""
    shown = " ".join(f"{name}={100 * record[column]:.2f}%"
                     for name, column in SELECTION_COLUMNS.items()
                     if not math.isnan(record[column]))
    return f"epoch {record['global_epoch']}/{run.total_epochs} {shown} attempt {attempt}"


def tune_metrics(record: dict[str, Any], run, attempt: int, objective: str | None,
                 tracked: bool = False) -> dict[str, Any]:
    """What Tune sees of a report (module docstring); with a tracker, the epoch's metrics
    (trackers.py); at a level end, what Optuna keeps as user_attrs (search.py)."""
    from ts3ray.tune.trackers import epoch_metrics

    level_end = record["epoch"] == run.config.epochs
    metrics = {
        LEVELS_DONE: run.level,  # completed IMP levels: the scheduler's time axis
        LEVEL_END: level_end,
        PROGRESS: progress_text(record, run, attempt),
        **(epoch_metrics(record) if tracked else {}),
    }
    if level_end:  # the finished level and the resolved schedule (Optuna's user_attrs; the
        # level's test accuracy reaches them from the trial's Parquet rows, not through Tune)
        metrics.update(level=record["round"], e1=run.config.e1, e2=run.config.e2)
    if objective is not None:
        metrics[objective] = record[objective]
    return metrics


def trial_cpus() -> int:
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


def report(metrics: dict[str, Any], run, attempt: int, with_checkpoint: bool) -> None:
    """`tune.report`, with a checkpoint of the full run state (state.pt) when asked."""
    from ray import tune

    if not with_checkpoint:
        tune.report(metrics)
        return
    from ts3ray.torch_files import save

    with tempfile.TemporaryDirectory(prefix="ts3ray-ckpt-") as directory:
        with open(Path(directory) / STATE_FILE, "wb") as stream:
            save(run.state_dict(), stream, str(Path(directory) / STATE_FILE))
        (Path(directory) / ATTEMPT_FILE).write_text(json.dumps({"attempt": attempt}))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def read_checkpoint(checkpoint) -> tuple[dict[str, Any], int]:
    """The run state a trial checkpointed and the attempt that wrote it."""
    with checkpoint.as_directory() as directory:
        state = torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)
        attempt_file = Path(directory) / ATTEMPT_FILE
        attempt = json.loads(attempt_file.read_text())["attempt"] if attempt_file.exists() else 0
    return state, int(attempt)


def load_checkpoint(run, checkpoint) -> int:
    """Restore `run`; returns the attempt that wrote the checkpoint."""
    state, attempt = read_checkpoint(checkpoint)
    run.load_state_dict(state)
    return attempt


def crash_once(cell: dict[str, Any], results_uri: str, trial_id: str,
               global_epoch: int) -> None:
    """Tests: end the worker process abruptly the first time `global_epoch` is reached (the
    cell's value: an epoch or a list of epochs; a marker under the local results directory
    remembers that it happened)."""
    planned = cell.get(CRASH_AT_EPOCH)
    if global_epoch not in (planned if isinstance(planned, list) else [planned]):
        return
    marker = Path(results_uri) / "_crashed" / f"{trial_id}-{global_epoch}"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("crashed once\n")
        os._exit(1)


class CheckpointClock:
    """When to checkpoint (module docstring): level ends a minute apart, every K epochs (if
    set), on a timer; never after the last epoch."""

    def __init__(self, settings: SweepSettings):
        self.every, self.seconds = settings.checkpoint_every, 60.0 * settings.checkpoint_minutes
        self.last = time.monotonic()

    def due(self, run, record: dict[str, Any]) -> bool:
        if run.done:
            return False
        waited = time.monotonic() - self.last
        level_end = record["epoch"] == run.config.epochs and waited >= MIN_CHECKPOINT_GAP_S
        every = self.every is not None and run.global_epoch % self.every == 0
        if level_end or every or waited >= self.seconds:
            self.last = time.monotonic()
            return True
        return False


def gpu_hygiene(device: str, settings: SweepSettings) -> None:
    """A trial sharing a GPU keeps to its share of the memory when asked."""
    if device.startswith("cuda") and settings.gpu_memory_fraction:
        torch.cuda.set_per_process_memory_fraction(settings.gpu_memory_fraction)


def lottery_trainable(trial_config: dict[str, Any], settings: SweepSettings) -> None:
    """Run (or continue) one lottery run; its rows go to `settings.results_uri`."""
    import ray
    from ray import tune

    from ts3ray.run import LotteryRun
    from ts3ray.tune.worker_exit import install_quiet_sigterm_exit

    started_at = time.time()
    install_quiet_sigterm_exit()  # no "Exception ignored ... SystemExit" when Ray ends the actor
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # no line per checkpoint
    torch.set_num_threads(trial_cpus())
    run_values = settings.run_values
    members = run_values.members(trial_config)
    if len(members) > 1:  # --fuse: one fused array of lottery runs (fused_trial.py)
        from ts3ray.tune.fused_trial import fused_trainable

        return fused_trainable(trial_config, settings, members, started_at)
    values = run_values(trial_config)
    values["device"] = assigned_device(str(values.get("device", "auto")))
    gpu_hygiene(values["device"], settings)
    run = LotteryRun(make_config(values, given=()))  # the driver refused what the user gave
    checkpoint = tune.get_checkpoint()
    previous_attempt = load_checkpoint(run, checkpoint) if checkpoint is not None else 0
    trial_id = tune.get_context().get_trial_id()
    from ts3ray import provenance, storage
    from ts3ray.ticket_store import TicketStore

    prov = provenance.collect(str(run.device), argv=list(settings.argv) or None,
                              started_at=started_at)
    run.tickets = TicketStore(storage.join(settings.results_uri, "tickets"), trial_id,
                              provenance=prov)
    info = results.TrialInfo(
        sweep=settings.sweep, trial_id=trial_id, attempt=previous_attempt + 1,
        node=ray.get_runtime_context().get_node_id(), resumed_from=run.global_epoch,
        started_at=started_at, selected_on=settings.selected_on, provenance=prov,
        sweep_id=settings.sweep_id)
    writer = results.TrialWriter(settings.results_uri, info, run)
    try:
        if run.done:  # restored from its final checkpoint: every row is already written
            metrics = tune_metrics(run.epoch_rows[-1], run, info.attempt, settings.objective,
                                   settings.tracked)
            report(metrics, run, info.attempt, with_checkpoint=False)
            return
        clock, last_report = CheckpointClock(settings), time.monotonic()
        for record in run.epochs():
            crash_once(run_values.cell(trial_config), settings.results_uri, trial_id,
                       record["global_epoch"])
            level_end = record["epoch"] == run.config.epochs
            due = clock.due(run, record)
            if due or level_end:
                writer.flush(run)
            if (due or level_end or settings.tracked
                    or time.monotonic() - last_report >= HEARTBEAT_S):
                metrics = tune_metrics(record, run, info.attempt, settings.objective,
                                       settings.tracked)
                report(metrics, run, info.attempt, with_checkpoint=due)
                last_report = time.monotonic()
    finally:
        if values["device"].startswith("cuda"):
            torch.cuda.empty_cache()  # reused actors start the next trial with a clean cache
