"""Run configuration: one frozen dataclass, the paper's defaults per dataset, validation.

`RunConfig` describes one TS3-Net lottery run (Algorithm 2 around Algorithm 1). Field names
are a contract with the sweep service and the Parquet results (docs/CONTRACTS.md).

Defaults follow Sec. IV-A of the paper: SGD momentum 0.9, batch 256, lambda 0.5, tau 0.7,
gamma 0.5; MNIST E/E1/E2 = 40/10/20; CIFAR E/E1/E2 = 120/20/60 with lr 0.1 -> 0.01 after
40 epochs. Deviations, each documented at its value:

* MNIST-like data: the paper's "constant learning rate (e.g., 1.0)" makes SGD with momentum
  0.9 diverge on LeNet-300-100 (measured on digits: test accuracy falls to 10%, chance, by
  the second epoch). ts3ray uses a constant 0.01 for mnist and fashion-mnist (measured on
  MNIST sym-40%, p_f 0.5, R 3, seed 0, S at 87.5% sparsity: full 95.90% / warm 80.51% with
  0.01, against 94.90% / 75.76% with 0.05; the paper reports 97.11% / 84.82%) and 0.05 for
  the 1,437-image digits set, whose 6 steps per epoch need the larger rate to train within
  its short schedules.
* weight decay 1e-4: the paper gives none; this is the official code's value. MNIST uses
  none (below).
* MNIST (the issue-12 study, benchmarks/mnist_study.py): 50,000 training images
  (val_fraction = 1/6 holds out 10,000 of the 60,000 as validation data), the output layer
  pruned, no weight decay: the paper's stated protocol where it states or shows one.

`METHOD_PARAMS` is the one registry of the method parameters that sweeps vary (lambda, tau,
gamma, E1, E2): their equation, range, type, display labels, paper default and Table IX
values. Search spaces, grids, the CLI, tables and plots all read it; a new searched
parameter is one row there.

`val_fraction` holds out a seeded, label-stratified part of the *noisy* training set for
choices (search objectives, ASHA rungs, best epochs); 0 keeps the paper's protocol.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, fields
from typing import Any, get_type_hints

from ts3ray.devices import DEVICES, parse_device
from ts3ray.errors import ConfigError
from ts3ray.method.names import METHOD_NAMES, PROTOCOLS
from ts3ray.values import check_number, format_value, parse_text, type_name

SELECTIONS = ("rate", "gmm")
ORDERS = ("sparse_first", "dense_first")
ALTERNATE_MODES = ("pass", "parity")
NOISE_CONVENTIONS = ("sample", "exact")
PRECISION_NAMES = ("fp32", "bf16")  # ts3ray/accel.py
COMPILE_NAMES = ("none", "default", "reduce-overhead", "max-autotune")  # torch.compile modes
MAX_VAL_FRACTION = 0.5


@dataclass(frozen=True)
class MethodParam:
    """A TS3-Net parameter that sweeps vary (Sec. IV-C 2, Table IX)."""

    name: str  # the RunConfig field
    acts_in: str  # where it enters the method
    integer: bool
    md: str  # display label (markdown / plain text)
    latex: str
    paper_default: float | None  # Sec. IV-A; None: by dataset (DATASET_DEFAULTS)
    table_ix: tuple  # the values of Table IX's one-at-a-time grid
    table_ix_base: float  # the centre of Table IX (Sec. IV-C 2)
    # How a search samples it (tune/search.py): "unit" uniform in [0, 1]; "epochs" an
    # integer in [0, E - 1] (E1 < E); "rest_fraction" a fraction in [0, 1] of the epochs
    # E - E1 left after E1, so that E1 + E2 <= E holds without a range that depends on E1.
    search: str = "unit"


METHOD_PARAMS: dict[str, MethodParam] = {
    p.name: p
    for p in (
        MethodParam("lam", "Eq. 5 (entropy weight, alternate stage)", False, "λ", r"$\lambda$",
                    0.5, (0.0, 0.5, 0.7, 1.0), 0.5),
        MethodParam("tau", "Eq. 6 (relabel threshold, refinement)", False, "τ", r"$\tau$",
                    0.7, (0.0, 0.3, 0.5, 0.7), 0.7),
        MethodParam("gamma", "Eq. 7 (relabel weight, refinement)", False, "γ", r"$\gamma$",
                    0.5, (0.0, 0.1, 0.5, 1.0), 0.5),
        MethodParam("e1", "Algorithm 1 (warm-up epochs)", True, "E1", r"$E_1$",
                    None, (10, 15, 20, 30), 20, search="epochs"),
        MethodParam("e2", "Algorithm 1 (alternate-learning epochs)", True, "E2", r"$E_2$",
                    None, (30, 45, 60, 80), 60, search="rest_fraction"),
    )
}

# What a sweep may choose on (docs/CONTRACTS.md): the signal name -> the per-epoch column.
# `val`: the held-out noisy training labels (val_fraction > 0); `clean_val`: a clean
# validation set the dataset ships; `test`: only when asked for explicitly, and every table
# built from such a sweep says "selected on test".
SELECTION_COLUMNS = {"val": "val_acc_sparse", "clean_val": "clean_val_acc_sparse",
                     "test": "acc_sparse"}


@dataclass(frozen=True)
class RunConfig:
    # data and noise
    dataset: str = "digits"
    data_root: str = "data"
    noise: str = "sym"
    noise_rate: float = 0.4
    noise_convention: str = "sample"  # "sample": per-sample draw from T (official code)
    # real-world data (issue 13): CIFAR-N label set for noise=human, and where batches come from
    noise_labels: str = ""  # noise=human on cifar10/cifar100: aggre|random1..3|worst / noisy
    data_path: str = "auto"  # auto|device|stream (ts3ray.data.core.placement); not in run_id
    data_workers: int = 2  # DataLoader worker processes of the streaming path; not in run_id
    # model and method
    arch: str = "lenet_300_100"
    method: str = "ts3net"  # which method IMP trains (METHOD_NAMES); TS3-Net: + `variant`
    method_options: str = ""  # a competitor's options, "key=value,..." (docs/METHODS.md);
    # stored resolved in full (every option of the method), so run_id hashes what runs
    protocol: str = "published"  # published | code | shared | controlled (method/protocols.py)
    variant: str = "full"  # TS3-Net's Table VII / X variant (method=ts3net only)
    selection: str = "rate"  # "rate": small-loss with rate r (Eq. 2); "gmm": unknown eps
    select_rate: float | None = None  # None: r = eps, or eps/2 for asymmetric noise
    lam: float = 0.5  # lambda, Eq. 5
    tau: float = 0.7  # relabel threshold, Eq. 6
    gamma: float = 0.5  # relabel weight, Eq. 7
    order: str = "sparse_first"  # Table X: S trained before D in alternate learning
    alternate: str = "pass"  # paper: S pass then D pass each epoch; "parity": official code
    own_small_loss: bool = False  # official code: + CE on the updated net's own small-loss set
    refine_loss: str = "paper"  # paper: Eq. 7 | code: CE on softmax outputs + 0.001 x sum
    dense_reset: str = "own"  # own: D to its own init each level | from_sparse (official code)
    entropy: str = "sum"  # sum: lam * H (Eq. 4) | class_mean: lam * H / C (official code)
    # schedule (epochs per IMP round)
    epochs: int = 40
    e1: int = 10
    e2: int = 20
    # the training recipe (method/protocols.py): set by the protocol; by the user only under
    # protocol=shared or controlled, whose defaults are TS3-Net's Sec. IV-A recipe
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.05
    lr_schedule: str = "step"  # step (x lr_decay_factor at each of lr_decay_epochs) | cosine
    # over E (down to lr_floor x lr) | linear (to 0 from lr_decay_epochs[0]) | exponential
    # (x lr_decay_factor per epoch); restarted every IMP level
    lr_decay_epochs: tuple[int, ...] = ()
    lr_decay_factor: float = 0.1
    lr_floor: float = 0.0  # cosine: the floor eta_min as a fraction of lr (APL's MNIST: 0.1)
    momentum: float = 0.9  # SGD
    nesterov: bool = False  # SGD
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    beta1_decayed: float | None = None  # Adam's beta1 once a linear decay starts (Co-teaching)
    batch_size: int = 256
    weight_decay: float = 1e-4
    grad_clip: float | None = None  # global gradient-norm clip of every step (SCE/APL codes)
    init: str = "kaiming"  # kaiming (open_lth, TS3 code) | torch_default (PyTorch's own) |
    # apl (the APL repository's) | normal (N(0, 0.02^2), the ITLM code's); models/init.py
    # iterative magnitude pruning (Algorithm 2)
    prune_fraction: float = 0.5
    rounds: int = 3
    prune_output: bool = False  # the output layer is excluded from pruning by default
    # held-out part of the noisy training set that choices are made on (0: none, the paper)
    val_fraction: float = 0.0
    # run
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = 1024
    # how the device computes (ts3ray/accel.py); recorded, and part of the run id
    precision: str = "fp32"  # fp32 | bf16 (autocast; losses and selection stay fp32)
    channels_last: bool = False  # conv nets in NHWC
    compile: str = "none"  # none | default | reduce-overhead (CUDA graphs) | max-autotune
    deterministic: bool = False  # deterministic CUDA kernels (slower)

    # -- derived values ------------------------------------------------------------
    @property
    def run_id(self) -> str:
        """Stable id of what is computed: every field but where data lives and runs."""
        return config_hash(self)

    def effective_select_rate(self) -> float:
        """r of Eq. 2: eps, or eps/2 for asymmetric noise except CIFAR-100 (as in JoCoR)."""
        if self.select_rate is not None:
            return self.select_rate
        if self.noise == "none":  # clean labels: nothing to leave out
            return 0.0
        if self.noise == "asym" and self.dataset != "cifar100":
            return self.noise_rate / 2
        return self.noise_rate

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)


NOT_HASHED = ("data_root", "device", "eval_batch_size", "data_path", "data_workers")


def config_hash(config: RunConfig) -> str:
    payload = {k: _no_negative_zero(v) for k, v in config.to_dict().items()
               if k not in NOT_HASHED}
    text = json.dumps(payload, sort_keys=True, default=list)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _no_negative_zero(value: Any) -> Any:
    """-0.0 and 0.0 compute the same run: one id for both."""
    return 0.0 if isinstance(value, float) and value == 0.0 else value


# Paper defaults per dataset (Sec. IV-A) of what is not the training recipe; applied under
# the user's own values. The training recipe (optimiser, lr and its schedule, batch size,
# weight decay) comes from the protocol: TS3-Net's Sec. IV-A recipe is in method/ts3net.py.
_MNIST_LIKE = dict(arch="lenet_300_100", epochs=40, e1=10, e2=20)
# MNIST follows the paper's stated protocol where it is stated or shown (issue 12 study,
# benchmarks/mnist_study.py, real MNIST sym-40%, p_f 0.5, R 3): 50,000 training images
# (Sec. IV-A; 10,000 of the 60,000 held out, a validation set) and the output layer pruned
# (Fig. 12 shows the ticket's output-layer weights; the official code prunes it on MNIST);
# its recipe: no weight decay and a constant lr 0.01 (method/ts3net.py).
MNIST_TRAIN_HOLDOUT = 1 / 6  # 60,000 -> 50,000 training + 10,000 validation images
_MNIST = dict(_MNIST_LIKE, val_fraction=MNIST_TRAIN_HOLDOUT, prune_output=True)
_CIFAR = dict(epochs=120, e1=20, e2=60)
# Clothing1M, WebVision: E/E1/E2 = 100/20/60 (recipe: batch 32, lr 0.02 -> 0.002 after 60)
_REAL_WORLD = dict(noise="human", epochs=100, e1=20, e2=60)
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": _MNIST_LIKE,
    "mnist": _MNIST,
    "fashion-mnist": _MNIST_LIKE,
    "cifar10": dict(_CIFAR, arch="cifar_cnn"),
    "cifar100": dict(_CIFAR, arch="vgg16"),
    "synthetic": _MNIST_LIKE,
    "synthetic-cifar": dict(_CIFAR, arch="cifar_cnn"),
    # Real-world noisy data (Sec. IV-A): labels as published (noise=human); noise_rate is the
    # assumed eps that sets the selection rate (8%, 38.5%, 20%, "as suggested by [16]").
    "animal10n": dict(_CIFAR, arch="vgg19", noise="human", noise_rate=0.08),
    "clothing1m": dict(_REAL_WORLD, arch="resnet18", noise_rate=0.385),
    "webvision50": dict(_REAL_WORLD, arch="inception_resnet_v2", noise_rate=0.2),
}

FIELD_TYPES = get_type_hints(RunConfig)
FIELD_NAMES = tuple(f.name for f in fields(RunConfig))


def parse_value(key: str, text: Any) -> Any:
    """Turn a `key=value` string (or a YAML/JSON value) into the field's type."""
    if key not in FIELD_TYPES:
        raise ConfigError(key, text, f"unknown key; known keys: {', '.join(FIELD_NAMES)}")
    kind = FIELD_TYPES[key]
    if not isinstance(text, str):
        value = _typed_value(key, text, kind)
        check_number(key, text, value)
        return value
    return parse_text(key, text.strip(), kind, none_words=("", "none", "auto"))


