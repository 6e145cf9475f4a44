"""`ts3ray sweep NAME [options] [key=value ...]` and `python sweeps/NAME.py [options]`.

NAME is sensitivity | sparsity | grid | search | compare (plans.py). Runs on an embedded local Ray instance,
or attaches to a cluster when `--address` is given or `RAY_ADDRESS` is set. Everything is
validated (config values, data files, resource request) before any trial starts.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import time

from ts3ray import storage
from ts3ray.config import METHOD_PARAMS, SELECTION_COLUMNS, parse_overrides
from ts3ray.errors import RESUME_ATTRIBUTE, UserError, warn
from ts3ray.tune.plans import (PRESETS, SCHEDULERS, SWEEPS, SweepPlan, apply_selection,
                               check_selection, parse_list, parse_settings,
                               refuse_owned_keys, selection_signal, check_trial_count,
                               with_given)
from ts3ray.tune.resources import (RaySettings, TrialResources, autoscaler_known,
                                   check_satisfiable, concurrent_capacity, ray_session,
                                   resolve_gpus, startable_node_types, startable_worker_limits)
from ts3ray.tune.runner import (SweepOptions, SweepOutcome, check_experiment,
                                check_scheduler_options, prepare, run_plan)
from ts3ray.tune.fusing import arrays_line, check_fuse, fuse_plan
from ts3ray.tune.search import check_sampler
from ts3ray.values import finite_float

OPTUNA_JOURNAL = "optuna-journal.log"  # a search's study (JournalStorage) in its sweep folder
ATTACHED_MAX_FAILURES = 3  # default retries on a cluster: a trial survives a few spot reclaims
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config values for every trial (e.g. epochs=20 data_root=/data)")
    parser.add_argument("--preset", choices=("quick", "paper"), default="quick",
                        help="quick: digits, short schedule, whole grid; paper: Sec. IV settings")
    parser.add_argument("--settings", help="DATASET:NOISE:RATE,... (default: the preset's)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--config", metavar="FILE",
                        help="YAML/JSON file of run keys for every trial (key=value wins)")
    parser.add_argument("--spec", metavar="FILE",
                        help="the whole sweep in one YAML file: kind, metric, parameters, "
                             "scheduler, resources, settings, seeds, config, options "
                             "(tune/spec.py); command-line flags win")
    where = parser.add_argument_group("storage, faults and resume")
    where.add_argument("--storage", help=f"local path or URI (default ${storage.STORAGE_ENV} "
                                         f"or ./{storage.DEFAULT_STORAGE})")
    where.add_argument("--name", help="experiment name, one path component of letters, digits, "
                                      "'.', '_', '-' (default NAME-PRESET)")
    where.add_argument("--resume", action="store_true",
                       help="finish an interrupted sweep (same plan and options; see README)")
    where.add_argument("--restart-errored", action="store_true",
                       help="with --resume: start errored trials again from scratch")
    where.add_argument("--trust-storage", action="store_true",
                       help="with --resume: hand Tune a sweep folder ts3ray cannot verify (object "
                            "stores; unsigned or shared folders) - only if only you can write it")
    where.add_argument("--max-failures", type=int, metavar="N",
                       help=f"retry a crashed trial N times from its last checkpoint (default "
                            f"{ATTACHED_MAX_FAILURES} on an attached cluster, 0 on local Ray)")
    where.add_argument("--checkpoint-every", type=int, metavar="K",
                       help="also checkpoint every K epochs (default: at every IMP level end "
                            "and on the --checkpoint-minutes timer)")
    where.add_argument("--checkpoint-minutes", type=finite_float, default=10.0, metavar="M",
                       help="checkpoint when M minutes passed since the last one (default 10)")
    where.add_argument("--keep-checkpoints", type=int, default=2, metavar="N",
                       help="checkpoints kept per trial (default 2)")
    where.add_argument("--detach", action="store_true",
                       help="check everything, then run the sweep's driver in its own session "
                            "(it survives a closed SSH connection or terminal) and return at "
                            "once; its output goes to a log file it names")
    where.add_argument("--tune-loggers", action="store_true",
                       help="also write Tune's CSV and TensorBoard files per trial")
    where.add_argument("--tracker", metavar="NAME",
                       help="log every trial (resolved config, per-epoch metrics) to "
                            "tensorboard | mlflow | wandb (optional extras: ts3ray[mlflow], "
                            "ts3ray[wandb])")
    res = parser.add_argument_group("resources")
    res.add_argument("--cpus-per-trial", type=finite_float, default=1.0)
    res.add_argument("--gpus-per-trial", type=_gpus, default=None, metavar="N|auto",
                     help="fractions pack trials on one GPU (0.25: four per GPU); default auto: "
                          "a share by architecture (resources.GPU_SHARE_BY_ARCH) when the "
                          "cluster has or can start a GPU node, else 0")
    res.add_argument("--gpu-memory-fraction", action="store_true",
                     help="cap each trial's GPU memory at its GPU share (torch)")
    res.add_argument("--num-cpus", type=int, help="embedded local Ray: CPUs (default: all)")
    res.add_argument("--num-gpus", type=int, help="embedded local Ray: GPUs (logical on CPU)")
    res.add_argument("--address", help="attach to a running cluster (e.g. auto)")
    res.add_argument("--fuse", type=int, default=1, metavar="K",
                     help="train up to K lottery runs that differ only in seed, lam, tau, "
                          "gamma as one fused model per trial (ce, ts3net; for GPUs, where a "
                          "small net is launch-bound; on a CPU it is slower); grid sweeps and "
                          "others that keep every cell; with ASHA each array halves itself at its rungs; "
                          "refused with searches (default 1)")
    res.add_argument("--max-concurrent", type=int,
                     help="at most this many trials at once (search default: as many as the "
                          "cluster can run at once, incl. nodes the autoscaler may add)")
    res.add_argument("--no-resource-check", action="store_true",
                     help="skip comparing the request with the nodes now up (autoscaling "
                          "clusters whose GPU nodes start on demand)")
    sched = parser.add_argument_group("choosing and early stopping")
    sched.add_argument("--scheduler", choices=SCHEDULERS,
                       help="asha: stop weak trials at IMP level ends, ranked within their group "
                            "(default: none; search: asha; refused for sensitivity/sparsity)")
    sched.add_argument("--grace-period", type=int,
                       help="ASHA: IMP levels a trial completes before it may be stopped (default 1)")
    sched.add_argument("--reduction-factor", type=finite_float, default=3.0,
                       help="ASHA: keep the best 1/F at each rung (default 3: on a 64-cell digits "
                            "grid it saved 47%% of trial-epochs against 39%% with 2, same pick)")
    sched.add_argument("--objective", choices=tuple(SELECTION_COLUMNS),
                       help="what a choosing sweep (search, asha) selects on: val (default: "
                            "S's accuracy on a held-out part of the noisy training set, "
                            "val_fraction=0.1 unless set), clean_val (a dataset's clean "
                            "validation set) or test (explicit only; tables then say so)")
    parser.add_argument("--verbose", type=int, default=0, help="Tune's own output (0-3)")


def add_sweep_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    add_common_arguments(parser)
    SWEEPS[name].add_arguments(parser)
    parser.set_defaults(sweep=name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sweep", metavar="NAME", required=True)
    for name, kind in SWEEPS.items():
        add_sweep_arguments(sub.add_parser(name, help=kind.help), name)


def run_sweep(name: str, argv: list[str]) -> int:
    """Entry point of `sweeps/NAME.py`: parse `argv` and run, every error one line (the guard
    of `ts3ray`: exit 2 for bad input, 130 for Ctrl-C, --debug for the traceback)."""
    from ts3ray.cli import DEBUG_FLAG, OneLineParser, debug_requested, run_guarded

    parser = OneLineParser(prog=f"sweeps/{name}.py", description=SWEEPS[name].help)
    add_sweep_arguments(parser, name)
    given = [a for a in argv if a != DEBUG_FLAG]

    def sweep() -> int:
        args = parser.parse_args(given)
        args.command_argv = ["sweep", name, *argv]
        return main(args)

    return run_guarded(sweep, debug=debug_requested(argv))


# -- from arguments to a plan and options --------------------------------------------------
def _gpus(text: str) -> float | None:
    """`--gpus-per-trial`: a number, or `auto` (None, resolved once Ray is up)."""
    if text.strip().lower() == "auto":
        return None
    return finite_float(text)


def base_values(args, preset) -> dict:
    from ts3ray.config import load_config_file

    given = load_config_file(args.config) if getattr(args, "config", None) else {}
    overrides = parse_overrides(args.overrides)
    for source, value in (("a key=value", overrides), ("--config", given)):
        refuse_owned_keys(value, source, parse_settings(args.settings), args.seed_list)
    values = {**preset.values, **given, **overrides}
    # relative paths break inside trial working directories: absolute ones everywhere
    values["data_root"] = storage.absolute(str(values.get("data_root", "data")))
    return with_given(values, [*given, *overrides])  # no-effect rules: only what the user gave


def check_name(name: str) -> str:
    """One safe path component: a sweep's Ray state and rows stay under --storage."""
    if not NAME_PATTERN.fullmatch(name) or name in (".", ".."):
        raise UserError(f"--name={name!r} is not allowed: one path component of letters, "
                        "digits, '.', '_' and '-', starting with a letter or digit (at most 128)")
    return name


