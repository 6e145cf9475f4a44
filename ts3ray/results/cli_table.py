"""`ts3ray table KIND RESULTS`: a paper-style table from Parquet results (no Ray, no torch).

Kinds (registry `TABLE_KINDS`): sensitivity (Table IX), sparsity (Tables VIII / XI),
compare (Tables I-III), importance (fANOVA / PED-ANOVA over a search sweep), pareto (the
accuracy-sparsity front, selected on validation accuracy), rungs (how well each IMP level's
validation accuracy ranks the trials as the last level's does: ASHA's premise).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from ts3ray.config import METHOD_PARAMS
from ts3ray.errors import ConfigError, UserError
from ts3ray.paths import check_output_file
from ts3ray.results.load import read_table
from ts3ray.results.pareto import add_front_arguments, parse_within, pareto_table
from ts3ray.results.render import RENDERERS
from ts3ray.results.rungs import rungs_table
from ts3ray.results.table_model import TableModel
from ts3ray.storage import write_text_atomic
from ts3ray.results.tables import (
    DEFAULT_METRIC, PAPER_LEVELS, REPORT_RULES, TableOptions, compare_table, realworld_table,
    sensitivity_table, sparsity_table,
)


def _importance(levels: pd.DataFrame, opts: TableOptions) -> TableModel:
    from ts3ray.results.importance import importance_table  # imports optuna

    return importance_table(levels, opts)


@dataclass(frozen=True)
class TableKind:
    build: Callable[[pd.DataFrame, TableOptions], TableModel]
    options: tuple[str, ...]  # kind-specific command-line options it reads
    help: str


TABLE_KINDS: dict[str, TableKind] = {
    "sensitivity": TableKind(sensitivity_table, ("base", "params", "report"),
                             "Table IX: a block per parameter, a column per setting"),
    "sparsity": TableKind(sparsity_table, ("rows", "report"),
                          "Tables VIII/XI: a row per variant/arch, a column per sparsity"),
    "compare": TableKind(compare_table, ("rows", "sparsity", "report"),
                         "Tables I-III: a row per method, a column per noise setting, params"),
    "importance": TableKind(_importance, ("params", "evaluator"),
                            "parameter importance of a search sweep (Optuna)"),
    "realworld": TableKind(realworld_table, ("sparsity",),
                           "Tables IV-VI: ANIMAL-10N, Clothing1M Best/Last, WebVision top-1/top-5"),
    "pareto": TableKind(pareto_table, ("select", "within"),
                        "the accuracy-sparsity front and the sparsest ticket within X points"),
    "rungs": TableKind(rungs_table, ("select",),
                       "whether an early level ranks trials as the last does (ASHA's premise)"),
}
KIND_OPTIONS = ("base", "params", "rows", "sparsity", "evaluator", "select", "within", "report")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", metavar="KIND", choices=list(TABLE_KINDS),
                        help=" | ".join(TABLE_KINDS))
    parser.add_argument("results", metavar="RESULTS",
                        help="sweep dir, its results/ dir, a levels dataset, a run dir or a .parquet file")
    parser.add_argument("--format", choices=list(RENDERERS), default="md")
    parser.add_argument("--metric", default=DEFAULT_METRIC,
                        help="a numeric levels column (default: acc_sparse_last)")
    parser.add_argument("--out", help="write here (atomically) instead of stdout")
    parser.add_argument("--base", help="sensitivity: base configuration, e.g. lam=0.5,tau=0.7")
    parser.add_argument("--params", help="sensitivity/importance: parameters, default lam,tau,gamma,e1,e2")
    parser.add_argument("--rows", help="sparsity/compare: row key(s), e.g. variant | arch | "
                                       "arch,variant (compare default: method)")
    parser.add_argument("--sparsity", help="compare: the level nearest this sparsity (87.5 or "
                                           "0.875), a block per level of a list (0,87.5), or "
                                           "paper (competitors dense, TS3-Net sparse); "
                                           "default: each trial's highest level")
    parser.add_argument("--evaluator", help="importance: fanova (default) | ped-anova")
    parser.add_argument("--report", choices=list(REPORT_RULES),
                        help="sensitivity/sparsity/compare: which epoch of each level: last (the "
                             "paper's, default), best_val (best validation epoch), tail_mean "
                             "(mean of the last 10 epochs)")
    add_front_arguments(parser)


def parse_base(text: str) -> dict[str, float]:
    allowed = f"NAME=NUMBER pairs separated by commas, NAME one of {', '.join(METHOD_PARAMS)}"
    base = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            if not sep or name.strip() not in METHOD_PARAMS:
                raise ValueError
            base[name.strip()] = float(value)
        except ValueError:
            raise ConfigError("--base", item, allowed) from None
    return base


def parse_params(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [n for n in names if n not in METHOD_PARAMS]
    if bad or not names:
        raise ConfigError("--params", text, f"a comma list of {', '.join(METHOD_PARAMS)}")
    return tuple(dict.fromkeys(names))


def parse_rows(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if not names:
        raise ConfigError("--rows", text, "one or more column names, e.g. variant or arch,variant")
    return names


def parse_sparsity(text: str) -> float | tuple[float, ...] | str:
    """'87.5' (percent) or '0.875' (fraction) -> 0.875; '0,87.5' -> (0.0, 0.875), a block per
    level; 'paper' -> the layout of Tables I-III (competitors dense, TS3-Net sparse)."""
    if text.strip().lower() == PAPER_LEVELS:
        return PAPER_LEVELS
    levels = []
    for item in [t for t in text.split(",") if t.strip()] or [""]:
        try:
            value = float(item)
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= 100.0:
            raise ConfigError("--sparsity", text, "a sparsity in percent (87.5) or as a "
                              "fraction (0.875), a comma list of them, or 'paper'")
        levels.append(value / 100.0 if value > 1.0 else value)
    return levels[0] if len(levels) == 1 else tuple(levels)


PARSERS: dict[str, Callable[[str], object]] = {
    "base": parse_base, "params": parse_params, "rows": parse_rows,
    "sparsity": parse_sparsity, "evaluator": str, "select": str, "within": parse_within,
    "report": str,
}


def table_options(args: argparse.Namespace) -> TableOptions:
    """TableOptions from the command line; an option the kind does not read is an error."""
    kind = TABLE_KINDS[args.kind]
    given = {name: getattr(args, name) for name in KIND_OPTIONS if getattr(args, name) is not None}
    for name in given:
        if name not in kind.options:
            raise UserError(f"--{name} does not apply to `table {args.kind}` "
                            f"(it takes: {', '.join('--' + o for o in kind.options)})")
    parsed = {name: PARSERS[name](value) for name, value in given.items()}
    return TableOptions(metric=args.metric, **parsed)


def main(args: argparse.Namespace) -> int:
    if args.out:
        check_output_file(args.out, "--out")
    opts = table_options(args)
    model = TABLE_KINDS[args.kind].build(read_table(args.results, "levels"), opts)
    text = RENDERERS[args.format](model)
    if args.out:
        write_text_atomic(args.out, text)
    else:
        sys.stdout.write(text)
    return 0