def _typed_value(key: str, value: Any, kind) -> Any:
    """A value that arrived typed (YAML/JSON config file, Python API), checked by field type."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    checks = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: is_int,
        float: lambda v: is_int or isinstance(v, float),
        str: lambda v: isinstance(v, str),
    }
    if kind == tuple[int, ...]:
        items = value if isinstance(value, (list, tuple)) else None
        if items is not None and all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            return tuple(items)
    elif kind == float | None:
        if value is None or checks[float](value):
            return None if value is None else float(value)
    elif checks[kind](value):
        return float(value) if kind is float else value
    raise ConfigError(key, value, f"expected {type_name(kind)}")


def make_config(overrides: dict[str, Any] | None = None, *, check_files: bool = True,
                given: Any = None) -> RunConfig:
    """Build a config: base defaults < the dataset's paper defaults < `overrides`.

    Values may be strings (from the command line); they are parsed by field type. The result
    is validated (see :func:`validate`), and a key in `given` (default: every key of
    `overrides`; the keys the user gave) that has no effect in the result is refused
    (:func:`refuse_no_effect`).
    """
    overrides = dict(overrides or {})
    parsed = {k: parse_value(k, v) for k, v in overrides.items()}
    dataset = parsed.get("dataset", RunConfig.dataset)
    values = {**RunConfig().to_dict(), **DATASET_DEFAULTS.get(dataset, {})}
    if parsed.get("noise") == "none":
        values["noise_rate"] = 0.0  # clean labels unless the user also set a rate (refused)
    values.update(parsed)
    if values.get("noise") == "human" and "noise_rate" not in parsed and values.get("noise_labels"):
        from ts3ray import data  # CIFAR-N: eps defaults to the label set's realised rate

        values["noise_rate"] = data.human_noise_rate(dataset, values["noise_labels"])
    _check(values["epochs"] >= 1, "epochs", values["epochs"], "an integer >= 1")
    from ts3ray.method.registry import resolve_values

    values = resolve_values(values, set(parsed))  # the protocol's recipe, the full options
    config = RunConfig(**values)
    try:
        validate(config, check_files=check_files)
    except ConfigError as err:  # validate's e1+e2 rule, when only `epochs` was given
        if err.key != "e1+e2" or {"e1", "e2"} & set(parsed):
            raise
        raise ConfigError("epochs", config.epochs, f"at least e1+e2={err.value} (the defaults "
                          f"e1={config.e1}, e2={config.e2} for {dataset}): give e1 and e2 "
                          "with a shorter schedule") from None
    given = set(overrides) if given is None else set(given)
    hits = {k for _, keys in no_effect(config, given) for k in keys}
    if hits:  # a key given at the value it has anyway changes nothing (a config.json passed
        # back in): only one that differs from the config made without it can contradict
        without = make_config({k: v for k, v in overrides.items() if k not in hits},
                              check_files=False, given=())
        given -= {k for k in hits if getattr(without, k) == getattr(config, k)}
    refuse_no_effect(config, given)
    return config


# -- options given where they have no effect ------------------------------------------------
# The nominal training-set size per dataset (before any hold-out): what `val_fraction` holds
# out of, per class round(f * n / C) (data/split.py), checked before any data is read.
NOMINAL_TRAIN_SIZES = {"digits": 1437, "mnist": 60000, "fashion-mnist": 60000,
                       "cifar10": 50000, "cifar100": 50000, "synthetic": 2000,
                       "synthetic-cifar": 10000, "animal10n": 50000, "clothing1m": 1000000,
                       "webvision50": 65944}


def held_out_images(config: RunConfig) -> int | None:
    """About how many training images `val_fraction` holds out (None: size unknown)."""
    n = NOMINAL_TRAIN_SIZES.get(config.dataset)
    if n is None:
        return None
    classes = _num_classes(config.dataset)
    return classes * math.floor(config.val_fraction * n / classes + 0.5)


def _num_classes(dataset: str) -> int:
    from ts3ray import data

    return data.num_classes_of(dataset)


def _selects_by_rate(c: RunConfig) -> bool:
    from ts3ray.method.registry import method_def

    return method_def(c.method).uses_select_rate and (c.method != "ts3net" or c.selection == "rate")


def _val_fraction_effect(c: RunConfig) -> bool:
    held = held_out_images(c)
    return c.val_fraction == 0 or held is None or held > 0


def _val_fraction_consistent(c: RunConfig) -> str:
    n = NOMINAL_TRAIN_SIZES[c.dataset]
    least = _num_classes(c.dataset) / (2 * n)
    return (f"it holds out 0 of {c.dataset}'s {n} training images (round(f x n / C) per "
            f"class); use val_fraction >= {least:.2g}, or 0 to hold out nothing")


@dataclass(frozen=True)
class NoEffectRule:
    """Keys that act only where `applies(config)` holds; given elsewhere they are refused."""

    keys: tuple[str, ...]
    applies: Any  # Callable[[RunConfig], bool]
    consistent: Any  # str, or Callable[[RunConfig], str]: what would be consistent


NO_EFFECT_RULES: tuple[NoEffectRule, ...] = (
    NoEffectRule(("lam", "tau", "gamma", "order"), lambda c: c.method == "ts3net",
                 lambda c: f"they act only with method=ts3net (TS3-Net's Eqs. 5-7, Table X), "
                           f"not method={c.method}; drop them, or use method_options for "
                           f"{c.method}'s own options"),
    NoEffectRule(("select_rate",), _selects_by_rate,
                 lambda c: "it acts only with methods that select by a rate (ts3net with "
                           "selection=rate, coteaching, jocor, itlm), not method="
                           f"{c.method}{' selection=' + c.selection if c.method == 'ts3net' else ''}"),
    NoEffectRule(("momentum",), lambda c: c.optimizer == "sgd",
                 lambda c: f"it acts only with optimizer=sgd (this run's optimiser is {c.optimizer})"),
    NoEffectRule(("adam_beta1", "adam_beta2"), lambda c: c.optimizer == "adam",
                 lambda c: f"they act only with optimizer=adam (this run's optimiser is "
                           f"{c.optimizer})"),
    NoEffectRule(("lr_decay_factor",),
                 lambda c: c.lr_schedule == "exponential" or (c.lr_schedule == "step"
                                                              and bool(c.lr_decay_epochs)),
                 lambda c: "it acts only with a decaying schedule: lr_schedule=exponential, or "
                           "step with lr_decay_epochs (this run: "
                           f"lr_schedule={c.lr_schedule}, lr_decay_epochs="
                           f"{','.join(map(str, c.lr_decay_epochs)) or 'none'})"),
    NoEffectRule(("data_workers",), lambda c: c.data_path != "device",
                 "it acts only when batches stream (data_path=auto or stream), not with "
                 "data_path=device"),
    NoEffectRule(("prune_fraction", "prune_output"), lambda c: c.rounds >= 1,
                 "they act only with rounds >= 1 (rounds=0 trains the dense network only)"),
    NoEffectRule(("val_fraction",), _val_fraction_effect, _val_fraction_consistent),
)


def no_effect(config: RunConfig, given) -> list[tuple[NoEffectRule, list[str]]]:
    """The rules whose keys were given (in `given`) where they have no effect."""
    out = []
    for rule in NO_EFFECT_RULES:
        hit = [k for k in rule.keys if k in given]
        if hit and not rule.applies(config):
            out.append((rule, hit))
    return out


def refuse_no_effect(config: RunConfig, given) -> None:
    """ConfigError for the first key given where it has no effect (NO_EFFECT_RULES)."""
    for rule, hit in no_effect(config, given):
        consistent = rule.consistent(config) if callable(rule.consistent) else rule.consistent
        others = ", ".join(f"{k}={format_value(getattr(config, k))}" for k in hit[1:])
        raise ConfigError(hit[0], getattr(config, hit[0]), f"no effect here"
                          f"{f' (nor {others})' if others else ''}: {consistent}")


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)


def _one_of(key: str, value: Any, names) -> None:
    _check(value in names, key, value, f"one of {', '.join(sorted(names))}")


def validate(config: RunConfig, *, check_files: bool = True) -> None:
    """Raise ConfigError on the first value that is not allowed; touches no output."""
    from ts3ray import data, models
    from ts3ray.method.variants import VARIANTS

    c = config
    _one_of("dataset", c.dataset, data.DATASET_NAMES)
    _one_of("noise", c.noise, data.NOISE_KINDS)
    _one_of("noise_convention", c.noise_convention, NOISE_CONVENTIONS)
    _one_of("arch", c.arch, models.MODEL_NAMES)
    _one_of("method", c.method, METHOD_NAMES)
    _one_of("variant", c.variant, VARIANTS)
    _one_of("selection", c.selection, SELECTIONS)
    _one_of("order", c.order, ORDERS)
    _one_of("alternate", c.alternate, ALTERNATE_MODES)
    _one_of("protocol", c.protocol, PROTOCOLS)
    parse_device(c.device)  # full syntax; whether it exists is checked where the run happens
    _one_of("precision", c.precision, PRECISION_NAMES)
    _one_of("compile", c.compile, COMPILE_NAMES)
    _check("\0" not in c.data_root, "data_root", c.data_root, "a path without NUL characters")
    int_limit = 2**31  # torch sizes and counters; Python ints are unbounded
    for key in ("epochs", "e1", "e2", "batch_size", "rounds", "seed", "eval_batch_size",
                "data_workers"):
        value = getattr(c, key)
        _check(-int_limit < value < int_limit, key, value, "an integer below 2**31 in size")
    for param in METHOD_PARAMS.values():
        if param.search == "unit":
            value = getattr(c, param.name)
            _check(0.0 <= value <= 1.0, param.name, value, "a number in [0, 1]")
    _check(c.epochs >= 1, "epochs", c.epochs, "an integer >= 1")
    for key in ("e1", "e2"):
        _check(getattr(c, key) >= 0, key, getattr(c, key), "an integer >= 0")
    _check(
        c.e1 + c.e2 <= c.epochs, "e1+e2", c.e1 + c.e2, f"at most epochs={c.epochs}"
    )
    _check(0.0 < c.prune_fraction < 1.0, "prune_fraction", c.prune_fraction, "0 < p_f < 1")
    _check(c.rounds >= 0, "rounds", c.rounds, "an integer >= 0")
    num_classes = data.num_classes_of(c.dataset)
    limit = 1.0 - 1.0 / num_classes
    _check(
        0.0 <= c.noise_rate < limit,
        "noise_rate",
        c.noise_rate,
        f"0 <= noise_rate < 1 - 1/C = {limit:.4g} for {num_classes} classes",
    )
    if c.noise == "none":
        _check(c.noise_rate == 0, "noise_rate", c.noise_rate, "0 with noise=none")
    if c.noise == "asym":
        _check(c.dataset in data.ASYM_MAPS, "noise", c.noise,
               f"asym needs a class map; datasets with one: {', '.join(data.ASYM_MAPS)}")
    _check(0.0 <= c.val_fraction < MAX_VAL_FRACTION, "val_fraction", c.val_fraction,
           f"0 <= val_fraction < {MAX_VAL_FRACTION} (the held-out part of the training set)")
    data.check_noise(c.dataset, c.noise, c.noise_labels)  # human labels: dataset and label set agree
    _one_of("data_path", c.data_path, data.DATA_PATHS)
    _check(c.data_workers >= 0, "data_workers", c.data_workers, "an integer >= 0")
    _check(0 <= c.seed < 2**32, "seed", c.seed, "an integer in [0, 2**32)")
    _check(c.eval_batch_size >= 1, "eval_batch_size", c.eval_batch_size, "an integer >= 1")
    if c.select_rate is not None:
        _check(0.0 <= c.select_rate < 1.0, "select_rate", c.select_rate, "0 <= r < 1 or auto")
    _check(c.lr > 0 and math.isfinite(c.lr), "lr", c.lr, "a positive number")
    _check(c.batch_size >= 2, "batch_size", c.batch_size, "an integer >= 2")
    _check(0 <= c.weight_decay < math.inf, "weight_decay", c.weight_decay, "a finite number >= 0")
    _check(0 <= c.momentum < 1, "momentum", c.momentum, "0 <= momentum < 1")
    _check_recipe(c)
    _check(0 < c.lr_decay_factor <= 1, "lr_decay_factor", c.lr_decay_factor,
           "0 < factor <= 1 (the rate is multiplied by it at each decay epoch)")
    for m in c.lr_decay_epochs:
        _check(1 <= m < int_limit, "lr_decay_epochs", c.lr_decay_epochs,
               "epochs >= 1 within a round at which the rate decays")
    from ts3ray.method.registry import check_method

    check_method(c)  # method_options known and valid for the method; variant only for ts3net
    if check_files and "://" in c.data_root:
        data.check_remote_root(c.data_root)  # its files are checked where the trials run
    elif check_files:
        data.check_available(c.dataset, c.data_root)
        data.check_noise_files(c.dataset, c.noise, c.noise_labels, c.data_root)


def _check_recipe(c: RunConfig) -> None:
    """The training recipe's keys (method/protocols.py), each in range and none set where it
    has no effect."""
    from ts3ray.method.protocols import INITS, LR_SCHEDULES, OPTIMIZERS

    _one_of("optimizer", c.optimizer, OPTIMIZERS)
    _one_of("lr_schedule", c.lr_schedule, LR_SCHEDULES)
    _one_of("init", c.init, INITS)
    for key in ("adam_beta1", "adam_beta2"):
        _check(0 <= getattr(c, key) < 1, key, getattr(c, key), "0 <= beta < 1")
    if c.beta1_decayed is not None:
        _check(0 <= c.beta1_decayed < 1, "beta1_decayed", c.beta1_decayed, "0 <= beta < 1 or none")
        _check(c.optimizer == "adam" and c.lr_schedule == "linear", "beta1_decayed",
               c.beta1_decayed, "none unless optimizer=adam with lr_schedule=linear (the beta1 "
               "plan starts with the linear decay)")
    if c.nesterov:
        _check(c.optimizer == "sgd" and c.momentum > 0, "nesterov", c.nesterov,
               "false unless optimizer=sgd with momentum > 0")
    if c.grad_clip is not None:
        _check(c.grad_clip > 0 and math.isfinite(c.grad_clip), "grad_clip", c.grad_clip,
               "a positive number or none")
    if c.lr_schedule == "linear":
        _check(len(c.lr_decay_epochs) <= 1, "lr_decay_epochs", c.lr_decay_epochs,
               "at most one epoch (where the linear decay starts) with lr_schedule=linear")
    if c.lr_schedule in ("cosine", "exponential"):
        _check(not c.lr_decay_epochs, "lr_decay_epochs", c.lr_decay_epochs,
               f"empty with lr_schedule={c.lr_schedule} (it decays over the whole level)")
    _check(0 <= c.lr_floor < 1, "lr_floor", c.lr_floor, "0 <= floor < 1 (a fraction of lr)")
    if c.lr_floor:
        _check(c.lr_schedule == "cosine", "lr_floor", c.lr_floor,
               "0 unless lr_schedule=cosine (the floor of the cosine)")


RUN_RECORD_KEYS = ("run_id", "provenance")  # written into config.json beside the run keys


def load_config_file(path: str) -> dict[str, Any]:
    """Read a YAML or JSON mapping of config keys (values are parsed like key=value).

    The file is bounded (size, alias expansion; see yaml_input.py); every problem is one
    UserError line starting with ``--config PATH``."""
    from ts3ray.errors import UserError
    from ts3ray.yaml_input import YamlInputError, read_yaml_file

    try:
        loaded = read_yaml_file(path)
    except YamlInputError as err:
        raise UserError(f"--config {err}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UserError(f"--config {path}: expected a mapping of key: value, "
                        f"found a {type(loaded).__name__}")
    # a run's own config.json passed back in: what it records beside the keys (its id, a
    # hash of them, and where it ran) describes that run, it configures nothing
    return {k: v for k, v in loaded.items() if k not in RUN_RECORD_KEYS}


def parse_overrides(items: list[str]) -> dict[str, str]:
    """`["lam=0.5", "seed=1"]` -> {"lam": "0.5", "seed": "1"}."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("argument", item, "key=value (e.g. lam=0.5)")
        if key in out:
            raise ConfigError(key, value, f"{key} given once (it is given twice: "
                              f"{key}={out[key]} and {key}={value})")
        out[key] = value
    return out