def check_optuna_storage(spec: str | None) -> None:
    """A journal file in an existing, writable folder, or an RDB URL SQLAlchemy knows."""
    if not spec:
        return
    if "://" in spec:
        scheme = spec.split("://", 1)[0]
        if not re.fullmatch(r"[a-z][a-z0-9+]*", scheme):
            raise UserError(f"--optuna-storage={spec!r} is not allowed: a journal file path or an "
                            "RDB URL such as sqlite:///study.db or postgresql://host/db")
        return
    path = storage.absolute(spec)
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise UserError(f"--optuna-storage={spec!r} is a directory: give a journal file path "
                        "such as study.log")
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UserError(f"--optuna-storage={spec!r}: folder {folder} does not exist or is not "
                        "writable")


def check_storage(location: str) -> str:
    """An absolute storage location that is not a file (URIs are checked by pyarrow)."""
    location = storage.absolute(location)
    try:
        fs, path = storage.resolve(location)
        kind = fs.get_file_info(path).type.name
    except (OSError, ValueError) as err:
        raise storage_failure(location, err) from None
    if kind == "File":
        raise UserError(f"--storage={location!r} is a file: give a directory or a URI")
    if storage.is_local(location):
        from ts3ray.paths import check_output_dir

        check_output_dir(storage.resolve(location)[1], "--storage")
    return location


