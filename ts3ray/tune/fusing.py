"""`--fuse K`: a sweep's grid cells grouped into fused arrays (ts3ray/fused/), one Tune trial
per array.

Design (issue 23): Tune sees one trial per array; each member still writes its own rows
(one results.TrialWriter per member, trial id `<tune trial id>-m<k>`, the unfused schema), so
tables and the loader see K lottery runs. Cells join an array only with cells that differ
from them in the member keys alone (the seed; TS3-Net's lambda, tau, gamma), in plan order,
K at a time; a cell with no such partner runs unfused, as a one-member array would be slower
(vmap costs ~25 % at K = 1 on this CPU, benchmarks/bench_fused.py). A searcher that
proposes trials (Optuna) or Tune's ASHA would see arrays, not lottery runs:
`--fuse` is refused with searches (one line); with `--scheduler asha` each array halves
itself at ASHA's rungs instead of Tune's ASHA acting on arrays (Halving below), so early
stopping still frees device share and wall-clock time.

Every check runs before Ray starts: the members of each array must be fusable
(fused.check_fusable: one line naming the key, e.g. a method other than ce/ts3net).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ts3ray.errors import UserError

MEMBER_SUFFIX = "-m"  # member k of Tune trial T writes its rows as trial `T-mk`


def member_trial_id(trial_id: str, k: int) -> str:
    return f"{trial_id}{MEMBER_SUFFIX}{k}"


def check_fuse(fuse: int, *, search: bool) -> None:
    """`--fuse K`: K >= 1, and not with a searcher (it proposes one run per trial)."""
    if fuse < 1:
        raise UserError(f"--fuse={fuse} is not allowed: K >= 1 (1: every lottery run its own "
                        "trial)")
    if fuse > 1 and search:
        raise UserError(f"--fuse={fuse} is not allowed with a search: Optuna proposes one "
                        "trial at a time and would score a fused array of K runs as one "
                        "(use --fuse 1, or a grid sweep)")


# -- early stopping inside an array (--fuse K --scheduler asha) ---------------------------
@dataclass(frozen=True)
class Halving:
    """Successive halving of a fused array's members at IMP level ends: ASHA's rungs (Ray's
    milestones grace * rf**k below max_t, in completed levels) and its cut (keep the best
    1/rf, here ceil(n / rf) of the n members still training, ranked on the sweep's
    objective; ties by member order). Synchronous inside an array, since its members reach
    a level end together; a stopped member frees its share: the array shrinks
    (FusedArray.subset). Members are ranked only against their own array: every member
    differs from the others only in seed, lambda, tau, gamma, so an array is within one of
    grouped ASHA's comparable groups (scheduler.py), though a group may span several arrays."""

    grace_period: int = 1
    reduction_factor: float = 3.0

    def rungs(self, max_levels: int) -> list[int]:
        """The level counts at which the array is cut: Ray's milestones grace * rf**k
        (async_hyperband._Bracket, MAX_RUNGS of them), each taking effect at the first
        report with at least that many levels (`cur_iter >= milestone`: the ceiling), one
        cut per level (Ray records a trial in the highest milestone it passed), none at the
        last level (the run ends there)."""
        grace = min(self.grace_period, max_levels)
        count = int(math.log(max_levels / grace) / math.log(self.reduction_factor) + 1)
        levels = {math.ceil(grace * self.reduction_factor ** k - 1e-9) for k in range(count)}
        return sorted(level for level in levels if level < max_levels)

    def survivors(self, scores: list[float]) -> list[int]:
        """Indices of the members that go on (NaN ranks last)."""
        keep = max(1, math.ceil(len(scores) / self.reduction_factor))
        order = sorted(range(len(scores)), key=lambda i: (
            -(scores[i] if not math.isnan(scores[i]) else -math.inf), i))
        return sorted(order[:keep])


def fused_arrays(common: dict[str, Any], cells: list[dict[str, Any]],
                 fuse: int) -> tuple[tuple[int, ...], ...]:
    """The plan's cell indices grouped into arrays of at most `fuse` members: cells that
    differ only in the member keys, in plan order; every cell in exactly one array. Cells of
    a method the fused code does not train (fused.FUSED_METHODS) stay alone (unfused)."""
    from ts3ray.config import make_config
    from ts3ray.fused import FUSED_METHODS, MEMBER_KEYS

    if fuse <= 1:
        return ()
    groups: dict[tuple, list[int]] = {}
    for index, cell in enumerate(cells):
        shared = {**common, **cell}
        # a held-out validation split is drawn per seed (stratified: sizes differ by one or
        # two images), so members with a hold-out share their seed and differ in lam tau gamma
        varying = (MEMBER_KEYS if not make_config(shared, given=()).val_fraction
                   else tuple(k for k in MEMBER_KEYS if k != "seed"))
        key = tuple(sorted((k, repr(v)) for k, v in shared.items() if k not in varying))
        if shared.get("method", "ts3net") not in FUSED_METHODS:
            key = ("unfused", index)
        groups.setdefault(key, []).append(index)
    arrays = [tuple(members[i:i + fuse]) for members in groups.values()
              for i in range(0, len(members), fuse)]
    return tuple(sorted(arrays))


def check_arrays(common: dict[str, Any], cells: list[dict[str, Any]],
                 arrays: tuple[tuple[int, ...], ...]) -> None:
    """Every array of two or more members is one the fused code can train (ConfigError,
    one line, before Ray or data)."""
    from ts3ray.config import make_config
    from ts3ray.fused import check_fusable

    for members in arrays:
        if len(members) > 1:
            check_fusable([make_config({**common, **cells[i]}, given=()) for i in members])


def fuse_plan(plan, fuse: int):
    """`plan` with its arrays (checked); unchanged when nothing is fused."""
    import dataclasses

    if fuse <= 1 or plan.search:
        return plan
    cells = plan.cells or [{}]
    arrays = fused_arrays(plan.common, cells, fuse)
    check_arrays(plan.common, cells, arrays)
    return dataclasses.replace(plan, arrays=arrays)


def arrays_line(arrays: tuple[tuple[int, ...], ...]) -> str:
    """`fused: 64 cells in 8 arrays (8 x 8)` for the sweep's start."""
    sizes: dict[int, int] = {}
    for members in arrays:
        sizes[len(members)] = sizes.get(len(members), 0) + 1
    shown = ", ".join(f"{n} x {size}" for size, n in sorted(sizes.items(), reverse=True))
    cells = sum(len(m) for m in arrays)
    alone = sizes.get(1, 0)
    tail = (f"; {alone} run(s) unfused (no partner differing only in seed, lam, tau, gamma, "
            "or a method other than ce, ts3net)") if alone else ""
    return f"fused: {cells} cells in {len(arrays)} trials ({shown}){tail}"
