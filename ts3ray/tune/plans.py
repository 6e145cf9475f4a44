"""The three sweeps and their presets: what trials to run, as plain config dicts.

* sensitivity — Table IX (Sec. IV-C 2): one parameter at a time around the base
  configuration; duplicates of the base run once (16 distinct configurations per setting).
* sparsity — Tables VIII / XI: p_f in {.3, .4, .5, .6} with R = 3; every IMP level is
  recorded, so 4 trials give the 12 sparsity levels, per variant and architecture.
* search — Optuna over lam, tau, gamma, E1, E2 (search.py), usually with ASHA.

`--preset quick` runs on the bundled `digits` data with shortened schedules but whole grids;
`--preset paper` uses the paper's settings (the dataset's defaults from config.py).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Callable

from ts3ray.config import make_config
from ts3ray.errors import UserError

# Table IX's one-at-a-time grids (Sec. IV-C 2).
SENSITIVITY_GRID: dict[str, tuple] = {
    "lam": (0.0, 0.5, 0.7, 1.0),
    "tau": (0.0, 0.3, 0.5, 0.7),
    "gamma": (0.0, 0.1, 0.5, 1.0),
    "e1": (10, 15, 20, 30),
    "e2": (30, 45, 60, 80),
}
# Sec. IV-A: lam 0.5, tau 0.7, gamma 0.5; the CIFAR schedule E1 = 20, E2 = 60.
PAPER_METHOD = {"lam": 0.5, "tau": 0.7, "gamma": 0.5}
PRUNE_FRACTIONS = (0.3, 0.4, 0.5, 0.6)  # Sec. IV-A: p_f; R = 3 gives the 12 levels

QUICK_DATA = {"dataset": "digits", "arch": "lenet_300_100", "noise": "sym", "noise_rate": 0.4}


@dataclass(frozen=True)
class Preset:
    """Config values under the user's own, default settings and sweep options."""

    values: dict[str, Any]
    settings: str
    checkpoint_every: int = 1
    num_samples: int = 16
    grace_period: int = 10


# E >= max(E1) + E2 = 30 + 60 and E1 + max(E2) = 20 + 80: 100 epochs hold every grid value.
PRESETS: dict[str, dict[str, Preset]] = {
    "sensitivity": {
        "quick": Preset(
            {**QUICK_DATA, "epochs": 100, "e1": 20, "e2": 60, "rounds": 1,
             "prune_fraction": 0.5},
            settings="digits:sym:0.4", checkpoint_every=10),
        "paper": Preset({"prune_fraction": 0.5, "rounds": 3},  # Sec. IV-C 2: 87.5 %
                        settings="cifar10:sym:0.4,cifar100:sym:0.4", checkpoint_every=5),
    },
    "sparsity": {
        "quick": Preset({**QUICK_DATA, "epochs": 12, "e1": 3, "e2": 6, "rounds": 3},
                        settings="digits:sym:0.4", checkpoint_every=4),
        "paper": Preset({"rounds": 3}, settings="cifar10:sym:0.4", checkpoint_every=5),
    },
    "search": {
        "quick": Preset({**QUICK_DATA, "epochs": 20, "e1": 5, "e2": 10, "rounds": 1,
                         "prune_fraction": 0.5},
                        settings="digits:sym:0.4", checkpoint_every=5, num_samples=12,
                        grace_period=5),
        "paper": Preset({"prune_fraction": 0.5, "rounds": 3}, settings="cifar10:sym:0.4",
                        checkpoint_every=5, num_samples=32, grace_period=40),
    },
}


@dataclass
class SweepPlan:
    """Trials of a sweep: a grid of per-trial values, or a search around a base config."""

    sweep: str
    common: dict[str, Any]  # full, validated config values shared by all trials
    cells: list[dict[str, Any]] = field(default_factory=list)  # grid: values per trial
    search: bool = False
    table: str | None = None  # the results table kind printed at the end
    base_point: dict[str, Any] = field(default_factory=dict)  # sensitivity: the centre

    @property
    def num_trials(self) -> int:
        return len(self.cells)