def storage_failure(location: str, err: Exception) -> Exception:
    """Bad input (a malformed URI, an unknown scheme or option: exit 2) or an OS failure
    (permission, network, credentials, timeout: exit 1), one line either way."""
    first = (str(err).splitlines() or [type(err).__name__])[0]
    bad_input = isinstance(err, ValueError) or any(
        word in first for word in ("Unrecognized filesystem type", "Unexpected query parameter",
                                   "Cannot parse URI", "Invalid URI", "Expected a URI"))
    if bad_input:
        return UserError(f"--storage={location!r} is not usable: {first}")
    from ts3ray.errors import RemoteStorageError, one_line

    return RemoteStorageError(f"--storage={location!r} cannot be reached: {one_line(first, 200)}")


def _given(value, default):
    """The option's value when given (0 included: it is then refused by its check)."""
    return default if value is None else value


def sweep_options(args, plan: SweepPlan, preset, scheduler: str) -> SweepOptions:
    every = _given(args.checkpoint_every, preset.checkpoint_every)
    if every is not None and every < 1:
        raise UserError(f"--checkpoint-every={every} is not allowed: K >= 1")
    if not args.checkpoint_minutes > 0:
        raise UserError(f"--checkpoint-minutes={args.checkpoint_minutes:g} is not allowed: M > 0")
    if args.keep_checkpoints < 1:
        raise UserError(f"--keep-checkpoints={args.keep_checkpoints} is not allowed: N >= 1")
    if args.max_failures is not None and args.max_failures < 0:
        raise UserError(f"--max-failures={args.max_failures} is not allowed: N >= 0")
    if args.restart_errored and not args.resume:
        raise UserError("--restart-errored applies only with --resume")
    if args.trust_storage and not args.resume:
        raise UserError("--trust-storage applies only with --resume (a new sweep unpickles "
                        "nothing from its storage); drop it, or add --resume")
    for option, value, least in (("--num-cpus", args.num_cpus, 1), ("--num-gpus", args.num_gpus, 0)):
        if value is not None and value < least:
            raise UserError(f"{option}={value} is not allowed: N >= {least}")
    check_optuna_storage(getattr(args, "optuna_storage", None))
    num_samples = _given(getattr(args, "num_samples", None), preset.num_samples)
    if num_samples < 1:
        raise UserError(f"--num-samples={num_samples} is not allowed: >= 1")
    if plan.search:
        check_trial_count("search", {"samples": num_samples})
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise UserError(f"--max-concurrent={args.max_concurrent} is not allowed: N >= 1")
    sampler = getattr(args, "sampler", "tpe")
    check_sampler(sampler)
    from ts3ray.tune.trackers import check_tracker

    check_tracker(args.tracker)
    check_fuse(args.fuse, search=plan.search)
    if args.fuse > 1 and args.tracker:
        raise UserError(f"--tracker={args.tracker} is not allowed with --fuse={args.fuse}: a "
                        "tracker logs one run per Tune trial and a fused trial holds K")
    name = check_name(args.name or f"{args.sweep}-{args.preset}")
    where = check_storage(args.storage or storage.default_storage())
    journal = getattr(args, "optuna_storage", None)
    if plan.search and not journal and storage.is_local(where):  # the study beside the sweep
        journal = storage.resolve(storage.join(where, name, OPTUNA_JOURNAL))[1]
    return SweepOptions(
        name=name,
        storage=where,
        resources=TrialResources(args.cpus_per_trial, args.gpus_per_trial),
        scheduler=scheduler,
        grace_period=_given(args.grace_period, preset.grace_period),
        reduction_factor=args.reduction_factor,
        max_concurrent=args.max_concurrent,
        max_failures=_given(args.max_failures, ATTACHED_MAX_FAILURES
                            if RaySettings(args.address).attaches else 0),
        checkpoint_every=every,
        checkpoint_minutes=args.checkpoint_minutes,
        keep_checkpoints=args.keep_checkpoints,
        restart_errored=args.restart_errored,
        trust_storage=args.trust_storage,
        tune_loggers=args.tune_loggers,
        tracker=args.tracker,
        gpu_memory_fraction=args.gpu_memory_fraction,
        num_samples=num_samples,
        sampler=sampler,
        seed=args.seed_list[0],
        optuna_storage=journal,
        resume=args.resume,
        verbose=args.verbose,
        fuse=args.fuse,
    )


