"""Early stopping for lottery runs: ASHA at IMP level ends, one ASHA state per comparable group.

* **Level-aware.** The time axis is the number of completed IMP levels (1 ... R + 1), and a
  rung's value is the objective (S's validation accuracy) reported with the last epoch of
  that level. Rungs therefore never fall inside a level: not in level 0 before lambda, tau
  and gamma have acted (lambda from E1, tau and gamma only in refinement), and not in the
  epochs after a rewind, where accuracy drops by design. Grace period and max_t are levels.
* **Grouped.** A trial is ranked only against trials of its own group: the same values of
  everything except the searched parameters (setting, architecture, variant, p_f, R, seed,
  schedule...). A CIFAR-100 trial never stops a CIFAR-10 one, nor p_f = 0.6 a p_f = 0.3 one.

Design: one Tune scheduler that keeps a separate Ray `AsyncHyperBandScheduler` per group,
created when the group's first trial arrives (each with its own max_t = R + 1 of that
group), and routes every trial event to its group's instance. The alternative — one
experiment per group — would split a grid into many Tuners, each with its own driver state,
resume and concurrency limit; one experiment keeps one resource pool, one progress report
and one `--resume`. Ray's ASHA logic (rung milestones, cutoff percentile) is reused as is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from ts3ray.tune.search import LEVELS_DONE, MODE


@dataclass(frozen=True)
class ComparableGroup:
    """Group key of a trial: its run values except the searched parameters (picklable)."""

    searched: tuple[str, ...]
    run_values: Callable[[dict[str, Any]], dict[str, Any]]

    def __call__(self, trial_config: dict[str, Any]) -> Hashable:
        values = self.run_values(trial_config)
        return tuple(sorted((k, repr(v)) for k, v in values.items() if k not in self.searched))


class GroupedLevelASHA(FIFOScheduler):
    """ASHA over completed IMP levels, with one ASHA state per comparable group."""

    def __init__(self, metric: str, group_of: ComparableGroup, levels_of: Callable[[dict], int],
                 grace_period: int = 1, reduction_factor: float = 3,
                 halves_itself: Callable[[dict], bool] | None = None):
        super().__init__()
        self.halves_itself = halves_itself  # --fuse: an array stops its own members (fusing.py)
        self._metric = metric
        self.group_of = group_of
        self.levels_of = levels_of  # R + 1 of a trial config: its max_t
        self.grace_period = grace_period
        self.reduction_factor = reduction_factor
        self.groups: dict[Hashable, AsyncHyperBandScheduler] = {}
        self.trial_group: dict[str, Hashable] = {}

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # metric and mode are fixed at construction

    def _asha_of(self, trial) -> AsyncHyperBandScheduler:
        key = self.trial_group.get(trial.trial_id)
        if key is None:
            key = self.trial_group[trial.trial_id] = self.group_of(trial.config)
        if key not in self.groups:
            max_levels = self.levels_of(trial.config)
            self.groups[key] = AsyncHyperBandScheduler(
                time_attr=LEVELS_DONE, metric=self._metric, mode=MODE, max_t=max_levels,
                grace_period=min(self.grace_period, max_levels),
                reduction_factor=self.reduction_factor)
        return self.groups[key]

    def _own(self, trial) -> bool:
        """Whether ASHA acts on this trial (not a fused array, which halves itself)."""
        return self.halves_itself is None or not self.halves_itself(trial.config)

    def on_trial_add(self, tune_controller, trial) -> None:
        if self._own(trial):
            self._asha_of(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if not self._own(trial):
            return TrialScheduler.CONTINUE
        return self._asha_of(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if self._own(trial):
            self._asha_of(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        if self._own(trial):
            self._asha_of(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        stopped = sum(a._num_stopped for a in self.groups.values())
        return (f"Using grouped level-aware ASHA: {len(self.groups)} group(s), "
                f"{stopped} trial(s) stopped")


__all__ = ["ComparableGroup", "GroupedLevelASHA", "TrialScheduler"]
