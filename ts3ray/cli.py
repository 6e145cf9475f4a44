"""The ``ts3ray`` command line: each sub-command lives in its own module.

Modules are imported lazily so that ``ts3ray table`` does not pay for importing Ray or
torch. Each module provides ``add_arguments(parser)`` and ``main(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ts3ray.errors import UserError

# sub-command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("ts3ray.run_cli", "one lottery run (Algorithm 2) of TS3-Net or a competitor, no Ray"),
    "sweep": ("ts3ray.tune.cli", "a Ray Tune sweep: sensitivity | sparsity | grid | search | compare"),
    "table": ("ts3ray.results.cli_table", "a table from Parquet results"),
    "plot": ("ts3ray.results.cli_plot", "a figure from Parquet results"),
    "data": ("ts3ray.data.cli", "dataset utilities (offline fetch)"),
    "cluster": ("ts3ray.cluster", "cluster file utilities (check)"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ts3ray", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name == wanted:  # only the chosen command's module is imported
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args._main(args) or 0)
    except UserError as err:
        print(f"ts3ray: error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
