"""The sweeps and their presets: what trials to run, as plain config dicts.

* sensitivity — Table IX (Sec. IV-C 2): one parameter at a time around the base
  configuration; duplicates of the base run once (16 distinct configurations per setting).
* sparsity — Tables VIII / XI: p_f in {.3, .4, .5, .6} with R = 3; every IMP level is
  recorded, so 4 trials give the 12 sparsity levels, per variant and architecture.
* grid — a full-factorial grid of values given per parameter (`--grid lam=0,.5,1
  tau=.3,.7`), optionally with grouped level-aware ASHA (scheduler.py).
* search — Optuna over lam, tau, gamma, E1, E2 (search.py), with ASHA by default.
* compare — Tables I-III / Figs. 7-10: methods x settings x seeds, each trial one lottery run
  of one method (ts3ray/method/registry.py) recording every IMP level (0% = the dense run).

Sweeps that keep every cell (sensitivity, sparsity, a grid without early stopping) follow the
paper's protocol: the whole training set is trained on (val_fraction = 0). Sweeps that
*choose* (search, any sweep with ASHA) hold out CHOOSING_VAL_FRACTION of the noisy training
set unless the user sets val_fraction, and choose on validation accuracy; choosing on test
accuracy needs `--objective test` and is recorded in every row (`selected_on`).

`--preset quick` runs on the bundled `digits` data with shortened schedules but whole grids;
`--preset paper` uses the paper's settings (the dataset's defaults from config.py).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Callable

import itertools
import math

from ts3ray.config import (DATASET_DEFAULTS, METHOD_NAMES, METHOD_PARAMS, SELECTION_COLUMNS, make_config,
                           parse_value)
from ts3ray.errors import UserError
from ts3ray.method.names import PROTOCOLS
from ts3ray.values import INT_LIMIT

MAX_TRIALS = 10_000  # trials of one sweep; counted before any trial's config is built
CHOOSING_VAL_FRACTION = 0.1  # held out by sweeps that choose, unless val_fraction is given
PRUNE_FRACTIONS = (0.3, 0.4, 0.5, 0.6)  # Sec. IV-A: p_f; R = 3 gives the 12 levels

QUICK_DATA = {"dataset": "digits", "arch": "lenet_300_100", "noise": "sym", "noise_rate": 0.4}


@dataclass(frozen=True)
class Preset:
    """Config values under the user's own, default settings and sweep options."""

    values: dict[str, Any]
    settings: str
    checkpoint_every: int | None = None  # epochs; None: IMP level ends and the timer
    num_samples: int = 16
    grace_period: int = 1  # ASHA: IMP levels a trial completes before it may be stopped
    grid: str = ""  # grid sweep: the default --grid


