"""`ts3ray sweep KIND --spec sweep.yaml`: a whole sweep in one file, as W&B Sweeps users
write one (kind, metric, parameters, scheduler, resources, settings, seeds), checked before
Ray starts with one line per error, every error listed.

    kind: search                  # sensitivity | sparsity | grid | search | compare
    metric: val                   # what a choosing sweep selects on: val | clean_val | test
    parameters:                   # grid: values of any config key; search: ranges of
      lam: {distribution: uniform, low: 0.2, high: 0.8}   #  lam tau gamma e2_frac, e1 (int)
      e1: {distribution: int, low: 0, high: 3}
    scheduler: {name: asha, grace_period: 1, reduction_factor: 3}
    resources: {cpus_per_trial: 1, gpus_per_trial: 0, max_concurrent: 2}
    settings: [digits:sym:0.4]
    seeds: [0]
    config: {epochs: 4, rounds: 1}   # run keys of every trial, as `ts3ray run` takes them
    options: {num_samples: 8, name: my-search, tracker: tensorboard}  # other sweep flags

Parameters by kind: grid `KEY: [v1, v2]` (or `{values: [...]}`); search `NAME: {distribution:
uniform|int, low, high}` (search.parse_space); sensitivity a list of method parameters (or a
mapping with no values: the sweep's own grid); sparsity `prune_fraction`, `variant`, `arch`
values; compare `method` values. The spec becomes the command's flags; flags and key=value
given on the command line win over the spec's.
"""
from __future__ import annotations

from typing import Any

from ts3ray.config import FIELD_NAMES, METHOD_PARAMS, SELECTION_COLUMNS, parse_value
from ts3ray.errors import UserError

TOP_KEYS = ("kind", "metric", "parameters", "scheduler", "resources", "settings", "seeds",
            "config", "options")
RESOURCE_FLAGS = {"cpus_per_trial": float, "gpus_per_trial": float, "max_concurrent": int,
                  "num_cpus": int, "num_gpus": int}
SCHEDULER_KEYS = {"name": str, "grace_period": int, "reduction_factor": float}
SPARSITY_PARAMS = {"prune_fraction": "prune_fractions", "variant": "variants", "arch": "archs"}
DISTRIBUTIONS = ("uniform", "int")


