"""`ts3ray run`: one lottery run (any method) into an output directory, resumable.

DIR/config.json          the validated configuration (and its run_id)
DIR/checkpoint.pt        full state after the latest epoch (torch.load(weights_only=True))
DIR/epochs.parquet       one row per (round, epoch)
DIR/levels.parquet       one row per sparsity level
DIR/tickets/<run_id>/    theta_0 and every level's masks (results/tickets.py)
config.json and the Parquet files' schema metadata also record the provenance (provenance.py).
`ticket=FILE` (from `ts3ray ticket export`) retrains that ticket: its configuration, masks and
theta_0, its level only.
The Parquet files are rewritten atomically with every checkpoint, so after a crash they
hold exactly the epochs the checkpoint holds, and `--resume` continues from there.

A run owns its folder: DIR/.ts3ray.lock (run_lock.py) is held from the first check of the
folder to the last write, so a second run into DIR is refused with one line naming the
holder instead of mixing its files with the first one's.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Iterator

import torch

from ts3ray import provenance, torch_files
from ts3ray.config import load_config_file, make_config, parse_overrides
from ts3ray.devices import check_device_exists
from ts3ray.errors import RESUME_ATTRIBUTE, UserError, one_line, shorten, warn
from ts3ray.paths import check_output_dir
from ts3ray.results.writer import epoch_table, level_table, write_parquet
from ts3ray.run_lock import RunFolderLock
from ts3ray.storage import remove_temp_files, write_atomic, write_text_atomic

CHECKPOINT = "checkpoint.pt"
CONFIG_JSON = "config.json"  # the run's keys, its run_id and provenance


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config values")
    parser.add_argument("--config", help="YAML/JSON file of config values (key=value wins)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--checkpoint-every", type=int, default=1, metavar="K",
                        help="save state and Parquet every K epochs (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads (default: $OMP_NUM_THREADS if set, else the CPUs this process may use; "
                             "1 is faster for small nets on a CPU shared with other work)")
    parser.add_argument("--download", action="store_true",
                        help="let torchvision download a missing dataset into data_root")
    parser.add_argument("--ticket-weights", choices=("none", "final"), default="none",
                        help="also keep each level's trained weights of the pruned networks in "
                             "its ticket (default: masks and theta_0 only)")


def build_config(args):
    if args.resume and not args.config and not args.overrides:  # `--out DIR --resume` alone
        values = RunDirectory(args.out).stored_values()
    else:
        values = load_config_file(args.config) if args.config else {}
        values.update(parse_overrides(args.overrides))
    given = set(values) - {"ticket"}  # what the user gave: the no-effect rules look at these
    args.ticket = None
    if values.get("ticket"):  # ticket=FILE: the ticket's own configuration, its level only
        from ts3ray.results.tickets import read
        from ts3ray.ticket_store import ticket_values

        args.ticket_file = str(values.pop("ticket"))
        args.ticket = read(args.ticket_file, "ticket=")
        values = ticket_values(args.ticket, values)
    if getattr(args, "download", False):  # fetch first, then validate as usual
        from ts3ray.data import load_dataset

        config = make_config(values, check_files=False, given=given)
        load_dataset(config.dataset, config.data_root, download=True)
    return make_config(values, given=given)


class RunDirectory:
    """The files of one run; every write is atomic (temporary file, then rename)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.extra: dict = {}  # further config.json keys: provenance, the ticket retrained

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def config_json(self) -> Path:
        return self.path / CONFIG_JSON

    def stored_values(self) -> dict:
        """The keys of the run this directory holds (its config.json, as `--config` reads
        it; a retrained ticket: ticket=its file again), for `--resume` without keys."""
        if self.existing_run_id() is None:
            raise UserError(f"--resume: --out {self.path} holds no run yet (no {CONFIG_JSON}); "
                            "give the run's key=values to start it")
        values = load_config_file(str(self.config_json))
        ticket = values.pop("ticket", None)
        return {"ticket": ticket["file"]} if isinstance(ticket, dict) else values

    def existing_run_id(self) -> str | None:
        """The run this directory holds, None when empty or new; UserError if it holds
        something else (a file, another tool's config.json)."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path} is a file, not a directory")
        meta = self.config_json
        if not meta.exists():
            return None
        try:
            return str(json.loads(meta.read_text())["run_id"])
        except (ValueError, KeyError, TypeError, OSError):
            raise UserError(f"--out {self.path} holds a config.json that is not a ts3ray run's; "
                            "choose another --out") from None

    def restore(self, run) -> None:
        """Continue `run` from the checkpoint; one UserError line for a file that is
        unreadable, not a checkpoint, or another run's."""
        what_to_do = "delete it to start the run over, or restore it from a copy"
        try:
            with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": a 2nd line
                warnings.simplefilter("ignore")
                state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated zip, random bytes, refused pickle, EOF, ...
            raise UserError(f"--resume: {self.checkpoint} cannot be read as a checkpoint "
                            f"({one_line(f'{type(err).__name__}: {err}', 120)}); {what_to_do}") from None
        if not isinstance(state, dict) or state.get("run_id") != run.config.run_id:
            found = state.get("run_id") if isinstance(state, dict) else type(state).__name__
            raise UserError(f"--resume: {self.checkpoint} is not a checkpoint of run "
                            f"{run.config.run_id} (it holds {shorten(repr(found), 40)}); {what_to_do}")
        try:
            run.load_state_dict(state)
        except Exception as err:  # missing keys, wrong shapes: a damaged or foreign state
            raise UserError(f"--resume: {self.checkpoint} does not hold a complete state of run "
                            f"{run.config.run_id} ({one_line(f'{type(err).__name__}: {err}', 120)}); "
                            f"{what_to_do}") from None

    def save(self, run) -> None:
        """All four files, each atomically; Ctrl-C or SIGTERM waits until all are written."""
        with signals_deferred():
            self._write_all(run)

    def _write_all(self, run) -> None:
        config_values = run.config.to_dict()
        write_text_atomic(str(self.config_json), json.dumps(
            {"run_id": run.config.run_id, **config_values, **self.extra}, indent=2, default=list))
        write_atomic(str(self.checkpoint),
                     lambda stream: torch_files.save(run.state_dict(), stream, str(self.checkpoint)))
        meta = provenance.as_metadata(self.extra.get("provenance", {}))
        for name, build, rows in (("epochs", epoch_table, run.epoch_rows),
                                  ("levels", level_table, run.level_rows)):
            table = build(rows, config_values)
            write_parquet(table.replace_schema_metadata({**(table.schema.metadata or {}), **meta}),
                          str(self.path / f"{name}.parquet"))