# E >= max(E1) + E2 = 30 + 60 and E1 + max(E2) = 20 + 80: 100 epochs hold every grid value.
PRESETS: dict[str, dict[str, Preset]] = {
    "sensitivity": {
        "quick": Preset(
            {**QUICK_DATA, "epochs": 100, "e1": 20, "e2": 60, "rounds": 1,
             "prune_fraction": 0.5},
            settings="digits:sym:0.4"),
        "paper": Preset({"prune_fraction": 0.5, "rounds": 3},  # Sec. IV-C 2: 87.5 %
                        settings="cifar10:sym:0.4,cifar100:sym:0.4"),
    },
    "sparsity": {
        "quick": Preset({**QUICK_DATA, "epochs": 12, "e1": 3, "e2": 6, "rounds": 3},
                        settings="digits:sym:0.4"),
        "paper": Preset({"rounds": 3}, settings="cifar10:sym:0.4"),
    },
    "grid": {
        "quick": Preset({**QUICK_DATA, "epochs": 10, "e1": 3, "e2": 4, "rounds": 3,
                         "prune_fraction": 0.5},
                        settings="digits:sym:0.4",
                        grid="lam=0,0.5,1 tau=0.5,0.9"),
        "paper": Preset({"prune_fraction": 0.5, "rounds": 3}, settings="cifar10:sym:0.4", grid="lam=0,0.5,1 tau=0.3,0.5,0.7,0.9"),
    },
    "search": {
        "quick": Preset({**QUICK_DATA, "epochs": 20, "e1": 5, "e2": 10, "rounds": 1,
                         "prune_fraction": 0.5},
                        settings="digits:sym:0.4", num_samples=12),
        "paper": Preset({"prune_fraction": 0.5, "rounds": 3}, settings="cifar10:sym:0.4", num_samples=32),
    },
    # Sec. IV-B: p_f 0.5, R 3 (87.5%); Table I's settings; quick: digits, a schedule of half
    # MNIST's (E/E1/E2 = 20/5/10), every method
    "compare": {
        "quick": Preset({**QUICK_DATA, "epochs": 20, "e1": 5, "e2": 10, "rounds": 3,
                         "prune_fraction": 0.5},
                        settings="digits:sym:0.4"),
        "paper": Preset({"prune_fraction": 0.5, "rounds": 3},
                        settings="mnist:sym:0.2,mnist:sym:0.4,mnist:asym:0.2"),
    },
}
# compare: per-method options under the user's --method-options. quick: the warm-up and
# ramp lengths scaled with its halved schedule (the paper preset keeps the published ones)
COMPARE_METHOD_OPTIONS = {
    "quick": {"dividemix": "warmup_epochs=5", "coteaching": "t_k=5", "jocor": "t_k=5"},
    "paper": {},
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
    searched: tuple[str, ...] = ()  # method parameters varied by the sweep (ASHA groups)
    selected_on: str | None = None  # the selection signal of a sweep that chooses
    space: Any = None  # a search's space (search.TunableSpace); None: TS3-Net's five
    arrays: tuple[tuple[int, ...], ...] = ()  # --fuse: cell indices per trial (fusing.py)

    @property
    def num_trials(self) -> int:
        return len(self.cells)


# -- parsing ----------------------------------------------------------------------------
SETTING_KEYS = ("dataset", "noise", "noise_rate")  # a sweep's --settings DATASET:NOISE:RATE
OWNED_KEYS = {**{k: "--settings" for k in SETTING_KEYS}, "seed": "--seeds"}


def refuse_owned_keys(values: dict[str, Any], source: str, settings: list[dict[str, Any]],
                      seeds: list[int]) -> None:
    """A key=value or --config value of a sweep for a key that --settings or --seeds sets in
    every cell would be lost (the cell's value wins): refused unless every cell has it."""
    if not any(key in values for key in OWNED_KEYS):
        return
    cells = {"seed": [str(s) for s in seeds],
             **{k: [str(parse_value(k, s[k])) for s in settings] for k in SETTING_KEYS}}
    for key, option in OWNED_KEYS.items():
        if key in values and cells[key] != [str(parse_value(key, values[key]))]:
            now = ",".join(cells[key]) if key == "seed" else ",".join(
                ":".join(str(s[k]) for k in SETTING_KEYS) for s in settings)
            use = (f"--seeds {values[key]}" if key == "seed" else
                   "--settings " + ":".join(str(values[key]) if k == key else str(settings[0][k])
                                            for k in SETTING_KEYS))
            raise UserError(f"{key}={values[key]} is not allowed as {source} of a sweep: its "
                            f"{'seeds' if key == 'seed' else 'settings'} are {option} (now "
                            f"{now}); use {use}")


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
    """`a,b,c` typed by `kind`: an empty item (`a,,c`) or an item twice is refused."""
    words = [v.strip() for v in text.split(",")]
    if not any(words):
        raise UserError(f"{option}={text!r} is not allowed: an empty list")
    if "" in words:
        raise UserError(f"{option}={text!r} is not allowed: an empty item between commas; "
                        "V1,V2,... with one comma between values")
    try:
        items = [kind(v) for v in words]
    except ValueError:
        raise UserError(f"{option}={text!r} is not allowed: a comma-separated list") from None
    for word, item in zip(words, items):
        if isinstance(item, float) and not math.isfinite(item) or isinstance(item, int) and not (
                -INT_LIMIT < item < INT_LIMIT):
            raise UserError(f"{option} {word!r} is not allowed: a finite number (it reads as "
                            f"{item if isinstance(item, float) else 'an integer beyond 2**63'})")
    _refuse_repeats(option, words, items)
    return items


def _refuse_repeats(option: str, words: list[str], items: list) -> None:
    """One line naming the first value given twice (as text, or equal once parsed)."""
    seen: dict[Any, str] = {}
    for word, item in zip(words, items):
        key = repr(item)
        if key in seen:
            same = f" (equal to {seen[key]!r})" if seen[key] != word else ""
            raise UserError(f"{option} {word!r} is given twice{same}: each value once")
        seen[key] = word


def parse_names(option: str, text: str, allowed) -> list[str]:
    """A comma-separated list whose every item must be one of `allowed` (a registry's names)."""
    names = parse_list(option, text)
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise UserError(f"{option} {unknown[0]!r} is not allowed: one of {', '.join(allowed)}")
    return names


CHOOSING = "_choosing_val_fraction"  # carried in a plan's base values (apply_selection)


GIVEN = "_given_keys"  # carried in a plan's base values: the keys the user gave (base_values)


def with_given(values: dict[str, Any], keys) -> dict[str, Any]:
    """`values` with `keys` added to the keys the user gave (a sweep's own axes count)."""
    return {**values, GIVEN: frozenset(values.get(GIVEN, ())) | frozenset(keys)}


def full_config(values: dict[str, Any], check_files: bool = True, given=None) -> dict[str, Any]:
    """Validated values of every RunConfig field (raises ConfigError / DataMissingError).
    A choosing sweep's hold-out applies where neither the user nor the dataset's defaults
    (MNIST: 1/6, the paper's 50,000 training images) set val_fraction. A key the user gave
    (GIVEN; else `given`; else every key) with no effect in the result is refused."""
    values = dict(values)
    choosing = values.pop(CHOOSING, None)
    marked = values.pop(GIVEN, None)
    given = marked if marked is not None else given
    if choosing and "val_fraction" not in values:
        defaults = DATASET_DEFAULTS.get(values.get("dataset", "digits"), {})
        values["val_fraction"] = defaults.get("val_fraction") or choosing
    return make_config(values, check_files=check_files, given=given).to_dict()


def full_configs(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate every configuration, checking each dataset's files once (grids of 10,000)."""
    out = [full_config(c, check_files=False) for c in configs]
    checked = set()
    for c in out:
        if (c["dataset"], c["data_root"]) not in checked:
            checked.add((c["dataset"], c["data_root"]))
            full_config(c, given=())  # checked above; now its files
    return out


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


def check_trial_count(sweep: str, factors: dict[str, int]) -> int:
    """The sweep's trial count, a product of list lengths, refused over MAX_TRIALS before
    one configuration is materialised (a 10^7-cell grid costs nothing to refuse)."""
    count = math.prod(factors.values())
    if count > MAX_TRIALS:
        how = " x ".join(f"{n} {what}" for what, n in factors.items())
        raise UserError(f"the {sweep} sweep has {count:,} trials ({how}): at most "
                        f"{MAX_TRIALS:,} per sweep; narrow it, or split it into sweeps")
    return count


# -- the sweeps -------------------------------------------------------------------------
def _grid(sweep: str, configs: list[dict[str, Any]], table: str | None,
          searched: tuple[str, ...] = ()) -> SweepPlan:
    configs = unique(full_configs(configs))
    common, cells = split_common(configs)
    return SweepPlan(sweep=sweep, common=common, cells=cells, table=table, searched=searched)


def sensitivity_plan(args, base: dict[str, Any]) -> SweepPlan:
    params = parse_names("--params", args.params, METHOD_PARAMS)
    settings = parse_settings(args.settings)
    check_trial_count("sensitivity", {"settings": len(settings), "seeds": len(args.seed_list),
                                      "values": sum(len(METHOD_PARAMS[p].table_ix) for p in params)})
    configs = []
    base = with_given(base, params)
    for setting in settings:
        start = {**base, **setting}
        for seed in args.seed_list:
            for param in params:
                for value in METHOD_PARAMS[param].table_ix:
                    configs.append({**start, "seed": seed, param: value})
    plan = _grid("sensitivity", configs, table="sensitivity", searched=tuple(params))
    centre = full_config({**base, **parse_settings(args.settings)[0]})
    plan.base_point = {p: centre[p] for p in METHOD_PARAMS}
    return plan


def sparsity_plan(args, base: dict[str, Any]) -> SweepPlan:
    fractions = parse_list("--prune-fractions", args.prune_fractions, float)
    variants = parse_list("--variants", args.variants)
    archs = parse_list("--archs", args.archs) if args.archs else [None]
    settings = parse_settings(args.settings)
    check_trial_count("sparsity", {"settings": len(settings), "archs": len(archs),
                                   "variants": len(variants), "seeds": len(args.seed_list),
                                   "prune fractions": len(fractions)})
    configs = []
    base = with_given(base, ("prune_fraction",))
    for setting in settings:
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


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """`["lam=0,.5,1", "tau=.3,.7"]` -> {"lam": [0.0, 0.5, 1.0], "tau": [0.3, 0.7]}: values
    typed by config field (an unknown key or a bad value is one line)."""
    axes: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--grid item {item!r} is not allowed: KEY=V1,V2,... "
                            "(e.g. lam=0,0.5,1)")
        if key in axes:
            raise UserError(f"--grid {key} is given twice: one KEY=V1,V2,... per key")
        if key in OWNED_KEYS:
            example = ("--seeds 0,1,2" if key == "seed" else
                       "--settings digits:sym:0.2,digits:sym:0.4")
            raise UserError(f"--grid {key} is not allowed: a sweep's {key} values are "
                            f"{OWNED_KEYS[key]} (e.g. {example}); key=value items go before "
                            "--grid")
        words = [v.strip() for v in text.split(",")]
        if not any(words):
            raise UserError(f"--grid {item!r} is not allowed: at least one value")
        if "" in words:
            raise UserError(f"--grid {item!r} is not allowed: an empty value between commas; "
                            f"{key}=V1,V2,... with one comma between values")
        values = [parse_value(key, v) for v in words]
        _refuse_repeats(f"--grid {key}", words, values)
        axes[key] = values
    if not axes:
        raise UserError("--grid is empty: give KEY=V1,V2,... items (e.g. lam=0,0.5,1)")
    return axes


def grid_plan(args, base: dict[str, Any]) -> SweepPlan:
    """Full factorial over the --grid values, per setting and seed. The method parameters
    among its keys are the searched ones; other keys (variant, prune_fraction...) split the
    trials into groups that ASHA never ranks against each other."""
    axes = parse_grid(args.grid.split() if isinstance(args.grid, str) else args.grid)
    names = list(axes)
    settings = parse_settings(args.settings)
    check_trial_count("grid", {"settings": len(settings), "seeds": len(args.seed_list),
                               **{f"{n} values": len(axes[n]) for n in names}})
    configs = []
    base = with_given(base, names)
    for setting in settings:
        for seed in args.seed_list:
            for combo in itertools.product(*(axes[n] for n in names)):
                configs.append({**base, **setting, "seed": seed, **dict(zip(names, combo))})
    searched = tuple(n for n in names if n in METHOD_PARAMS and len(axes[n]) > 1)
    return _grid("grid", configs, table=None, searched=searched)


def search_plan(args, base: dict[str, Any]) -> SweepPlan:
    settings = parse_settings(args.settings)
    if len(settings) != 1:
        raise UserError(f"--settings={args.settings!r} is not allowed for a search: one setting")
    if len(args.seed_list) != 1:
        raise UserError(f"--seeds={args.seeds!r} is not allowed for a search: one seed per "
                        "study (run one search per seed, or a grid sweep with --seeds)")
    common = full_config({**base, **settings[0], "seed": args.seed_list[0]})
    space = None
    if getattr(args, "space", None):  # narrowed ranges (--space, a sweep spec's parameters)
        from ts3ray.tune.search import MethodSpace, parse_space

        epochs = int(common["epochs"])
        space = MethodSpace(epochs, parse_space(args.space, epochs))
    return SweepPlan(sweep="search", common=common, search=True,
                     searched=tuple(METHOD_PARAMS), space=space)


def parse_method_options(text: str) -> dict[str, str]:
    """`--method-options "dividemix.evaluate=ensemble jocor.lam=0.5,jocor.t_k=5"` ->
    {"dividemix": "evaluate=ensemble", "jocor": "lam=0.5,t_k=5"} (checked per trial)."""
    out: dict[str, list[str]] = {}
    for item in filter(None, (t.strip() for t in text.replace(",", " ").split())):
        method, dot, option = item.partition(".")
        if not dot or "=" not in option or method not in METHOD_NAMES:
            raise UserError(f"--method-options item {item!r} is not allowed: METHOD.KEY=VALUE "
                            f"with METHOD one of {', '.join(METHOD_NAMES)} (e.g. jocor.lam=0.5)")
        out.setdefault(method, []).append(option)
    return {m: ",".join(options) for m, options in out.items()}


def merge_method_options(preset: dict[str, str], given: dict[str, str]) -> dict[str, str]:
    """Per method, the preset's options with the user's merged over them key by key."""
    out = {}
    for method in {**preset, **given}:
        items: dict[str, str] = {}
        for source, text in (("preset", preset.get(method, "")), ("given", given.get(method, ""))):
            seen = set()
            for item in filter(None, (t.strip() for t in text.split(","))):
                key = item.partition("=")[0].strip()
                if source == "given" and key in seen:
                    raise UserError(f"--method-options {method}.{key} is given twice: once per "
                                    "option")
                seen.add(key)
                items[key] = item
        out[method] = ",".join(items.values())
    return out


def compare_plan(args, base: dict[str, Any]) -> SweepPlan:
    """Methods x settings x seeds: one lottery run per trial, every level recorded."""
    methods = parse_names("--methods", args.methods, METHOD_NAMES)
    for key, option in (("method", "--methods"), ("method_options", "--method-options"),
                        ("protocol", "--protocol")):
        if key in base:
            raise UserError(f"{key}= is not allowed for the compare sweep: use {option}")
    budget = getattr(args, "tune_budget", None)
    if args.protocol == "controlled":
        if budget is None or budget < 1:
            raise UserError(f"--tune-budget={budget} is not allowed with --protocol controlled: "
                            "N >= 1 tuning trials per method (e.g. --tune-budget 8)")
        if "val_fraction" not in base:  # tuned on held-out data, compared on the same split
            base = {**base, CHOOSING: CHOOSING_VAL_FRACTION}
    elif budget is not None:
        raise UserError(f"--tune-budget applies only with --protocol controlled (given with "
                        f"--protocol {args.protocol})")
    given_options = parse_method_options(args.method_options or "")
    for method in given_options:
        if method not in methods:
            first = given_options[method].split(",")[0]
            raise UserError(f"--method-options {method}.{first} is not allowed: {method} is not "
                            f"in --methods ({','.join(methods)}); drop its options or add it "
                            "to --methods")
    options = merge_method_options(COMPARE_METHOD_OPTIONS.get(args.preset, {}), given_options)
    for method in options:
        if method not in methods:
            options[method] = ""  # not run: nothing to check (the preset's own options)
    settings = parse_settings(args.settings)
    check_trial_count("compare", {"settings": len(settings), "methods": len(methods),
                                  "seeds": len(args.seed_list)})
    configs = []
    for setting in settings:
        for method in methods:
            for seed in args.seed_list:
                configs.append({**base, **setting, "seed": seed, "method": method,
                                "method_options": options.get(method, ""),
                                "protocol": args.protocol})
    return _grid("compare", scope_to_methods(configs, methods), table="compare")


def scope_to_methods(configs: list[dict[str, Any]], methods: list[str]) -> list[dict[str, Any]]:
    """A key the user gave a compare sweep acts on the methods it applies to (config.py's
    NO_EFFECT_RULES: lam only on ts3net, select_rate only on methods that select by a rate,
    momentum only with SGD, ...) and is dropped for the others; a key that acts on none of
    the methods is refused."""
    from ts3ray.config import RunConfig, no_effect

    out, dropped_somewhere, acted = [], {}, set()
    for values in configs:
        given = frozenset(values.get(GIVEN, ()))
        unmarked = {k: v for k, v in values.items() if k != GIVEN}
        config = RunConfig(**full_config(unmarked, check_files=False, given=()))
        drop = {key for _, keys in no_effect(config, given) for key in keys}
        for key in drop:
            dropped_somewhere.setdefault(key, values)
        acted |= given - drop
        kept = {k: v for k, v in values.items() if k not in drop}
        out.append({**kept, GIVEN: given - drop} if GIVEN in values else kept)
    for key, values in dropped_somewhere.items():
        if key not in acted:
            try:
                full_config(values, check_files=False)
            except UserError as err:
                why = getattr(err, "allowed", str(err))
                raise UserError(f"{key}={values[key]} is not allowed for the compare sweep: it "
                                f"acts on none of --methods {','.join(methods)} ({why})") from None
    return out


def _compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--methods", default=",".join(METHOD_NAMES),
                        help=f"methods (default all: {','.join(METHOD_NAMES)})")
    parser.add_argument("--protocol", default="published", choices=list(PROTOCOLS),
                        help="how every method is trained: published (default: each with its "
                             "authors' recipe), code, shared (the run's SGD for all) or "
                             "controlled (the shared SGD, constants re-tuned per method on "
                             "validation data, --tune-budget trials each)")
    parser.add_argument("--tune-budget", type=int, metavar="N",
                        help="--protocol controlled: Optuna trials per method tuning its "
                             "constants on validation data (the same N for every method)")
    parser.add_argument("--tune-seed", type=int, default=100, metavar="S",
                        help="--protocol controlled: the tuning seed, not one of --seeds "
                             "(default 100)")
    parser.add_argument("--method-options", metavar="METHOD.KEY=VALUE ...",
                        help="options of single methods, e.g. 'dividemix.evaluate=ensemble "
                             "coteaching.prune=both' (docs/METHODS.md lists them)")


