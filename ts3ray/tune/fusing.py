"""`--fuse K`: a sweep's grid cells grouped into fused arrays (ts3ray/fused/), one Tune trial
per array.

Design (issue 23): Tune sees one trial per array; each member still writes its own rows
(one results.TrialWriter per member, trial id `<tune trial id>-m<k>`, the unfused schema), so
tables and the loader see K lottery runs. Cells join an array only with cells that differ
from them in the member keys alone (the seed; TS3-Net's lambda, tau, gamma), in plan order,
K at a time; a cell with no such partner runs unfused, as a one-member array would be slower
(vmap costs ~25 % at K = 1 on this CPU, benchmarks/bench_fused.py). A scheduler that stops
trials (ASHA) or a searcher that proposes them (Optuna) sees arrays, not lottery runs, so
both are refused with `--fuse` (one line) rather than stopping K runs for one's score.

Every check runs before Ray starts: the members of each array must be fusable
(fused.check_fusable: one line naming the key, e.g. a method other than ce/ts3net).
"""
from __future__ import annotations

from typing import Any

from ts3ray.errors import UserError

MEMBER_SUFFIX = "-m"  # member k of Tune trial T writes its rows as trial `T-mk`


def member_trial_id(trial_id: str, k: int) -> str:
    return f"{trial_id}{MEMBER_SUFFIX}{k}"


def check_fuse(fuse: int, *, scheduler: str, search: bool) -> None:
    """`--fuse K`: K >= 1, and not with a scheduler or searcher that acts on trials."""
    if fuse < 1:
        raise UserError(f"--fuse={fuse} is not allowed: K >= 1 (1: every lottery run its own "
                        "trial)")
    if fuse == 1:
        return
    if search:
        raise UserError(f"--fuse={fuse} is not allowed with a search: Optuna proposes one "
                        "trial at a time and would score a fused array of K runs as one "
                        "(use --fuse 1, or a grid sweep)")
    if scheduler != "none":
        raise UserError(f"--fuse={fuse} is not allowed with --scheduler {scheduler}: it would "
                        "stop a fused array's K runs on one score (use --fuse 1 with ASHA, or "
                        "--scheduler none to keep every cell)")


def fused_arrays(common: dict[str, Any], cells: list[dict[str, Any]],
                 fuse: int) -> tuple[tuple[int, ...], ...]:
    """The plan's cell indices grouped into arrays of at most `fuse` members: cells that
    differ only in the member keys, in plan order; every cell in exactly one array. Cells of
    a method the fused code does not train (fused.FUSED_METHODS) stay alone (unfused)."""
    from ts3ray.fused import FUSED_METHODS, MEMBER_KEYS

    if fuse <= 1:
        return ()
    groups: dict[tuple, list[int]] = {}
    for index, cell in enumerate(cells):
        shared = {**common, **cell}
        key = tuple(sorted((k, repr(v)) for k, v in shared.items() if k not in MEMBER_KEYS))
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