# -- parsing ----------------------------------------------------------------------------
def parse_settings(text: str) -> list[dict[str, Any]]:
    """`cifar10:sym:0.4,cifar100:sym:0.4` -> [{dataset, noise, noise_rate}, ...]."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        parts = item.split(":")
        if len(parts) != 3:
            raise UserError(f"--settings item {item!r} is not allowed: DATASET:NOISE:RATE, "
                            "e.g. cifar10:sym:0.4")
        out.append({"dataset": parts[0], "noise": parts[1], "noise_rate": parts[2]})
    if not out:
        raise UserError(f"--settings={text!r} is not allowed: at least one DATASET:NOISE:RATE")
    return out


def parse_list(option: str, text: str, kind: Callable = str) -> list:
    try:
        items = [kind(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{option}={text!r} is not allowed: a comma-separated list") from None
    if not items:
        raise UserError(f"{option}={text!r} is not allowed: an empty list")
    return items


def full_config(values: dict[str, Any]) -> dict[str, Any]:
    """Validated values of every RunConfig field (raises ConfigError / DataMissingError)."""
    return make_config(values).to_dict()


def split_common(configs: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Values shared by all configs, and per config the values that differ."""
    keys = configs[0].keys()
    varying = [k for k in keys if any(c[k] != configs[0][k] for c in configs)]
    common = {k: v for k, v in configs[0].items() if k not in varying}
    return common, [{k: c[k] for k in varying} for c in configs]


def unique(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop repeated configurations, keeping the first occurrence's order."""
    seen, out = set(), []
    for c in configs:
        key = tuple(sorted((k, repr(v)) for k, v in c.items()))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


# -- the sweeps -------------------------------------------------------------------------
def _grid(sweep: str, configs: list[dict[str, Any]], table: str) -> SweepPlan:
    configs = unique([full_config(c) for c in configs])
    common, cells = split_common(configs)
    return SweepPlan(sweep=sweep, common=common, cells=cells, table=table)


def sensitivity_plan(args, base: dict[str, Any]) -> SweepPlan:
    params = parse_list("--params", args.params)
    unknown = [p for p in params if p not in SENSITIVITY_GRID]
    if unknown:
        raise UserError(f"--params {unknown[0]!r} is not allowed: one of "
                        f"{', '.join(SENSITIVITY_GRID)}")
    configs = []
    for setting in parse_settings(args.settings):
        start = {**base, **setting}
        for seed in args.seed_list:
            for param in params:
                for value in SENSITIVITY_GRID[param]:
                    configs.append({**start, "seed": seed, param: value})
    plan = _grid("sensitivity", configs, table="sensitivity")
    centre = full_config({**base, **parse_settings(args.settings)[0]})
    plan.base_point = {p: centre[p] for p in SENSITIVITY_GRID}
    return plan


def sparsity_plan(args, base: dict[str, Any]) -> SweepPlan:
    fractions = parse_list("--prune-fractions", args.prune_fractions, float)
    variants = parse_list("--variants", args.variants)
    archs = parse_list("--archs", args.archs) if args.archs else [None]
    configs = []
    for setting in parse_settings(args.settings):
        for arch in archs:
            for variant in variants:
                for seed in args.seed_list:
                    for fraction in fractions:
                        values = {**base, **setting, "variant": variant, "seed": seed,
                                  "prune_fraction": fraction}
                        if arch is not None:
                            values["arch"] = arch
                        configs.append(values)
    return _grid("sparsity", configs, table="sparsity")


def search_plan(args, base: dict[str, Any]) -> SweepPlan:
    settings = parse_settings(args.settings)
    if len(settings) != 1:
        raise UserError(f"--settings={args.settings!r} is not allowed for a search: one setting")
    common = full_config({**base, **settings[0], "seed": args.seed_list[0]})
    return SweepPlan(sweep="search", common=common, search=True)


def _sensitivity_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=",".join(SENSITIVITY_GRID),
                        help="Table IX blocks to run (default: all of lam,tau,gamma,e1,e2)")


def _sparsity_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prune-fractions", default=",".join(map(str, PRUNE_FRACTIONS)),
                        help="p_f values (default 0.3,0.4,0.5,0.6; R from rounds=)")
    parser.add_argument("--variants", default="full,warm", help="variants (default full,warm)")
    parser.add_argument("--archs", default="",
                        help="architectures (default: the dataset's paper architecture)")


def _search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-samples", type=int, help="trials (default: the preset's)")
    parser.add_argument("--sampler", default="tpe", help="tpe (seeded, default) | random | qmc")
    parser.add_argument("--optuna-storage", metavar="PATH_OR_URL",
                        help="keep the Optuna study: a journal file path or an RDB URL")


@dataclass(frozen=True)
class SweepKind:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    plan: Callable[[Any, dict[str, Any]], SweepPlan]
    default_scheduler: str = "none"


SWEEPS: dict[str, SweepKind] = {
    "sensitivity": SweepKind("Table IX: one-at-a-time grids of lam, tau, gamma, E1, E2",
                             _sensitivity_arguments, sensitivity_plan),
    "sparsity": SweepKind("Tables VIII/XI: p_f x variants x architectures, every IMP level",
                          _sparsity_arguments, sparsity_plan),
    "search": SweepKind("Optuna (TPE) over lam, tau, gamma, E1, E2 with ASHA",
                        _search_arguments, search_plan, default_scheduler="asha"),
}
