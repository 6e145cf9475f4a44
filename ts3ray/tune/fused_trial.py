"""One Tune trial that trains a fused array of lottery runs (`--fuse K`, fusing.py).

The same life as trainable.lottery_trainable, for K members at once: rows of every member
are appended at each level end and before each checkpoint (one TrialWriter per member,
trial id `<tune trial id>-m<k>`), a checkpoint holds every member's state (FusedArray
.state_dict, each an unfused LotteryRun checkpoint), and Tune sees the array's first
member's progress with the best member's objective (nothing chooses on it: --fuse is
refused with ASHA and Optuna).
"""
from __future__ import annotations

import math
import time
from typing import Any

import torch

from ts3ray.config import make_config
from ts3ray.tune import results
from ts3ray.tune.fusing import member_trial_id
from ts3ray.tune.trainable import (HEARTBEAT_S, PROGRESS, CheckpointClock, SweepSettings,
                                   assigned_device, crash_once, gpu_hygiene, load_checkpoint,
                                   report, tune_metrics)


def lead_record(records: list[dict[str, Any]], objective: str | None) -> dict[str, Any]:
    """The member record Tune is shown: the best objective (NaN last), else member 0's."""
    if objective is None:
        return records[0]
    score = lambda r: -math.inf if math.isnan(r[objective]) else r[objective]
    return max(records, key=score)


def fused_trainable(trial_config: dict[str, Any], settings: SweepSettings,
                    members: list[dict[str, Any]], started_at: float) -> None:
    import ray
    from ray import tune

    from ts3ray import provenance, storage
    from ts3ray.fused import FusedArray
    from ts3ray.ticket_store import TicketStore

    device = assigned_device(str(members[0].get("device", "auto")))
    gpu_hygiene(device, settings)
    array = FusedArray([make_config({**v, "device": device}, given=()) for v in members])
    checkpoint = tune.get_checkpoint()
    previous_attempt = load_checkpoint(array, checkpoint) if checkpoint is not None else 0
    trial_id = tune.get_context().get_trial_id()
    prov = provenance.collect(str(array.device), argv=list(settings.argv) or None,
                              started_at=started_at)
    node = ray.get_runtime_context().get_node_id()
    writers = []
    for k, member in enumerate(array.members):
        own_id = member_trial_id(trial_id, k)
        member.tickets = TicketStore(storage.join(settings.results_uri, "tickets"), own_id,
                                     provenance=prov)
        info = results.TrialInfo(
            sweep=settings.sweep, trial_id=own_id, attempt=previous_attempt + 1, node=node,
            resumed_from=member.global_epoch, started_at=started_at,
            selected_on=settings.selected_on, provenance=prov, sweep_id=settings.sweep_id)
        writers.append(results.TrialWriter(settings.results_uri, info, member))
    attempt, lead = previous_attempt + 1, array.members[0]

    def metrics_of(records: list[dict[str, Any]]) -> dict[str, Any]:
        shown = tune_metrics(lead_record(records, settings.objective), lead, attempt,
                             settings.objective)
        shown[PROGRESS] += f" (array of {array.size})"
        return shown

    try:
        if array.done:  # restored from its final checkpoint: every row is already written
            report(metrics_of([m.epoch_rows[-1] for m in array.members]), array, attempt,
                   with_checkpoint=False)
            return
        clock, last_report = CheckpointClock(settings), time.monotonic()
        cell = settings.run_values.cell(trial_config)
        for records in array.epochs():
            crash_once(cell, settings.results_uri, trial_id, records[0]["global_epoch"])
            level_end = records[0]["epoch"] == lead.config.epochs
            due = clock.due(lead, records[0])
            if due or level_end:
                for writer, member in zip(writers, array.members):
                    writer.flush(member)
            if due or level_end or time.monotonic() - last_report >= HEARTBEAT_S:
                report(metrics_of(records), array, attempt, with_checkpoint=due)
                last_report = time.monotonic()
    finally:
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