@contextlib.contextmanager
def signals_deferred(signals=(signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back until the block ends, then deliver them to the handlers
    that were installed before: a checkpoint's files then always belong to the same epoch.
    (A signal mask would not do: torch's threads would take the signal instead.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from ts3ray.cli import watchdog_held  # no hard exit on SIGTERM in the middle (cli.py)

    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in signals}
    try:
        with watchdog_held():
            yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """$OMP_NUM_THREADS when set (as torch itself reads it), else the CPUs this process may use."""
    given = os.environ.get("OMP_NUM_THREADS", "")
    return int(given) if given.isdigit() and int(given) >= 1 else available_cpus()


def check_options(args, config) -> None:
    """Everything but the data and the folder's contents, before anything is written."""
    if args.checkpoint_every < 1:
        raise UserError(f"--checkpoint-every={args.checkpoint_every} is not allowed: K >= 1")
    if args.threads is not None and not 1 <= args.threads <= 4096:
        raise UserError(f"--threads={args.threads} is not allowed: 1 <= N <= 4096")
    check_device_exists(config.device)
    check_output_dir(args.out, "--out")


def main(args) -> int:
    config = build_config(args)  # validation happens before anything is written
    check_options(args, config)
    warn_protocol(config)
    out = RunDirectory(args.out)
    with RunFolderLock(out.path, label="--out"):  # one run per folder, for its whole life
        remove_temp_files(out.path)  # left by a run that was killed mid-write
        existing = out.existing_run_id()
        if existing is not None and existing != config.run_id:
            raise UserError(
                f"--out {args.out} holds run {existing} with a different configuration; "
                + ("--resume alone (no key=values) continues it with its own, or choose "
                   "another --out" if args.resume else "choose another --out")
            )
        if existing is not None and not args.resume and out.checkpoint.exists():
            raise UserError(
                f"--out {args.out} already holds run {existing}; pass --resume to continue it "
                "or choose another --out"
            )
        previous_threads = torch.get_num_threads()  # main() may be called in-process: restore
        torch.set_num_threads(args.threads or default_threads())
        try:
            return _train(args, config, out)
        except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM: the one line says how to go on
            if out.checkpoint.exists():
                setattr(err, RESUME_ATTRIBUTE,
                        f"ts3ray run --out {shlex.quote(str(args.out))} --resume")
            raise
        finally:
            torch.set_num_threads(previous_threads)


def warn_protocol(config) -> None:
    """One line per constant used outside the regime it was tuned in (method/registry.py)."""
    from ts3ray.method.registry import protocol_warnings

    for line in protocol_warnings(config):
        warn(line)


def _train(args, config, out) -> int:
    """Train (or continue) the run of `config` into `out`; prints its levels at the end."""
    from ts3ray.run import LotteryRun

    from ts3ray.ticket_store import TicketStore, apply_ticket

    run = LotteryRun(config)
    prov = provenance.collect(str(run.device), argv=(["ts3ray", *args.command_argv]
                                                     if hasattr(args, "command_argv") else None))
    out.extra = {"provenance": prov}
    if getattr(args, "ticket", None) is not None:
        out.extra["ticket"] = {"file": args.ticket_file, "level": args.ticket.level,
                               **{k: args.ticket.metadata.get(k) for k in ("trial", "run_id")}}
        apply_ticket(run, args.ticket)
    run.tickets = TicketStore(str(out.path / "tickets"), config.run_id,
                              final=getattr(args, "ticket_weights", "none") == "final",
                              provenance=prov)
    if args.resume and out.checkpoint.exists():
        out.restore(run)
    if run.done:
        print(f"run {config.run_id} in {args.out} is already complete", file=sys.stderr)
        return 0
    progress = make_progress(run, quiet=args.quiet, terminal=sys.stderr.isatty())
    with progress:
        for record in run.epochs():
            progress.epoch_done(record)
            if run.done or run.global_epoch % args.checkpoint_every == 0:
                out.save(run)
    print(format_levels(run.level_rows))
    print(f"results in {args.out}/epochs.parquet and {args.out}/levels.parquet")
    return 0


class LineProgress:
    """Progress for logs and pipes: a line per finished IMP level, and a line per epoch at
    most every `every_s` seconds in between (a redrawn bar would write a line per redraw)."""

    def __init__(self, run, every_s: float = 60.0, stream=None):
        self.run, self.every_s = run, every_s
        self.stream = stream or sys.stderr
        self.last = time.monotonic()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def epoch_done(self, record) -> None:
        level_end = record["epoch"] == self.run.config.epochs
        if not level_end and time.monotonic() - self.last < self.every_s:
            return
        self.last = time.monotonic()
        what = (f"level {record['round']}/{self.run.config.rounds} done" if level_end
                else f"level {record['round']}/{self.run.config.rounds}")
        val = record["val_acc_sparse"]
        val_text = f" val {100 * val:.2f}%" if val == val else ""
        print(f"{what}: epoch {record['global_epoch']}/{self.run.total_epochs} "
              f"({record['stage']}), sparsity {100 * record['sparsity']:.1f}%, "
              f"test {100 * record['acc_sparse']:.2f}%{val_text}", file=self.stream, flush=True)


class BarProgress:
    """The tqdm bar of a terminal."""

    def __init__(self, run, disable: bool):
        from tqdm import tqdm

        self.run = run
        self.bar = tqdm(total=run.total_epochs, initial=run.global_epoch, disable=disable,
                        unit="epoch", dynamic_ncols=True)

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def epoch_done(self, record) -> None:
        self.bar.set_description(f"round {record['round']}/{self.run.config.rounds}")
        self.bar.set_postfix(epoch=record["epoch"], stage=record["stage"],
                             acc_S=f"{record['acc_sparse']:.4f}", refresh=False)
        self.bar.update(1)


def make_progress(run, *, quiet: bool, terminal: bool):
    return BarProgress(run, disable=quiet) if terminal or quiet else LineProgress(run)


def format_levels(rows) -> str:
    """One line per level: test accuracy of S at the last epoch (the paper's protocol), where a
    validation split exists at the epoch of best validation accuracy, and the mean of the last
    10 epochs (Co-teaching's and JoCoR's rule)."""
    def pct(value: float) -> str:
        return "      -" if value != value else f"{100 * value:6.2f}%"  # NaN: no such data

    # a method whose prediction is not S alone (DivideMix's ensemble) also shows acc_eval
    own_rule = any(r.get("acc_eval_last", r["acc_sparse_last"]) != r["acc_sparse_last"]
                   for r in rows)
    lines = ["round  sparsity  nonzero_params  acc_sparse_last  val_acc_sparse_last  "
             "acc_sparse_at_best_val  acc_sparse_tail_mean  acc_dense_last"
             + ("  acc_eval_last" if own_rule else "")]
    for r in rows:
        lines.append(
            f"{r['round']:>5}  {100 * r['sparsity']:7.2f}%  {r['nonzero_params']:>14}  "
            f"{pct(r['acc_sparse_last']):>15}  {pct(r['val_acc_sparse_last']):>19}  "
            f"{pct(r['acc_sparse_at_best_val']):>22}  {pct(r['acc_sparse_tail_mean']):>20}  "
            f"{pct(r['acc_dense_last']):>14}"
            + (f"  {pct(r['acc_eval_last']):>13}" if own_rule else "")
        )
    return "\n".join(lines)
