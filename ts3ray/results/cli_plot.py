"""`ts3ray plot KIND RESULTS --out FILE`: a paper-style figure from Parquet results.

Kinds (registry `PLOT_KINDS`): sparsity (Fig. 4), compare (Figs. 7-10), curves (Figs. 3, 5, 6),
precision (Fig. 11), search (parallel coordinates of a search sweep), pareto (the
accuracy-sparsity front). Headless (Agg).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
from matplotlib.figure import Figure

from ts3ray.errors import ConfigError, UserError
from ts3ray.paths import check_output_file
from ts3ray.results.load import read_table
from ts3ray.storage import write_atomic
from ts3ray.results.pareto import add_front_arguments, parse_within, plot_pareto
from ts3ray.results.plots import (
    PlotOptions, parse_round, plot_compare, plot_curves, plot_precision, plot_search,
    plot_sparsity,
)
from ts3ray.results.tables import DEFAULT_METRIC

FORMATS = ("png", "pdf", "svg")


@dataclass(frozen=True)
class PlotKind:
    draw: Callable[[pd.DataFrame, PlotOptions], Figure]
    table: str  # which Parquet table it reads
    options: tuple[str, ...]  # kind-specific command-line options it reads
    help: str


PLOT_KINDS: dict[str, PlotKind] = {
    "sparsity": PlotKind(plot_sparsity, "levels", ("metric", "by"),
                         "accuracy vs sparsity per variant/arch"),
    "compare": PlotKind(plot_compare, "levels", ("metric",),
                        "accuracy vs sparsity, one line per method (Figs. 7-10)"),
    "curves": PlotKind(plot_curves, "epochs", ("by", "round", "round_lines"),
                       "test accuracy of S and D vs epoch"),
    "precision": PlotKind(plot_precision, "epochs", ("by", "round"),
                          "label precision and relabel accuracy vs epoch"),
    "search": PlotKind(plot_search, "levels", ("metric",),
                       "parallel coordinates of lam, tau, gamma, e1, e2 by metric"),
    "pareto": PlotKind(plot_pareto, "levels", ("select", "within"),
                       "the accuracy-sparsity front (validation selects, test reported)"),
}
KIND_OPTIONS = ("metric", "by", "round", "round_lines", "select", "within")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", metavar="KIND", choices=list(PLOT_KINDS),
                        help=" | ".join(PLOT_KINDS))
    parser.add_argument("results", metavar="RESULTS",
                        help="sweep dir, its results/ dir, a dataset dir, a run dir or a .parquet file")
    parser.add_argument("--out", required=True, help="FILE.png | FILE.pdf | FILE.svg")
    parser.add_argument("--metric", help=f"sparsity/compare/search: a levels column (default "
                                         f"{DEFAULT_METRIC})")
    parser.add_argument("--by", help="line grouping: variant (default), arch, variant,arch, trial")
    parser.add_argument("--round", help="curves/precision: one IMP round (integer) or 'last'")
    parser.add_argument("--round-lines", dest="round_lines", action="store_true", default=None,
                        help="curves: vertical lines at IMP round boundaries")
    parser.add_argument("--dpi", type=int, default=150, help="png resolution, 10..1200 (default 150)")
    add_front_arguments(parser)


def plot_options(args: argparse.Namespace) -> PlotOptions:
    kind = PLOT_KINDS[args.kind]
    given = {name: getattr(args, name) for name in KIND_OPTIONS if getattr(args, name) is not None}
    for name in given:
        if name not in kind.options:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} does not apply to `plot {args.kind}` (it takes: "
                            f"{', '.join('--' + o.replace('_', '-') for o in kind.options)})")
    if "by" in given:
        given["by"] = tuple(s.strip() for s in given["by"].split(",") if s.strip()) or ("variant",)
    if "round" in given:
        given["round"] = parse_round(given["round"])
    if "within" in given:
        given["within"] = parse_within(given["within"])
    return PlotOptions(**given)


def output_format(out: str) -> str:
    suffix = Path(out).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ConfigError("--out", out, f"a file name ending in {', '.join('.' + f for f in FORMATS)}")
    return suffix


DPI_RANGE = (10, 1200)  # 1200 dpi: a 6.4 x 4.8 in figure is 7680 x 5760 pixels


def check_dpi(dpi: int) -> None:
    low, high = DPI_RANGE
    if not low <= dpi <= high:
        raise ConfigError("--dpi", dpi, f"an integer from {low} to {high}")


def draw(args: argparse.Namespace) -> None:
    """Draw and write the figure (the Python API calls this too)."""
    fmt = output_format(args.out)
    check_dpi(args.dpi)
    check_output_file(args.out, "--out")
    opts = plot_options(args)
    kind = PLOT_KINDS[args.kind]
    fig = kind.draw(read_table(args.results, kind.table), opts)
    write_atomic(args.out, lambda stream: fig.savefig(stream, format=fmt, dpi=args.dpi))


def main(args: argparse.Namespace) -> int:
    draw(args)
    print(f"wrote {args.out} ({args.kind} of {args.results})")
    return 0
