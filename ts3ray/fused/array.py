"""A fused array of K lottery runs (issue 23, "fused trial arrays").

Design: every member is a complete `LotteryRun` (run.py), built from its own RunConfig, so it
owns what makes it a different trial: its seed (initialisation of S and D, noise draw, data
order, hold-out split), its noisy labels, its masks and its epoch/level records, identical in
schema to an unfused run's. The array stacks the members' parameters per network
(functional.FusedNet: the members' modules keep views of the stacks), and replaces the K
training steps of an epoch by one vectorised step (steps.py): each batch position takes
member k's batch from member k's own seeded permutation (the same generator calls as the
unfused loader), one vmap'd forward and backward for all members, one optimiser step over
the stacks (SGD/Adam act elementwise, so each member has its own momentum state), masks
re-applied per member. Evaluation, pruning by each member's own magnitudes, reset to its
initial weights and the records stay the members' own code (LotteryRun.begin_epoch /
finish_epoch around the fused step), so there is one place for each of them.

What may differ between members: MEMBER_KEYS (the seed, and TS3-Net's lambda, tau, gamma,
carried as (K,) tensors). Everything else - dataset, architecture, method and its options,
schedule, optimiser, batch size, rounds - must be equal: ConfigError, one line.
"""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import nn

from ts3ray.config import RunConfig
from ts3ray.data.sources import streams_only
from ts3ray.errors import ConfigError
from ts3ray.fused.functional import (FusedNet, fused_optimizer_state,
                                      member_optimizer_state)
from ts3ray.method.protocols import apply_schedule, make_optimizer, schedule_position
from ts3ray.run import LotteryRun, load_run_dataset

MEMBER_KEYS = ("seed", "lam", "tau", "gamma")
FUSED_METHODS = ("ce", "ts3net")
IGNORED_KEYS = ("data_root", "data_workers")  # where data is read from, not what trains
# (key, the value fusing needs, why): refused before any data is loaded
REQUIRED = (
    ("precision", "fp32", "autocast is not applied to the fused step yet"),
    ("channels_last", False, "NHWC is not applied to the fused forward yet"),
    ("grad_clip", None, "a per-member gradient-norm clip is not fused yet"),
    ("selection", "rate", "the GMM division is per member and not fused yet"),
    ("data_path", ("auto", "device"), "fused members read device-resident data"),
)
TS3NET_REQUIRED = (
    ("variant", "full", "only the full TS3-Net is fused yet"),
    ("alternate", "pass", "parity alternation is not fused yet"),
    ("own_small_loss", False, "the official code's own small-loss term is not fused yet"),
    ("refine_loss", "paper", "the official code's refinement loss is not fused yet"),
)
UNFUSED_LAYERS = (nn.Dropout,)  # its draws would come from one generator for all members


def check_fusable(configs: list[RunConfig]) -> None:
    """K >= 1 configurations that one fused array can train (ConfigError, one line)."""
    if not configs:
        raise ConfigError("fuse", 0, "at least one configuration")
    first = configs[0]
    if first.method not in FUSED_METHODS:
        raise ConfigError("method", first.method, f"one of {', '.join(FUSED_METHODS)} "
                          "with a fused array (other methods run unfused)")
    rules = REQUIRED + (TS3NET_REQUIRED if first.method == "ts3net" else ())
    for key, wanted, why in rules:
        value = getattr(first, key)
        if value not in (wanted if isinstance(wanted, tuple) else (wanted,)):
            shown = " or ".join(map(str, wanted)) if isinstance(wanted, tuple) else wanted
            raise ConfigError(key, value, f"{shown} with a fused array ({why})")
    streamed = streams_only(first.dataset)
    if streamed:  # known from its source before any file is read (placement.py's rule)
        raise ConfigError("dataset", first.dataset, f"a dataset held on the device with a "
                          f"fused array ({first.dataset} streams from its image files: "
                          f"{streamed}; run it unfused, --fuse 1)")
    base = first.to_dict()
    for k, config in enumerate(configs[1:], start=1):
        for key, value in config.to_dict().items():
            if key not in MEMBER_KEYS and key not in IGNORED_KEYS and value != base[key]:
                raise ConfigError(key, value, f"{base[key]!r} as in member 0 (members of a "
                                  f"fused array differ only in {', '.join(MEMBER_KEYS)}; "
                                  f"member {k} differs)")