def build(args) -> tuple[SweepPlan, SweepOptions]:
    """Validate everything (configs, data files, options) before Ray starts."""
    preset = PRESETS[args.sweep][args.preset]
    args.settings = args.settings or preset.settings
    args.seed_list = parse_list("--seeds", args.seeds, int)
    if hasattr(args, "grid"):
        args.grid = args.grid or preset.grid.split()
    scheduler = args.scheduler or SWEEPS[args.sweep].default_scheduler
    signal = selection_signal(args.sweep, scheduler, args.objective)
    plan = SWEEPS[args.sweep].plan(args, apply_selection(base_values(args, preset), signal))
    plan.selected_on = signal
    check_selection(plan)
    opts = sweep_options(args, plan, preset, scheduler)
    check_scheduler_options(plan, opts)
    warn_protocols(plan)
    return fuse_plan(plan, opts.fuse), opts


def warn_protocols(plan: SweepPlan) -> None:
    """One line per distinct out-of-regime constant among the sweep's trials."""
    from ts3ray.config import RunConfig
    from ts3ray.method.registry import protocol_warnings

    seen: list[str] = []
    for cell in plan.cells or [{}]:
        for line in protocol_warnings(RunConfig(**{**plan.common, **cell})):
            if line not in seen:
                seen.append(line)
                warn(line)


