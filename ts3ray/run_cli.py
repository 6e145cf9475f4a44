"""`ts3ray run`: one lottery run (any method) into an output directory, resumable.

DIR/config.json          the validated configuration (and its run_id)
DIR/checkpoint.pt        full state after the latest epoch (torch.load(weights_only=True))
DIR/epochs.parquet       one row per (round, epoch)
DIR/levels.parquet       one row per sparsity level
The Parquet files are rewritten atomically with every checkpoint, so after a crash they
hold exactly the epochs the checkpoint holds, and `--resume` continues from there.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from ts3ray.config import load_config_file, make_config, parse_overrides
from ts3ray.errors import UserError
from ts3ray.results.output import write_atomic as write_file_atomic
from ts3ray.results.output import write_text_atomic
from ts3ray.results.writer import epoch_table, level_table, write_atomic

CHECKPOINT = "checkpoint.pt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config values")
    parser.add_argument("--config", help="YAML/JSON file of config values (key=value wins)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--checkpoint-every", type=int, default=1, metavar="K",
                        help="save state and Parquet every K epochs (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads (default: the CPUs this process may use; "
                             "1 is faster for small nets on a CPU shared with other work)")
    parser.add_argument("--download", action="store_true",
                        help="let torchvision download a missing dataset into data_root")


def build_config(args):
    values = load_config_file(args.config) if args.config else {}
    values.update(parse_overrides(args.overrides))
    if getattr(args, "download", False):  # fetch first, then validate as usual
        from ts3ray.data import load_dataset

        config = make_config(values, check_files=False)
        load_dataset(config.dataset, config.data_root, download=True)
    return make_config(values)


class RunDirectory:
    """The files of one run; every write is atomic (temporary file, then rename)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    def existing_run_id(self) -> str | None:
        """The run this directory holds, None when empty or new; UserError if it holds
        something else (a file, another tool's config.json)."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path} is a file, not a directory")
        meta = self.path / "config.json"
        if not meta.exists():
            return None
        try:
            return json.loads(meta.read_text())["run_id"]
        except (ValueError, KeyError, TypeError):
            raise UserError(f"--out {self.path} holds a config.json that is not a ts3ray run's; "
                            "choose another --out") from None

    def load_state(self):
        return torch.load(self.checkpoint, map_location="cpu", weights_only=True)

    def save(self, run) -> None:
        config_values = run.config.to_dict()
        write_text_atomic(self.path / "config.json", json.dumps(
            {"run_id": run.config.run_id, **config_values}, indent=2, default=list))
        write_file_atomic(self.checkpoint, lambda tmp: torch.save(run.state_dict(), tmp))
        write_atomic(epoch_table(run.epoch_rows, config_values), str(self.path / "epochs.parquet"))
        write_atomic(level_table(run.level_rows, config_values), str(self.path / "levels.parquet"))


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def main(args) -> int:
    from tqdm import tqdm

    from ts3ray.run import LotteryRun

    config = build_config(args)  # validation happens before anything is written
    if args.checkpoint_every < 1:
        raise UserError(f"--checkpoint-every={args.checkpoint_every} is not allowed: K >= 1")
    out = RunDirectory(args.out)
    existing = out.existing_run_id()
    if existing is not None and existing != config.run_id:
        raise UserError(
            f"--out {args.out} holds run {existing} with a different configuration; "
            "choose another --out"
        )
    if existing is not None and not args.resume and out.checkpoint.exists():
        raise UserError(
            f"--out {args.out} already holds run {existing}; pass --resume to continue it "
            "or choose another --out"
        )
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads={args.threads} is not allowed: N >= 1")
    torch.set_num_threads(args.threads or available_cpus())
    run = LotteryRun(config)
    if args.resume and out.checkpoint.exists():
        run.load_state_dict(out.load_state())
    if run.done:
        print(f"run {config.run_id} in {args.out} is already complete", file=sys.stderr)
        return 0
    bar = tqdm(total=run.total_epochs, initial=run.global_epoch, disable=args.quiet,
               unit="epoch", dynamic_ncols=True)
    with bar:
        for record in run.epochs():
            bar.set_description(f"round {record['round']}/{config.rounds}")
            bar.set_postfix(epoch=record["epoch"], stage=record["stage"],
                            acc_S=f"{record['acc_sparse']:.4f}", refresh=False)
            bar.update(1)
            if run.done or run.global_epoch % args.checkpoint_every == 0:
                out.save(run)
    print(format_levels(run.level_rows))
    print(f"results in {args.out}/epochs.parquet and {args.out}/levels.parquet")
    return 0


def format_levels(rows) -> str:
    """One line per level: test accuracy of S at the last epoch (the paper's protocol) and,
    where a validation split exists, at the epoch of best validation accuracy."""
    def pct(value: float) -> str:
        return "      -" if value != value else f"{100 * value:6.2f}%"  # NaN: no such data

    # a method whose prediction is not S alone (DivideMix's ensemble) also shows acc_eval
    own_rule = any(r.get("acc_eval_last", r["acc_sparse_last"]) != r["acc_sparse_last"]
                   for r in rows)
    lines = ["round  sparsity  nonzero_params  acc_sparse_last  val_acc_sparse_last  "
             "acc_sparse_at_best_val  acc_dense_last" + ("  acc_eval_last" if own_rule else "")]
    for r in rows:
        lines.append(
            f"{r['round']:>5}  {100 * r['sparsity']:7.2f}%  {r['nonzero_params']:>14}  "
            f"{pct(r['acc_sparse_last']):>15}  {pct(r['val_acc_sparse_last']):>19}  "
            f"{pct(r['acc_sparse_at_best_val']):>22}  {pct(r['acc_dense_last']):>14}"
            + (f"  {pct(r['acc_eval_last']):>13}" if own_rule else "")
        )
    return "\n".join(lines)