def shared_datasets(configs: list[RunConfig]) -> list:
    """Each member's dataset, loaded once per distinct (dataset, data root, seed): one copy
    in host memory and one read from disk for members that share them, as every member of
    a grid or sensitivity sweep does (the seed: digits' split and the synthetic sets depend
    on it, and keying every dataset by it is the safe side)."""
    loaded: dict[tuple, Any] = {}
    keys = [(c.dataset, c.data_root, c.seed) for c in configs]
    for key, c in zip(keys, configs):
        if key not in loaded:
            loaded[key] = load_run_dataset(c)
    return [loaded[key] for key in keys]


class FusedArray:
    """K lottery runs trained as one fused model; iterate `epochs()` for one list of K epoch
    records per fused epoch (member k's record is what `LotteryRun(configs[k])` yields)."""

    def __init__(self, configs: list[RunConfig], *, dataset=None,
                 device: torch.device | str | None = None, member_datasets: list | None = None):
        from ts3ray.fused.steps import FUSED_STEPS

        check_fusable(configs)
        self.configs = list(configs)
        self.member_datasets = (member_datasets if member_datasets is not None
                                else [dataset] * len(configs) if dataset is not None
                                else shared_datasets(self.configs))
        self.members = [LotteryRun(c, dataset=d, device=device)
                        for c, d in zip(configs, self.member_datasets)]
        first = self.members[0]
        for module in first.sparse_model.modules():
            if isinstance(module, UNFUSED_LAYERS):
                raise ConfigError("arch", first.config.arch, f"an architecture without "
                                  f"{type(module).__name__} with a fused array (per-member "
                                  "dropout draws are not fused yet)")
        if first.data.path != "device":
            raise ConfigError("data_path", first.data.path, "device with a fused array")
        sizes = [m.data.batches.num_samples for m in self.members]
        if len(set(sizes)) > 1:  # a seeded, stratified hold-out: sizes differ by rounding
            raise ConfigError("seed", [c.seed for c in configs], "one seed for every member "
                              f"when a validation split is held out (training sets of "
                              f"{sizes} images cannot be stacked)")
        self.device = first.device
        self.step = FUSED_STEPS[first.config.method]
        self.nets = {name: FusedNet([m.models[name] for m in self.members],
                                    compile_mode=first.config.compile, device=self.device)
                     for name in first.models}
        as_tensor = lambda values, dtype: torch.tensor(values, dtype=dtype, device=self.device)
        self.member_values = {key: as_tensor([float(getattr(c, key)) for c in configs],
                                             torch.float64)
                              for key in ("lam", "tau", "gamma")}
        self.true_y = torch.stack([m.data.true_y for m in self.members])
        self.label_known = torch.stack([m.data.label_known for m in self.members])
        self.label_is_clean = torch.stack([m.data.label_is_clean for m in self.members])
        self.last_sums: dict[str, torch.Tensor] = {}
        self._new_optimizers()

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def config(self) -> RunConfig:
        """The configuration the members share (member 0's)."""
        return self.members[0].config

    @property
    def done(self) -> bool:
        return self.members[0].done

    def _new_optimizers(self) -> None:
        """The protocol's optimiser over each network's stacks, fresh (every level retrains)."""
        for net in self.nets.values():
            net.optimizer = make_optimizer(list(net.params.values()), self.config)
            for group in net.optimizer.param_groups:  # one multi-tensor kernel per update
                group["foreach"] = True  # (SGD, Adam: the same ops as the per-tensor loop)

    def member_state(self, k: int) -> dict[str, Any]:
        """Member k's state as an unfused LotteryRun checkpoint: its networks (views of the
        stacks) and its rows of the fused optimisers' state, so that it can continue
        unfused (`LotteryRun.load_state_dict`) or in another array."""
        state = self.members[k].state_dict()
        state["optimizers"] = {name: member_optimizer_state(net.optimizer.state_dict(), k)
                               for name, net in self.nets.items()}
        return state

    def state_dict(self) -> dict[str, Any]:
        """One unfused LotteryRun checkpoint per member (member_state)."""
        return {"members": [self.member_state(k) for k in range(self.size)]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from member checkpoints (fused or unfused ones, of these configs)."""
        members = state["members"]
        if len(members) != self.size:
            raise ValueError(f"checkpoint holds {len(members)} members, not {self.size}")
        for member, member_state in zip(self.members, members):
            member.load_state_dict(member_state)  # copies into the stacks' views in place
        self._new_optimizers()
        for name, net in self.nets.items():
            net.optimizer.load_state_dict(
                fused_optimizer_state([m["optimizers"][name] for m in members]))

    def subset(self, keep: list[int]) -> "FusedArray":
        """A new array of the members `keep`, continuing from their current state: a member
        that stops (an early-stopping scheduler's decision) frees its share of the device."""
        array = FusedArray([self.configs[k] for k in keep], device=self.device,
                           member_datasets=[self.member_datasets[k] for k in keep])
        array.load_state_dict({"members": [self.member_state(k) for k in keep]})
        return array

    def epochs(self) -> Iterator[list[dict[str, Any]]]:
        while not self.done:
            yield self.train_epoch()

    def train_epoch(self) -> list[dict[str, Any]]:
        first = self.members[0]
        starts = [m.begin_epoch() for m in self.members]  # each member's lr, stats, context
        for name, net in self.nets.items():
            net.set_masks([m.masks[name] for m in self.members] if name in first.masks else [])
        position = schedule_position(first.epoch, first.method.segment(first.epoch),
                                     self.config.epochs)
        apply_schedule([net.optimizer for net in self.nets.values()], self.config, position)
        epoch = FusedEpoch(self, key=first.global_epoch, epoch=first.epoch)
        self.step(self.nets, epoch)
        self.last_sums = epoch.sums  # (K,) statistics of the epoch's step (tests, benchmarks)
        for k, start in enumerate(starts):
            for key, values in epoch.sums.items():
                start.stats.add(key, values[k])
        records = [m.finish_epoch(s) for m, s in zip(self.members, starts)]
        if first.epoch == 0 and not self.done:  # a level ended: members pruned and reset
            self._new_optimizers()
        return records


class FusedEpoch:
    """What a fused epoch step reads: the members' batches stacked, their per-member values,
    and (K,) float64 sums of its statistics (EpochStats' keys, split per member after)."""

    def __init__(self, array: FusedArray, *, key: int, epoch: int):
        self.array, self.key, self.epoch = array, key, epoch
        self.config = array.config
        self.num_classes = array.members[0].data.num_classes
        self.sums: dict[str, torch.Tensor] = {}

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(x, y, idx) with a leading member axis: member k's batch from its own seeded
        permutation of epoch `key` (DeviceBatches.epoch, the unfused loader's calls)."""
        for batch in zip(*(m.data.batches.epoch(self.key) for m in self.array.members)):
            yield (torch.stack([b.x for b in batch]), torch.stack([b.y for b in batch]),
                   torch.stack([b.idx for b in batch]))

    def add(self, key: str, values: torch.Tensor) -> None:
        values = values.detach().to(torch.float64)
        self.sums[key] = self.sums[key] + values if key in self.sums else values

    def add_loss(self, name: str, losses: torch.Tensor) -> None:
        self.add(f"loss_{name}", losses)
        self.add(f"steps_{name}", torch.ones_like(losses))

    def record_selection(self, selected: torch.Tensor, idx: torch.Tensor) -> None:
        """base.record_selection per member (label precision)."""
        known = selected & self.array.label_known.gather(1, idx)
        self.add("selected", known.sum(1))
        self.add("selected_correct", (known & self.array.label_is_clean.gather(1, idx)).sum(1))