# -- output ---------------------------------------------------------------------------------
def print_table(plan: SweepPlan, opts: SweepOptions, args) -> None:
    """The sweep's paper-style table (levels rows), or the best trials of a search."""
    from ts3ray.results.load import read_table
    from ts3ray.results.render import render_md
    from ts3ray.results.tables import TableOptions, sensitivity_table, sparsity_table

    levels = read_table(opts.results_uri, "levels")
    if plan.table == "sensitivity":
        params = tuple(parse_list("--params", args.params))
        model = sensitivity_table(levels, TableOptions(params=params, base=plan.base_point))
    elif plan.table == "sparsity":
        rows = ("arch", "variant") if levels["arch"].nunique() > 1 else ("variant",)
        model = sparsity_table(levels, TableOptions(rows=rows))
    elif plan.table == "compare":  # every method dense and at the highest sparsity
        from ts3ray.results.tables import compare_table

        top = float(levels["sparsity"].max())
        model = compare_table(levels, TableOptions(sparsity=(0.0, top) if top > 0 else None))
    else:
        print(best_trials(levels, plan.selected_on))
        return
    print(render_md(model))


def best_trials(levels, signal: str | None, top: int = 10) -> str:
    """Full-budget trials ranked by the sweep's selection signal at their highest level
    (its last epoch), with the test accuracy of that level beside it. A sweep that chose
    nothing is ranked by validation accuracy where it has a split, else listed by test
    accuracy and said to be a report only."""
    last = levels.sort_values("round").drop_duplicates("trial_id", keep="last")
    full = last[~last["stopped_early"].astype(bool)]
    has_val = full["val_acc_sparse_last"].notna().any()
    ranked_on = signal or ("val" if has_val else "test")
    selected_by = f"{SELECTION_COLUMNS[ranked_on]}_last"
    shown = [selected_by] if selected_by != "acc_sparse_last" else []
    columns = ["trial_id", *METHOD_PARAMS, "sparsity", *shown, "acc_sparse_last"]
    ranked = full.sort_values(selected_by, ascending=False)[columns].head(top).copy()
    percent = ["sparsity", *shown, "acc_sparse_last"]  # accuracies and sparsity in percent,
    ranked[percent] = (100 * ranked[percent].astype(float)).round(2)  # parameters as they are
    ranked = ranked.rename(columns={c: f"{c} (%)" for c in percent})
    ranked[[c for c in METHOD_PARAMS if c in ranked]] = ranked[
        [c for c in METHOD_PARAMS if c in ranked]].round(3)
    text = ranked.to_string(index=False)
    if signal == "test":
        how = " (selected on TEST accuracy, as asked)"
    elif ranked_on == "test":
        how = " (a report: this sweep chose nothing and has no validation split)"
    else:
        how = "; acc_sparse_last is test accuracy, reported only"
    return f"best {len(ranked)} of {len(full)} full-budget trials by {selected_by}{how}:\n{text}"


def summary(outcome: SweepOutcome, opts: SweepOptions, seconds: float) -> str:
    files = ", ".join(f"{table} {before} -> {after}"
                      for table, (before, after) in outcome.compacted.items())
    compacted = f" (files compacted: {files})" if files else ""
    return (f"{outcome.trials} trials in {seconds:.0f} s: {outcome.completed} full budget, "
            f"{outcome.stopped_early} stopped early, {len(outcome.errors)} failed; results in "
            f"{opts.results_uri}/epochs and {opts.results_uri}/levels{compacted}")


def plan_archs(plan: SweepPlan) -> tuple[str, ...]:
    return tuple(sorted({cell.get("arch", plan.common.get("arch")) for cell in plan.cells}
                        or {plan.common["arch"]}))


