"""`ts3ray results compact DIR`: merge a sweep's small Parquet files into one per table.
`ts3ray results info RESULTS`: the provenance of a run or sweep (results/info.py).

DIR is a sweep folder `<storage>/<name>` or its `results/` folder, local or a URI. Safe to
run again, and while the sweep still runs (results/compact.py). Only the sweep's own files
are merged and deleted; every other file is named in one line, `left in place: PATH (why)`.
"""
from __future__ import annotations

import argparse

from ts3ray import storage
from ts3ray.errors import UserError, warn
from ts3ray.results.compact import compact_sweep


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = sub.add_parser("compact", help="one Parquet file per table (idempotent)")
    run.add_argument("results", metavar="DIR", help="a sweep folder or its results/ folder")
    info = sub.add_parser("info", help="provenance: code and library versions, device, command")
    info.add_argument("results", metavar="RESULTS", help="a sweep folder, its results/ or a run folder")


def results_location(location: str) -> str:
    """The `results/` folder of a sweep folder, or the folder itself if it is one."""
    if not storage.exists(location):
        raise UserError(f"DIR '{location}' does not exist")
    inner = storage.join(location, "results")
    if storage.exists(inner):
        return inner
    if any(storage.exists(storage.join(location, t)) for t in storage.TABLES):
        return location
    raise UserError(f"DIR '{location}' holds no sweep results (expected results/epochs and "
                    "results/levels, or epochs/ and levels/)")


def main(args: argparse.Namespace) -> int:
    if args.action == "info":
        from ts3ray.results.info import report

        lines, warnings = report(args.results)
        print("\n".join(lines))
        for line in warnings:
            warn(line)
        return 0
    location = results_location(args.results)
    for done in compact_sweep(location):
        note = f"{done.rows} rows"
        if done.copies_dropped:
            note += f", {done.copies_dropped} superseded copies dropped"
        print(f"{done.table}: {done.before} file(s) -> {done.after} ({note})")
        for path, why in done.left_in_place:
            warn(f"left in place: {path} ({why})")
    return 0