class SpecErrors(UserError):
    """Every problem of a spec file, one line each (cli.run_guarded prints `lines`)."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("; ".join(lines))

    def __reduce__(self):  # pickled: rebuilt from its lines, not from the joined message
        return type(self), (self.lines,)


def _join(values) -> str:
    return ",".join(str(v) for v in values)


class SpecReader:
    """Turns a spec mapping into command-line words, collecting every error."""

    def __init__(self, path: str, kind: str, flags: set[str]):
        self.path, self.kind, self.flags = path, kind, flags
        self.errors: list[str] = []
        self.argv: list[str] = []
        self.overrides: list[str] = []

    def error(self, key: str, value: Any, allowed: str) -> None:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        self.errors.append(f"--spec {self.path}: {key}: {shown} is not allowed: {allowed}")

    def flag(self, name: str, value: Any) -> None:
        flag = "--" + name.replace("_", "-")
        if value is True:
            self.argv.append(flag)
        elif value is not False and value is not None:
            self.argv += [flag, _join(value) if isinstance(value, list) else str(value)]

    # -- sections --------------------------------------------------------------------
    def read(self, spec: Any) -> None:
        if not isinstance(spec, dict):
            self.error("(top level)", type(spec).__name__, f"a mapping with keys {', '.join(TOP_KEYS)}")
            return
        for key in spec:
            if key not in TOP_KEYS:
                self.error(key, spec[key], f"an unknown key; known keys: {', '.join(TOP_KEYS)}")
        if "kind" in spec and spec["kind"] != self.kind:
            self.error("kind", spec["kind"], f"the sweep named on the command line ({self.kind})")
        if "metric" in spec:
            if spec["metric"] in SELECTION_COLUMNS:
                self.flag("objective", spec["metric"])
            else:
                self.error("metric", spec["metric"], f"one of {', '.join(SELECTION_COLUMNS)}")
        for section in ("parameters", "scheduler", "resources", "settings", "seeds", "config",
                        "options"):
            if section in spec:
                getattr(self, section)(spec[section])

    def config(self, values: Any) -> None:
        if not isinstance(values, dict):
            return self.error("config", values, "a mapping of run keys (as `ts3ray run` takes)")
        for key, value in values.items():
            try:
                parse_value(str(key), value)
            except UserError as err:
                self.errors.append(f"--spec {self.path}: config: {err}")
                continue
            text = _join(value) if isinstance(value, list) else value
            self.overrides.append(f"{key}={'true' if text is True else 'false' if text is False else text}")

    def seeds(self, value: Any) -> None:
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            return self.error("seeds", value, "a list of integers, e.g. [0, 1, 2]")
        self.flag("seeds", items)

    def settings(self, value: Any) -> None:
        items = value if isinstance(value, list) else [value]
        bad = [v for v in items if not isinstance(v, str) or len(v.split(":")) != 3]
        if bad or not items:
            return self.error("settings", bad[0] if bad else value,
                              "a list of DATASET:NOISE:RATE, e.g. [digits:sym:0.4]")
        self.flag("settings", items)

    def scheduler(self, value: Any) -> None:  # numbers: finite and int64 (values.check_number)
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict):
            return self.error("scheduler", value, "none | asha, or {name, grace_period, reduction_factor}")
        for key, item in value.items():
            kind = SCHEDULER_KEYS.get(key)
            if kind is None:
                self.error(f"scheduler.{key}", item, f"an unknown key; known: {', '.join(SCHEDULER_KEYS)}")
            elif key == "name" and item not in ("none", "asha"):
                self.error("scheduler.name", item, "none | asha")
            elif key != "name" and (isinstance(item, bool) or not isinstance(item, (int, float))
                                    or (kind is int and not isinstance(item, int))
                                    or not _finite(item) or item <= 0):
                self.error(f"scheduler.{key}", item, f"a positive {kind.__name__}")
            else:
                self.flag("scheduler" if key == "name" else key, item)

    def resources(self, value: Any) -> None:
        if not isinstance(value, dict):
            return self.error("resources", value, f"a mapping of {', '.join(RESOURCE_FLAGS)}")
        for key, item in value.items():
            kind = RESOURCE_FLAGS.get(key)
            if kind is None:
                self.error(f"resources.{key}", item, f"an unknown key; known: {', '.join(RESOURCE_FLAGS)}")
            elif (isinstance(item, bool) or not isinstance(item, (int, float))
                  or (kind is int and not isinstance(item, int)) or not _finite(item) or item < 0):
                self.error(f"resources.{key}", item, f"a number >= 0{' (integer)' if kind is int else ''}")
            else:
                self.flag(key, item)

    def options(self, value: Any) -> None:
        if not isinstance(value, dict):
            return self.error("options", value, "a mapping of the sweep's flags (num_samples: 8)")
        for key, item in value.items():
            if key.replace("_", "-") not in self.flags or key in ("spec", "config"):
                self.error(f"options.{key}", item, f"an option of `ts3ray sweep {self.kind}` "
                           "(see its --help; underscores for dashes)")
            else:
                self.flag(key, item)

    def parameters(self, value: Any) -> None:
        if self.kind == "sensitivity" and isinstance(value, list):
            value = {name: None for name in value}
        if not isinstance(value, dict) or not value:
            return self.error("parameters", value, "a mapping of NAME: values or distribution")
        getattr(self, f"_{self.kind}_parameters")(value)

    @staticmethod
    def _values(item: Any) -> list | None:
        if isinstance(item, dict) and set(item) == {"values"}:
            item = item["values"]
        return item if isinstance(item, list) and item else None

    def _grid_parameters(self, params: dict) -> None:
        words = []
        for key, item in params.items():
            values = self._values(item)
            if key not in FIELD_NAMES:
                self.error(f"parameters.{key}", item, "a config key (grid: any run key)")
            elif values is None:
                self.error(f"parameters.{key}", item, "a non-empty list of values (grid)")
            else:
                try:
                    for v in values:
                        parse_value(key, v)
                except UserError as err:
                    self.errors.append(f"--spec {self.path}: parameters.{key}: {err}")
                    continue
                words.append(f"{key}={_join(values)}")
        if words:
            self.argv += ["--grid", *words]

    def _search_parameters(self, params: dict) -> None:
        from ts3ray.tune.search import search_coordinates

        items = []
        for key, item in params.items():
            dist = item.get("distribution", "uniform") if isinstance(item, dict) else None
            want = "int" if key == "e1" else "uniform"
            if key not in search_coordinates():
                self.error(f"parameters.{key}", item, f"a searched coordinate: {', '.join(search_coordinates())}")
            elif not isinstance(item, dict) or set(item) - {"distribution", "low", "high"} \
                    or "low" not in item or "high" not in item:
                self.error(f"parameters.{key}", item, "{distribution, low, high}")
            elif dist != want:
                self.error(f"parameters.{key}.distribution", dist, f"{want} (the {key} coordinate's)")
            else:
                items.append(f"{key}={item['low']}:{item['high']}")
        if items:
            self.flag("space", items)

    def _sensitivity_parameters(self, params: dict) -> None:
        bad = [k for k, v in params.items() if k not in METHOD_PARAMS or v is not None]
        for key in bad:
            self.error(f"parameters.{key}", params[key], f"a method parameter ({', '.join(METHOD_PARAMS)}) "
                       "without values: sensitivity varies each over its own grid")
        if not bad:
            self.flag("params", list(params))

    def _sparsity_parameters(self, params: dict) -> None:
        for key, item in params.items():
            values = self._values(item)
            if key not in SPARSITY_PARAMS or values is None:
                self.error(f"parameters.{key}", item, f"values of {', '.join(SPARSITY_PARAMS)}")
            else:
                self.flag(SPARSITY_PARAMS[key], values)

    def _compare_parameters(self, params: dict) -> None:
        for key, item in params.items():
            values = self._values(item)
            if key != "method" or values is None:
                self.error(f"parameters.{key}", item, "method: [names] (the methods compared)")
            else:
                self.flag("methods", values)


def spec_words(path: str, kind: str, flags: set[str]) -> tuple[list[str], list[str]]:
    """(key=value overrides, flags) of the spec at `path` for sweep `kind`; SpecErrors with
    every error otherwise. `flags` are the sweep's option names (without --)."""
    from ts3ray.yaml_input import YamlInputError, read_yaml_file

    try:
        spec = read_yaml_file(path)
    except YamlInputError as err:
        raise UserError(f"--spec {err}") from None
    reader = SpecReader(path, kind, flags)
    reader.read(spec)
    if reader.errors:
        raise SpecErrors(reader.errors)
    return reader.overrides, reader.argv


def _finite(item) -> bool:
    """A number a flag can carry: finite (`.inf`, `.nan`, 1e309 refused), |int| < 2**63."""
    import math

    from ts3ray.values import INT_LIMIT

    if isinstance(item, float):
        return math.isfinite(item)
    return -INT_LIMIT < item < INT_LIMIT