def _sensitivity_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=",".join(METHOD_PARAMS),
                        help="Table IX blocks to run (default: all of lam,tau,gamma,e1,e2)")


def _sparsity_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prune-fractions", default=",".join(map(str, PRUNE_FRACTIONS)),
                        help="p_f values (default 0.3,0.4,0.5,0.6; R from rounds=)")
    parser.add_argument("--variants", default="full,warm", help="variants (default full,warm)")
    parser.add_argument("--archs", default="",
                        help="architectures (default: the dataset's paper architecture)")


def _grid_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grid", nargs="+", metavar="KEY=V1,V2",
                        help="values per config key, crossed in full (default: the preset's, "
                             "quick: lam=0,0.5,1 tau=0.5,0.9); put key=value overrides before it")


def _search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-samples", type=int, help="trials (default: the preset's)")
    parser.add_argument("--sampler", default="tpe", help="tpe (seeded, default) | random | qmc")
    parser.add_argument("--optuna-storage", metavar="PATH_OR_URL",
                        help="keep the Optuna study: a journal file path or an RDB URL "
                             "(default: optuna-journal.log in the sweep folder)")
    parser.add_argument("--space", metavar="NAME=LOW:HIGH,...",
                        help="narrow the searched ranges, e.g. lam=0.2:0.8,e1=0:5 (lam, tau, "
                             "gamma, e2_frac in [0, 1]; e1 an integer < E)")


@dataclass(frozen=True)
class SweepKind:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    plan: Callable[[Any, dict[str, Any]], SweepPlan]
    default_scheduler: str = "none"
    keeps_every_cell: bool = False  # its table needs every cell: no early stopping
    searches: bool = False  # Optuna suggests the trials: it always chooses


SWEEPS: dict[str, SweepKind] = {
    "sensitivity": SweepKind("Table IX: one-at-a-time grids of lam, tau, gamma, E1, E2",
                             _sensitivity_arguments, sensitivity_plan, keeps_every_cell=True),
    "sparsity": SweepKind("Tables VIII/XI: p_f x variants x architectures, every IMP level",
                          _sparsity_arguments, sparsity_plan, keeps_every_cell=True),
    "grid": SweepKind("full-factorial grid (--grid lam=0,.5,1 tau=.3,.7), optionally with "
                      "grouped level-aware ASHA", _grid_arguments, grid_plan),
    "search": SweepKind("Optuna (TPE) over lam, tau, gamma, E1, E2 with level-aware ASHA, "
                        "on validation accuracy", _search_arguments, search_plan,
                        default_scheduler="asha", searches=True),
    "compare": SweepKind("Tables I-III / Figs. 7-10: methods x settings x seeds inside IMP, "
                         "every level", _compare_arguments, compare_plan, keeps_every_cell=True),
}
SCHEDULERS = ("none", "asha")


def selection_signal(sweep: str, scheduler: str, objective: str | None) -> str | None:
    """What a sweep chooses on: None for sweeps that keep every cell, else `objective`
    (default `val`). Raises UserError for a combination that cannot hold."""
    kind = SWEEPS[sweep]
    if scheduler not in SCHEDULERS:
        raise UserError(f"--scheduler={scheduler!r} is not allowed: one of {', '.join(SCHEDULERS)}")
    if objective is not None and objective not in SELECTION_COLUMNS:
        raise UserError(f"--objective={objective!r} is not allowed: one of "
                        f"{', '.join(SELECTION_COLUMNS)}")
    if scheduler == "asha" and kind.keeps_every_cell:
        raise UserError(f"--scheduler asha is not allowed for the {sweep} sweep: its table needs "
                        "every cell; use `ts3ray sweep grid --grid ... --scheduler asha` to stop "
                        "weak cells early")
    chooses = kind.searches or scheduler == "asha"
    if not chooses:
        if objective is not None:
            raise UserError(f"--objective does not apply to the {sweep} sweep without a "
                            "scheduler: it keeps every cell and chooses nothing")
        return None
    return objective or "val"


def apply_selection(base: dict[str, Any], signal: str | None) -> dict[str, Any]:
    """A choosing sweep holds out CHOOSING_VAL_FRACTION of the training set unless the user
    (an explicit 0 is kept, and then refused for `val` by check_selection) or the dataset's
    defaults set val_fraction (full_config applies it per configuration)."""
    if signal is not None and "val_fraction" not in base:
        return {**base, CHOOSING: CHOOSING_VAL_FRACTION}
    return base


def check_selection(plan: SweepPlan) -> None:
    """The data the selection signal needs exists in every trial."""
    signal = plan.selected_on
    configs = [{**plan.common, **cell} for cell in plan.cells] or [plan.common]
    if signal == "val" and any(float(c["val_fraction"]) <= 0 for c in configs):
        raise UserError("val_fraction=0 is not allowed for a sweep that chooses on validation "
                        f"accuracy: use 0 < val_fraction < 0.5 (default {CHOOSING_VAL_FRACTION}), "
                        "or --objective test to choose on test accuracy explicitly")
    if signal == "clean_val":
        from ts3ray.data import ships_clean_val

        lacking = sorted({c["dataset"] for c in configs if not ships_clean_val(c["dataset"])})
        if lacking:
            raise UserError(f"--objective clean_val is not allowed: {', '.join(lacking)} ships no "
                            "clean validation set; use --objective val (a held-out part of the "
                            "noisy training set)")
