"""`ts3ray ticket list RESULTS` and `ts3ray ticket export RESULTS ... --out t.safetensors`:
the lottery tickets a run or sweep kept (results/tickets.py), one self-contained file for
another program or for `ts3ray run ticket=t.safetensors` (no Ray, no torch).

`export --trial ID --level K` names a ticket; `export --pareto [--within P] [--select COL]`
takes the pick of `ts3ray table pareto` (results/pareto.py: the sparsest level within P
points of the best validation accuracy).
"""
from __future__ import annotations

import argparse

import pandas as pd

from ts3ray import storage
from ts3ray.errors import UserError
from ts3ray.paths import check_output_file
from ts3ray.results import tickets
from ts3ray.results.pareto import DEFAULT_SELECT, DEFAULT_WITHIN, describe, fronts, parse_within


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = sub.add_parser("list", help="every stored ticket: trial, level, sparsity, accuracy, bytes")
    show.add_argument("results", metavar="RESULTS", help="a sweep folder, its results/ or a run folder")
    out = sub.add_parser("export", help="one self-contained ticket file (safetensors)")
    out.add_argument("results", metavar="RESULTS", help="a sweep folder, its results/ or a run folder")
    out.add_argument("--trial", help="trial_id (a run folder: its run_id; default: its only one)")
    out.add_argument("--level", type=int, help="IMP level K (0 = dense)")
    out.add_argument("--pareto", action="store_true",
                     help="the pareto pick: the sparsest level within --within points of the best")
    out.add_argument("--within", default=DEFAULT_WITHIN, help=f"percentage points (default {DEFAULT_WITHIN:g})")
    out.add_argument("--select", default=DEFAULT_SELECT, help=f"the column that selects (default {DEFAULT_SELECT})")
    out.add_argument("--out", required=True, help="the ticket file to write (.safetensors)")


def ticket_rows(results: str) -> pd.DataFrame:
    """The stored tickets with their level's sparsity and accuracies (when the rows exist)."""
    from ts3ray.results.load import add_trial_key, read_table

    stored = pd.DataFrame(tickets.stored_levels(tickets.tickets_root(results)),
                          columns=["trial", "level", "bytes", "theta0", "theta0_bytes"])
    try:
        levels = add_trial_key(read_table(results, "levels"))
    except UserError:
        return stored
    keep = [c for c in ("sparsity", "val_acc_sparse_last", "acc_sparse_last") if c in levels]
    levels = levels[["_trial", "round", *keep]].rename(columns={"_trial": "trial", "round": "level"})
    return stored.merge(levels, on=["trial", "level"], how="left")


def list_main(args) -> int:
    rows = ticket_rows(args.results)
    if rows.empty:
        raise UserError(f"RESULTS '{args.results}' holds no tickets yet (none finished a level)")
    print(f"{'trial':<24} {'level':>5} {'sparsity':>9} {'val_acc':>8} {'test_acc':>8} "
          f"{'bytes':>8} {'theta0':>8}")

    def pct(v) -> str:
        return "-" if v is None or v != v else f"{100 * v:.2f}%"

    for r in rows.to_dict("records"):
        print(f"{r['trial']:<24} {r['level']:>5} {pct(r.get('sparsity')):>9} "
              f"{pct(r.get('val_acc_sparse_last')):>8} {pct(r.get('acc_sparse_last')):>8} "
              f"{r['bytes']:>8} {r['theta0_bytes']:>8}")
    trials, shared = rows["trial"].nunique(), rows["theta0"].nunique()
    print(f"{len(rows)} ticket(s) of {trials} trial(s); {shared} theta_0 file(s) (one per distinct "
          f"initialisation, {rows.drop_duplicates('theta0')['theta0_bytes'].sum()} bytes); a level "
          f"adds its bit-packed masks (mean {rows['bytes'].mean():.0f} bytes)")
    return 0


def choose(args) -> tuple[str, int, str]:
    """(trial, level, why) of the ticket to export."""
    from ts3ray.results.load import read_table

    if args.pareto:
        if args.trial is not None or args.level is not None:
            raise UserError("--pareto chooses the trial and level itself; leave out --trial/--level")
        found, _ = fronts(read_table(args.results, "levels"), args.select,
                          parse_within(args.within))
        if len(found) > 1:
            raise UserError(f"--pareto: RESULTS holds {len(found)} settings "
                            f"({', '.join(f.setting for f in found)}); export one with "
                            "--trial ID --level K (`ts3ray table pareto` names each pick)")
        pick = found[0].pick
        return str(pick["_trial"]), int(pick["round"]), f"pareto pick: {describe(pick)}"
    if args.level is None:
        raise UserError("ticket export: pass --level K (with --trial ID), or --pareto")
    trial = args.trial
    if trial is None:
        trials = sorted({r["trial"] for r in tickets.stored_levels(tickets.tickets_root(args.results))})
        if len(trials) != 1:
            raise UserError(f"--trial is needed: RESULTS holds {len(trials)} trials "
                            f"({', '.join(trials[:6])}{' ...' if len(trials) > 6 else ''})")
        trial = trials[0]
    return trial, args.level, f"trial {trial} level {args.level}"


def export_main(args) -> int:
    check_output_file(args.out, "--out")
    trial, level, why = choose(args)
    ticket = tickets.assemble(tickets.tickets_root(args.results), trial, level)
    data = ticket.encode()
    storage.write_atomic(args.out, lambda stream: stream.write(data))
    print(f"{why}: sparsity {100 * ticket.sparsity:.2f}%, {len(data)} bytes -> {args.out}")
    print(f"next: ts3ray run ticket={args.out} --out retrain-{trial}-{level}  (retrains level "
          f"{level} from its theta_0 and masks)")
    return 0


def main(args) -> int:
    return {"list": list_main, "export": export_main}[args.action](args)

