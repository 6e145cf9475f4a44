"""The run core's side of tickets (results/tickets.py holds the format): write a run's
theta_0 and each level's masks as the level ends, and start a run from an exported ticket.

`TicketStore(location, trial)` is what LotteryRun calls at each level end (`run.tickets`);
`ts3ray run` writes under `<out>/tickets/<run_id>/`, a sweep's trial under
`<results>/tickets/<trial_id>/`. Writes are atomic and idempotent (a retried trial rewrites
the same bytes).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ts3ray import storage
from ts3ray.errors import UserError
from ts3ray.results import tickets as fmt


def _numpy(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().contiguous().numpy() for k, v in state.items()
            if v.is_floating_point() or v.dtype == torch.bool}


class TicketStore:
    """Writes the tickets of one run (or trial) under `location/<trial>/`."""

    def __init__(self, location: str, trial: str, *, final: bool = False,
                 provenance: dict[str, Any] | None = None):
        self.root, self.where = location, fmt.trial_location(location, trial)
        self.final, self.provenance = final, provenance or {}
        self.recorded = False

    def _record_trial(self, run) -> None:
        """theta_0 (once per distinct content) and the trial's record pointing at it."""
        import json

        digest, data = fmt.encode_theta0({n: _numpy(s) for n, s in run.init_states.items()})
        init = fmt.theta0_location(self.root, digest)
        if not storage.exists(init):
            storage.write_atomic(init, lambda stream: stream.write(data))
        record = {"format": fmt.FORMAT, "run_id": run.config.run_id, "theta0": digest,
                  "config": run.config.to_dict(), "provenance": self.provenance}
        storage.write_text_atomic(storage.join(self.where, fmt.TRIAL_FILE),
                                  json.dumps(record, indent=1, default=list))
        self.recorded = True

    def level_done(self, run, level: int, row: dict[str, Any]) -> None:
        """Level `level` ended (its masks are still those it trained under)."""
        if not self.recorded:
            self._record_trial(run)
        masks = {n: {k: m.detach().cpu().numpy() for k, m in ms.items()}
                 for n, ms in run.masks.items()}
        final = ({n: _numpy(run.models[n].state_dict()) for n in run.masks}
                 if self.final else None)
        meta = {"run_id": run.config.run_id, "level": level,
                **{k: row[k] for k in ("sparsity", "nonzero_params", "acc_sparse_last",
                                       "val_acc_sparse_last") if k in row}}
        data = fmt.encode_level(masks, meta, final)
        storage.write_atomic(storage.join(self.where, fmt.level_name(level)),
                             lambda stream: stream.write(data))


def ticket_values(ticket: fmt.Ticket, overrides: dict[str, Any]) -> dict[str, Any]:
    """The run config of a ticket's retraining: the ticket's own configuration, the user's
    overrides over it (where it runs: device, data_root, ...), rounds = the ticket's level
    (training stops after that level)."""
    if "rounds" in overrides:
        raise UserError(f"rounds={overrides['rounds']} is not allowed with ticket=: a ticket "
                        f"retrains its own level ({ticket.level}), no further rounds")
    return {**ticket.config, **overrides, "rounds": ticket.level}


def apply_ticket(run, ticket: fmt.Ticket) -> None:
    """Make `run` start level `ticket.level` from the ticket's masks and theta_0 (the epoch
    keys of that level's data order are those of the sweep's level, so on a CPU the
    retraining repeats it bit for bit)."""
    for net, model in run.models.items():
        state = ticket.theta0.get(net)
        if state is None:
            raise UserError(f"ticket= holds no initial weights of network {net} "
                            f"(it has {', '.join(ticket.theta0)})")
        tensors = {k: torch.from_numpy(np.array(v)) for k, v in state.items()}
        current = model.state_dict()
        wrong = [k for k in current if k in tensors and tensors[k].shape != current[k].shape]
        if wrong or not set(tensors) <= set(current):
            raise UserError(f"ticket= does not fit arch={run.config.arch}: "
                            f"{', '.join(wrong or sorted(set(tensors) - set(current)))[:120]}")
        full = {k: tensors[k].to(current[k].dtype) if k in tensors else current[k] for k in current}
        run.init_states[net] = {k: v.to(run.device).clone() for k, v in full.items()}
    for net in run.masks:
        run.masks[net] = {k: torch.from_numpy(np.array(ticket.masks[net][k])).to(run.device)
                          for k in run.masks[net]}
    from ts3ray import pruning

    for net, model in run.models.items():
        pruning.reset_to_init(model, run.init_states[net], run.masks.get(net, {}))
    run.level, run.epoch, run.method_state = ticket.level, 0, {}
    run._new_optimizers()