def plan_devices(plan: SweepPlan) -> set[str]:
    return {str(cell.get("device", plan.common.get("device", "auto"))).split(":")[0]
            for cell in plan.cells or [{}]}


def trial_resources(plan: SweepPlan, opts: SweepOptions, settings: RaySettings, nodes: list,
                    startable: dict) -> TrialResources:
    """The per-trial request, `auto` GPUs resolved; `device=cuda` with no GPU refused."""
    devices = plan_devices(plan)
    cpu_only = devices == {"cpu"}  # auto GPUs: none then
    resources = resolve_gpus(opts.resources, [] if cpu_only else nodes,
                             {} if cpu_only else startable, archs=plan_archs(plan),
                             cannot_inspect=settings.attaches and not autoscaler_known())
    if "cuda" in devices and not resources.gpu:
        raise UserError("device=cuda is not allowed with no GPU per trial: this cluster has no "
                        "GPU (or --gpus-per-trial is 0); use device=auto or device=cpu, or give "
                        "the trials a GPU share")
    return resources


def driver_log(opts: SweepOptions) -> str:
    """Where a detached driver writes its output: beside the sweep on local storage, else
    under ~/.ts3ray/logs on the machine that runs it."""
    folder = opts.storage if storage.is_local(opts.storage) else "~/.ts3ray/logs"
    return storage.absolute(storage.join(folder, f"{opts.name}.driver.log"))


