"""The registry of methods, and the one place a configuration's method and protocol are
resolved: a new method is one module (its MethodDef) plus one line in METHODS.

* `resolve_values(values, explicit)` (called by config.make_config): the protocol's recipe
  written into the config values (refusing a user value it contradicts), the method's
  options resolved (defaults < the recipe's units < the user's) and stored in full as
  `method_options`, so that `run_id` hashes what runs.
* `resolve_method(config) -> ResolvedMethod`: what the IMP loop (run.py) needs.
* `protocol_warnings(config)`: one line per constant used outside the regime it was tuned in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ts3ray.errors import ConfigError
from ts3ray.method import apl, ce, coteaching, dividemix, itlm, jocor, mae, sce, ts3net
from ts3ray.method.base import MethodDef, Setting, option_fields
from ts3ray.method.names import METHOD_NAMES, PROTOCOLS
from ts3ray.method.options import canonical, parse_options
from ts3ray.method.protocols import OWNING, Recipe
from ts3ray.values import format_value

METHODS: dict[str, MethodDef] = {m.name: m for m in (
    ce.METHOD, sce.METHOD, apl.METHOD, mae.METHOD, itlm.METHOD, coteaching.METHOD,
    jocor.METHOD, dividemix.METHOD, ts3net.METHOD)}
if tuple(METHODS) != METHOD_NAMES:  # names.py keeps the names as plain data
    raise RuntimeError("method/names.METHOD_NAMES and the method registry disagree")
TS3NET = "ts3net"


def method_def(name: str) -> MethodDef:
    if name not in METHODS:
        raise ConfigError("method", name, f"one of {', '.join(METHOD_NAMES)}")
    return METHODS[name]


def setting_of(values: Any) -> Setting:
    get = values.get if isinstance(values, dict) else lambda k: getattr(values, k)
    return Setting(get("dataset"), get("noise"), float(get("noise_rate")), int(get("epochs")),
                   int(get("e1")), int(get("e2")))


def recipe_for(method: MethodDef, protocol: str, setting: Setting) -> Recipe:
    """The recipe that fixes (published, code) or defaults (shared, controlled: TS3-Net's
    Sec. IV-A recipe, the run's SGD) the training keys."""
    if protocol in OWNING:
        return method.recipes(protocol, setting)
    return ts3net.published_recipe(setting)


def _refuse(key: str, given: Any, wanted: Any, protocol: str, method: str, source: str):
    raise ConfigError(key, given, f"{format_value(wanted)} under protocol={protocol} for "
                      f"{method} ({source}); protocol=shared trains with the values you set")


def resolve_values(values: dict[str, Any], explicit: set[str]) -> dict[str, Any]:
    """Config values with the protocol's recipe and the method's full options (module doc)."""
    protocol = values["protocol"]
    if protocol not in PROTOCOLS:
        raise ConfigError("protocol", protocol, f"one of {', '.join(PROTOCOLS)}")
    method = method_def(values["method"])
    setting = setting_of(values)
    recipe = recipe_for(method, protocol, setting)
    training = recipe.config_values(setting.epochs)
    owned = protocol in OWNING
    for key, wanted in training.items():
        if key not in explicit:
            values[key] = wanted
        elif owned and values[key] != wanted:
            _refuse(key, values[key], wanted, protocol, method.name, recipe.source)
    if method.options is None:
        if values.get("method_options"):
            raise ConfigError("method_options", values["method_options"],
                              f"empty for {method.name} (its options are config keys: lam, "
                              "tau, gamma, ...)")
        return values
    overrides = parse_options(values.get("method_options", ""), method.options, method.name)
    options = resolve_options(method, setting, overrides, protocol, recipe)
    values["method_options"] = canonical(options)
    return values


def resolve_options(method: MethodDef, setting: Setting, overrides: dict[str, Any],
                    protocol: str, recipe: Recipe) -> Any:
    """defaults (the published constants of the setting) < the recipe's units (published,
    code) < the user's overrides, which may not contradict the recipe; checked."""
    fixed = recipe.options if protocol in OWNING else {}
    for key, wanted in fixed.items():
        if key in overrides and overrides[key] != wanted:
            _refuse(key, overrides[key], wanted, protocol, method.name, recipe.source)
    options = method.options(**{**method.defaults(setting, overrides), **fixed, **overrides})
    method.check(options, setting)
    return options


def make_options(name: str, dataset: str, noise: str = "sym", noise_rate: float = 0.0,
                 overrides: dict[str, Any] | None = None, *, protocol: str = "shared",
                 epochs: int = 40, e1: int = 10, e2: int = 20) -> Any:
    """A competitor's resolved options for a setting (tests, notebooks)."""
    method = method_def(name)
    setting = Setting(dataset, noise, noise_rate, epochs, e1, e2)
    unknown = set(overrides or {}) - set(option_fields(method.options))
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(key, (overrides or {})[key], f"unknown option of {name}; known: "
                          f"{', '.join(option_fields(method.options))}")
    return resolve_options(method, setting, dict(overrides or {}), protocol,
                           recipe_for(method, protocol, setting))


@dataclass(frozen=True)
class ResolvedMethod:
    """A method with its options for one configuration: what the IMP loop reads."""

    definition: MethodDef
    options: Any  # the options dataclass (TS3-Net: the RunConfig)
    networks: tuple[str, ...]
    pruned: tuple[str, ...]
    evaluated: tuple[str, ...]
    select_rate: float | None  # r of a method that selects by a rate (Eq. 2 rules)
    epochs: int

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def joint_optimizer(self) -> bool:
        return self.definition.joint_optimizer

    @property
    def needs_resident_data(self) -> bool:
        return self.definition.needs_resident_data

    @property
    def why_pruned(self) -> str:
        return self.definition.why_pruned

    def stage(self, epoch: int) -> str:
        return self.definition.stage_of(epoch, self.options)

    def segment(self, epoch: int) -> tuple[int, int]:
        return self.definition.segment_of(epoch, self.options, self.epochs)

    def step(self, nets, ctx) -> None:
        self.definition.epoch(nets, ctx)


def method_options(config) -> Any:
    """The resolved options object of a configuration (TS3-Net: the config itself)."""
    method = method_def(config.method)
    if method.options is None:
        return config
    return method.options(**parse_options(config.method_options, method.options, method.name))


def resolve_method(config) -> ResolvedMethod:
    """The IMP interface of `config.method` (ConfigError for unknown names or options)."""
    method = method_def(config.method)
    options = method_options(config)
    rate = config.effective_select_rate() if method.uses_select_rate else None
    return ResolvedMethod(method, options, method.networks_for(options), method.pruned(options),
                          method.evaluated(options), rate, config.epochs)


def check_method(config) -> None:
    """Config checks that need the registry: TS3-Net's own keys only with TS3-Net (and their
    combinations), a competitor's options valid for the setting. ConfigError, one line."""
    method = method_def(config.method)
    if method.options is None:
        method.check(config, setting_of(config))
        return
    if config.variant != "full":
        raise ConfigError("variant", config.variant, f"full for method={config.method} "
                          "(variants are TS3-Net's ablations)")
    if config.selection != "rate":
        raise ConfigError("selection", config.selection, f"rate for method={config.method} "
                          "(its selection rate follows eps, or select_rate)")
    for key, default in (("refine_loss", "paper"), ("dense_reset", "own"), ("entropy", "sum"),
                         ("own_small_loss", False), ("alternate", "pass")):
        if getattr(config, key) != default:
            raise ConfigError(key, getattr(config, key), f"{format_value(default)} for "
                              f"method={config.method} (a TS3-Net option)")


def protocol_warnings(config) -> list[str]:
    """Constants used outside the regime they were tuned in (the shared protocol trains a
    competitor with an optimiser or units its authors did not use)."""
    if config.protocol != "shared":
        return []
    method = method_def(config.method)
    return method.regime(method_options(config), config)
