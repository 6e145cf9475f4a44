"""One Tune trial that trains a fused array of lottery runs (`--fuse K`, fusing.py).

The same life as trainable.lottery_trainable, for K members at once: rows of every member
are appended at each level end and before each checkpoint (one TrialWriter per member,
trial id `<tune trial id>-m<k>`, k its place in the array as planned), a checkpoint holds
every member's state (FusedArray.state_dict, each an unfused LotteryRun checkpoint) and
which members still train, and Tune sees the first member's progress with the best
member's objective. With `--scheduler asha` the array halves itself at ASHA's rungs
(fusing.Halving): the stopped members' rows end at that level end, as an ASHA stop's do,
and the array shrinks to the survivors.
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
                                   assigned_device, crash_once, gpu_hygiene, read_checkpoint,
                                   report, tune_metrics)


def lead_record(records: list[dict[str, Any]], objective: str | None) -> dict[str, Any]:
    """The member record Tune is shown: the best objective (NaN last), else member 0's."""
    if objective is None:
        return records[0]
    score = lambda r: -math.inf if math.isnan(r[objective]) else r[objective]
    return max(records, key=score)


class ArrayTrial:
    """The array, the planned places of its members that still train, their writers."""

    def __init__(self, configs, kept: list[int], settings: SweepSettings, info, prov):
        from ts3ray import storage
        from ts3ray.fused import FusedArray
        from ts3ray.ticket_store import TicketStore

        self.kept, self.settings, self.info, self.prov = kept, settings, info, prov
        self.array = FusedArray([configs[k] for k in kept])
        self.configs = configs
        self.tickets = lambda own_id: TicketStore(
            storage.join(settings.results_uri, "tickets"), own_id, provenance=prov)
        self.writers: list[results.TrialWriter] = []
        self.resumed_from: dict[int, int] = {}  # planned place -> the epoch this attempt began at

    def open_writers(self) -> None:
        """One writer per member, counting the rows a restored member already wrote; a
        member's `resumed_from` is where this attempt took it up (its checkpoint's epoch, 0
        when fresh), also in the writers a halving reopens."""
        import dataclasses

        self.writers = []
        for k, member in zip(self.kept, self.array.members):
            own_id = member_trial_id(self.info.trial_id, k)
            member.tickets = self.tickets(own_id)
            info = dataclasses.replace(self.info, trial_id=own_id, resumed_from=
                                       self.resumed_from.setdefault(k, member.global_epoch))
            self.writers.append(results.TrialWriter(self.settings.results_uri, info, member))

    def flush(self) -> None:
        for writer, member in zip(self.writers, self.array.members):
            writer.flush(member)

    def state_dict(self) -> dict[str, Any]:
        return {**self.array.state_dict(), "kept": list(self.kept)}

    def halve(self, survivors: list[int]) -> None:
        """Keep the members at `survivors` (positions in the current array)."""
        self.array = self.array.subset(survivors)
        self.kept = [self.kept[i] for i in survivors]
        self.open_writers()


def fused_trainable(trial_config: dict[str, Any], settings: SweepSettings,
                    members: list[dict[str, Any]], started_at: float) -> None:
    import ray
    from ray import tune

    from ts3ray import provenance

    device = assigned_device(str(members[0].get("device", "auto")))
    gpu_hygiene(device, settings)
    configs = [make_config({**v, "device": device}, given=()) for v in members]
    checkpoint = tune.get_checkpoint()
    state, previous_attempt = read_checkpoint(checkpoint) if checkpoint else (None, 0)
    kept = list(state.get("kept", range(len(configs)))) if state else list(range(len(configs)))
    prov = provenance.collect(device, argv=list(settings.argv) or None, started_at=started_at)
    attempt = previous_attempt + 1
    info = results.TrialInfo(
        sweep=settings.sweep, trial_id=tune.get_context().get_trial_id(), attempt=attempt,
        node=ray.get_runtime_context().get_node_id(), resumed_from=0, started_at=started_at,
        selected_on=settings.selected_on, provenance=prov, sweep_id=settings.sweep_id)
    trial = ArrayTrial(configs, kept, settings, info, prov)
    if state is not None:
        trial.array.load_state_dict(state)
    trial.open_writers()
    halving = settings.halving
    rungs = halving.rungs(configs[0].rounds + 1) if halving else []

    def metrics_of(records: list[dict[str, Any]]) -> dict[str, Any]:
        lead = trial.array.members[0]
        shown = tune_metrics(lead_record(records, settings.objective), lead, attempt,
                             settings.objective)
        shown[PROGRESS] += f" (array of {trial.array.size}/{len(configs)})"
        return shown

    try:
        if trial.array.done:  # restored from its final checkpoint: every row is written
            report(metrics_of([m.epoch_rows[-1] for m in trial.array.members]), trial,
                   attempt, with_checkpoint=False)
            return
        clock, last_report = CheckpointClock(settings), time.monotonic()
        cell = settings.run_values.cell(trial_config)
        while not trial.array.done:
            records = trial.array.train_epoch()
            lead = trial.array.members[0]
            crash_once(cell, settings.results_uri, info.trial_id, records[0]["global_epoch"])
            level_end = records[0]["epoch"] == lead.config.epochs
            if level_end:
                trial.flush()
                if lead.level in rungs and not lead.done and trial.array.size > 1:
                    scores = [r[settings.objective] for r in records]
                    survivors = halving.survivors(scores)
                    if len(survivors) < trial.array.size:
                        trial.halve(survivors)
                        records = [records[i] for i in survivors]
                        lead = trial.array.members[0]
            due = clock.due(lead, records[0])
            if due and not level_end:
                trial.flush()
            if due or level_end or time.monotonic() - last_report >= HEARTBEAT_S:
                report(metrics_of(records), trial, attempt, with_checkpoint=due)
                last_report = time.monotonic()
    finally:
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