def detach(args, opts: SweepOptions) -> int:
    """Start this same command (without --detach) in a new session, output to a log file."""
    import subprocess

    log = driver_log(opts)
    os.makedirs(os.path.dirname(log), exist_ok=True)
    argv = [a for a in args.command_argv if a != "--detach"]
    with open(log, "ab") as out:
        child = subprocess.Popen([sys.executable, "-m", "ts3ray.cli", *argv], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    print(f"sweep {opts.name} runs detached (driver pid {child.pid}); output: {log} "
          f"(follow with: tail -f {log})")
    return 0


def apply_spec(args):
    """`--spec FILE`: the spec's words (tune/spec.py) under what the command line gave."""
    if not getattr(args, "spec", None):
        return args
    from ts3ray.cli import OneLineParser
    from ts3ray.tune.spec import spec_words

    parser = OneLineParser(prog=f"ts3ray sweep {args.sweep}")
    add_sweep_arguments(parser, args.sweep)
    flags = {o[2:] for action in parser._actions for o in action.option_strings if o.startswith("--")}
    overrides, words = spec_words(args.spec, args.sweep, flags)
    merged = vars(parser.parse_args([*overrides, *words]))
    for key, value in vars(args).items():
        if key != "overrides" and value != parser.get_default(key):  # given on the command line
            merged[key] = value
    merged["overrides"] = merge_overrides(merged["overrides"], args.overrides)
    return argparse.Namespace(**merged)


def merge_overrides(spec: list[str], command_line: list[str]) -> list[str]:
    """The spec's key=value words with the command line's over them, key by key (a key
    repeated within one source is refused later, by parse_overrides)."""
    given = {item.partition("=")[0].strip() for item in command_line}
    return [*(item for item in spec if item.partition("=")[0].strip() not in given),
            *command_line]


def main(args) -> int:
    """The sweep (`run_sweep_command`); a Ctrl-C or SIGTERM once its experiment exists ends
    with the command that resumes it (the CLI's one line: exit 130 or 143)."""
    try:
        return run_sweep_command(args)
    except KeyboardInterrupt as err:  # Terminated and SweepInterrupted too
        if getattr(err, "resumable", False):
            setattr(err, RESUME_ATTRIBUTE, resume_command(args))
        raise


def resume_command(args) -> str:
    """This command line, as `ts3ray ...`, with --resume (and without --detach)."""
    import shlex

    words = [w for w in getattr(args, "command_argv", None) or ["sweep", args.sweep]
             if w not in ("--resume", "--detach")]
    return shlex.join(["ts3ray", *words, "--resume"])


def run_sweep_command(args) -> int:
    args = apply_spec(args)  # before anything else: a spec's errors, all of them, first
    plan, opts = build(args)
    if getattr(args, "detach", False):
        return detach(args, opts)
    controlled = plan.sweep == "compare" and plan.common.get("protocol") == "controlled"
    if controlled:  # its cells get the tuning's picks first: the full check comes with them
        check_experiment(opts)
    else:
        prepare(plan, opts)  # before Ray starts: nothing to overwrite, or a trusted sweep to resume
    if args.verbose == 0:  # the per-trial lines below replace Tune's status tables
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    settings = RaySettings(args.address, args.num_cpus, args.num_gpus)
    what = f"{plan.num_trials} trials" if not plan.search else f"{opts.num_samples} trials"
    print(f"ts3ray: sweep {opts.name} ({plan.sweep}, {what}) checked; starting Ray ...",
          file=sys.stderr, flush=True)  # the first line, before Ray's own
    if args.verbose == 0:
        import logging

        logging.getLogger("ray.tune").setLevel(logging.WARNING)  # no "Wrote the latest ..."
    started = time.perf_counter()
    with ray_session(settings):
        import ray

        nodes = ray.nodes()
        startable = startable_node_types() if settings.attaches else {}  # autoscaled cluster
        opts = dataclasses.replace(opts, resources=trial_resources(plan, opts, settings, nodes,
                                                                   startable))
        if not args.no_resource_check:
            check_satisfiable(opts.resources, nodes, startable)
        if plan.search and opts.max_concurrent is None:  # else Tune keeps one trial pending
            limits = startable_worker_limits() if settings.attaches else {}
            capacity = concurrent_capacity(opts.resources, nodes, startable, limits)
            opts = dataclasses.replace(opts, max_concurrent=max(1, min(capacity, opts.num_samples)))
        if controlled:
            from ts3ray.tune.controlled import run_tuning

            plan = fuse_plan(run_tuning(plan, opts, args.tune_budget, args.tune_seed, run_plan),
                             opts.fuse)  # the tuning runs unfused (Optuna, ASHA)
        what = f"{plan.num_trials} trials" if not plan.search else f"{opts.num_samples} trials"
        if plan.arrays:
            print(arrays_line(plan.arrays), file=sys.stderr, flush=True)
            what = f"{plan.num_trials} lottery runs in {len(plan.arrays)} trials"
        print(f"{'resuming' if opts.resume else 'starting'} sweep {opts.name} ({plan.sweep}, "
              f"{what}) in {opts.experiment_path}", file=sys.stderr, flush=True)
        outcome = run_plan(plan, opts)
    for line in outcome.errors:
        print(f"failed: {line}", file=sys.stderr)
    print(summary(outcome, opts, time.perf_counter() - started))
    if outcome.completed:
        try:
            print_table(plan, opts, args)
        except UserError as err:  # the sweep itself succeeded
            print(f"ts3ray: no table: {err}", file=sys.stderr)
    for line in next_steps(plan, opts):
        print(line)
    return 1 if outcome.errors else 0


def next_steps(plan: SweepPlan, opts: SweepOptions) -> list[str]:
    """What to run next on this sweep's results: its table, plot, Pareto ticket, study."""
    where = opts.experiment_path
    table = plan.table or ("pareto" if plan.selected_on else "compare")
    pareto = (" --select acc_sparse_last" if plan.common.get("val_fraction", 0) in (0, 0.0, None)
              and not plan.selected_on else "")
    lines = [f"next: ts3ray table {table} {where}   |   ts3ray plot pareto {where}{pareto} "
             f"--out {opts.name}-pareto.png   |   ts3ray ticket export {where} --pareto{pareto} "
             f"--out {opts.name}-pick.safetensors"]
    if plan.search and opts.optuna_storage:
        journal = opts.optuna_storage
        lines.append(f"next: optuna-dashboard {journal}"
                     f"   (study {opts.name}; pip install optuna-dashboard)")
    if opts.tracker == "tensorboard":
        lines.append(f"next: tensorboard --logdir {where}")
    elif opts.tracker == "mlflow":
        lines.append(f"next: mlflow ui   (experiment {opts.name})")
    return lines
