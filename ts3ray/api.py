"""The Python API: what `ts3ray run`, `ts3ray sweep` and the result commands do, for a
notebook or a script (no subprocess calls).

    import ts3ray
    r = ts3ray.run({"dataset": "digits", "epochs": 5, "rounds": 2}, out="runs/a")
    s = ts3ray.sweep("search", {"epochs": 4, "rounds": 1}, num_samples=8, storage="ray_results")
    s.levels, s.epochs          # pandas DataFrames (the documented Parquet schema)
    s.table("pareto")           # the table as text (markdown; format="csv"|"latex"|...)
    s.plot("pareto", "front.png")
    s.tickets()                 # the stored tickets: trial, level, sparsity, accuracy, bytes
    s.export_ticket("t.safetensors", pareto=True)

`run` and `sweep` go through the same validation and code as the commands (run_cli.py,
tune/cli.py: the commands parse text, these take typed values), and raise
`ts3ray.errors.UserError` (one line) on bad input instead of exiting. Values are config keys
(`ts3ray run`'s key=value) and options (the command's --flags, underscores for dashes:
`num_samples=8`, `scheduler="asha"`, `tracker="tensorboard"`).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from ts3ray.errors import UserError


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    return "none" if value is None else str(value)


def _flags(options: dict[str, Any]) -> list[str]:
    """{"num_samples": 8, "resume": True, "grid": ["lam=0,1"]} -> command-line flags."""
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list) and key == "grid":
            argv += [flag, *value]
        else:
            argv += [flag, _text(value)]
    return argv


def _overrides(config: dict[str, Any] | None) -> list[str]:
    return [f"{k}={_text(v)}" for k, v in (config or {}).items()]


def _parse(command: list[str]) -> argparse.Namespace:
    from ts3ray.cli import build_parser

    args = build_parser(command).parse_args(command)
    args.command_argv = list(command)
    return args


def run(config: dict[str, Any] | None = None, *, out: str, resume: bool = False,
        quiet: bool = True, threads: int | None = None, ticket: str | None = None,
        **options) -> "Results":
    """One lottery run (`ts3ray run`) into `out`; returns its results."""
    from ts3ray import run_cli

    values = dict(config or {})
    if ticket is not None:
        values["ticket"] = ticket
    argv = ["run", *_overrides(values), "--out", str(out),
            *_flags({"resume": resume, "quiet": quiet, "threads": threads, **options})]
    run_cli.main(_parse(argv))
    return load(out)


def sweep(kind: str, config: dict[str, Any] | None = None, *, spec: str | None = None,
          **options) -> "Results":
    """A Ray Tune sweep (`ts3ray sweep KIND`): `config` holds run keys for every trial,
    `options` the sweep's flags (storage, name, preset, num_samples, scheduler, ...)."""
    from ts3ray import storage
    from ts3ray.tune import cli as tune_cli

    argv = ["sweep", kind, *_overrides(config), *_flags({"spec": spec, **options})]
    args = _parse(argv)
    code = tune_cli.main(args)
    if code:
        raise UserError(f"sweep {kind}: {code} - some trials failed (see the lines above)")
    plan_name = args.name or f"{args.sweep}-{args.preset}"
    return load(storage.join(storage.absolute(args.storage or storage.default_storage()),
                             plan_name))


@dataclass
class Results:
    """The results of a run or sweep (any RESULTS location the commands accept)."""

    location: str

    @property
    def levels(self):
        from ts3ray.results.load import read_table

        return read_table(self.location, "levels")

    @property
    def epochs(self):
        from ts3ray.results.load import read_table

        return read_table(self.location, "epochs")

    def table(self, kind: str, format: str = "md", **options) -> str:
        """`ts3ray table KIND` as text; options as the command's (--metric, --within, ...)."""
        from ts3ray.results import cli_table
        from ts3ray.results.render import RENDERERS

        from ts3ray.results.tables import DEFAULT_METRIC

        metric = options.pop("metric", DEFAULT_METRIC)
        args = _namespace(cli_table.KIND_OPTIONS, {"kind": kind, "metric": metric}, options)
        if kind not in cli_table.TABLE_KINDS:
            raise UserError(f"table kind={kind!r} is not allowed: one of {', '.join(cli_table.TABLE_KINDS)}")
        if format not in RENDERERS:
            raise UserError(f"format={format!r} is not allowed: one of {', '.join(RENDERERS)}")
        model = cli_table.TABLE_KINDS[kind].build(self.levels, cli_table.table_options(args))
        return RENDERERS[format](model)

    def plot(self, kind: str, out: str, dpi: int = 150, **options) -> str:
        """`ts3ray plot KIND --out OUT`; returns `out`."""
        from ts3ray.results import cli_plot

        if kind not in cli_plot.PLOT_KINDS:
            raise UserError(f"plot kind={kind!r} is not allowed: one of {', '.join(cli_plot.PLOT_KINDS)}")
        args = _namespace(cli_plot.KIND_OPTIONS,
                          {"kind": kind, "results": self.location, "out": str(out), "dpi": dpi},
                          {k: _text(v) if k in ("by", "round", "within") else v
                           for k, v in options.items()})
        cli_plot.draw(args)
        return str(out)

    def tickets(self):
        """The stored tickets (`ts3ray ticket list`) as a DataFrame."""
        from ts3ray.results.cli_ticket import ticket_rows

        return ticket_rows(self.location)

    def ticket(self, trial: str, level: int):
        """The self-contained ticket of a trial and level (results/tickets.Ticket)."""
        from ts3ray.results import tickets

        return tickets.assemble(tickets.tickets_root(self.location), trial, level)

    def export_ticket(self, out: str, *, trial: str | None = None, level: int | None = None,
                      pareto: bool = False, within: float = 1.0) -> str:
        """`ts3ray ticket export`; returns `out`."""
        from ts3ray.results import cli_ticket
        from ts3ray.results.pareto import DEFAULT_SELECT

        cli_ticket.export_main(argparse.Namespace(results=self.location, trial=trial, level=level,
                                                  pareto=pareto, within=within,
                                                  select=DEFAULT_SELECT, out=str(out)))
        return str(out)

    def info(self) -> list[str]:
        """`ts3ray results info`: provenance lines (and warnings, prefixed `warning:`)."""
        from ts3ray.results.info import report

        lines, warnings = report(self.location)
        return [*lines, *(f"warning: {w}" for w in warnings)]


def _namespace(known: tuple[str, ...], fixed: dict[str, Any], options: dict[str, Any]):
    """The command's argument namespace: its kind options (None unless given) and `fixed`."""
    unknown = [k for k in options if k not in known]
    if unknown:
        raise UserError(f"option {unknown[0]!r} is not allowed: one of {', '.join(known)}")
    return argparse.Namespace(**{**{name: None for name in known}, **fixed, **options})


def load(results: str) -> Results:
    """The results at `results` (a sweep folder, its results/, a run folder, a .parquet)."""
    from ts3ray import storage

    if not storage.exists(str(results)):
        raise UserError(f"RESULTS '{results}' does not exist")
    return Results(str(results))
