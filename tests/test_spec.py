"""Sweep spec files (tune/spec.py) and --config for sweeps: checked before Ray starts."""
from __future__ import annotations

import textwrap

from ts3ray.cli import build_parser, main as cli
from ts3ray.tune.cli import apply_spec, build

BAD = """\
kind: grid
metric: accuracy
parameters:
  lam: {distribution: normal, low: 0, high: 1}
  colour: [1, 2]
scheduler: {name: hyperband, grace_period: -1}
resources: {cpus_per_trial: many}
settings: [digits-sym-0.4]
seeds: [zero]
config: {epochs: 0.5}
options: {num_sample: 8}
early_terminate: {type: hyperband}
"""


def test_a_spec_with_an_error_in_every_field_is_refused_one_line_each(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text(BAD)
    storage = tmp_path / "storage"
    assert cli(["sweep", "search", "--spec", str(spec), "--storage", str(storage)]) == 2
    lines = capsys.readouterr().err.splitlines()
    where = f"ts3ray: error: --spec {spec}: "
    assert all(line.startswith(where) for line in lines)
    fields = [line[len(where):].split(":")[0] for line in lines]
    assert fields == ["early_terminate", "kind", "metric", "parameters.lam.distribution",
                      "parameters.colour", "scheduler.name", "scheduler.grace_period",
                      "resources.cpus_per_trial", "settings", "seeds", "config", "options.num_sample"]
    assert "config: epochs=0.5 is not allowed: expected an integer" in lines[10]
    assert not storage.exists()  # nothing started, nothing written


def _args(argv):
    return build_parser(argv).parse_args(argv)


def test_a_spec_becomes_the_sweep_and_the_command_line_wins(tmp_path):
    spec = tmp_path / "search.yaml"
    spec.write_text(textwrap.dedent("""\
        kind: search
        metric: val
        parameters:
          lam: {distribution: uniform, low: 0.2, high: 0.8}
          e1: {distribution: int, low: 0, high: 2}
        scheduler: {name: asha, grace_period: 1, reduction_factor: 2}
        resources: {cpus_per_trial: 1, max_concurrent: 2}
        settings: [digits:sym:0.2]
        seeds: [3]
        config: {epochs: 4, e1: 1, e2: 1, rounds: 1, tau: 0.6}
        options: {num_samples: 5, name: from-spec}
        """))
    argv = ["sweep", "search", "--spec", str(spec), "--storage", str(tmp_path), "--num-samples",
            "7", "rounds=2"]
    plan, opts = build(apply_spec(_args(argv)))
    assert opts.name == "from-spec" and opts.num_samples == 7  # the command line wins
    assert opts.scheduler == "asha" and opts.reduction_factor == 2 and opts.max_concurrent == 2
    assert plan.common["rounds"] == 2 and plan.common["tau"] == 0.6 and plan.common["seed"] == 3
    assert plan.common["noise_rate"] == 0.2 and plan.selected_on == "val"
    assert plan.space.bounds == (("lam", 0.2, 0.8), ("e1", 0, 2))
    assert plan.space.range("tau") == (0.0, 1.0) and plan.space.range("e1") == (0, 2)
    assert opts.optuna_storage == str(tmp_path / "from-spec" / "optuna-journal.log")


def test_a_grid_spec_and_a_config_file_for_sweeps(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text("parameters: {lam: [0, 1], prune_fraction: {values: [0.3, 0.5]}}\n")
    config = tmp_path / "run.yaml"
    config.write_text("epochs: 3\ne1: 1\ne2: 1\nrounds: 1\n")
    plan, _ = build(apply_spec(_args(["sweep", "grid", "--spec", str(spec), "--config", str(config),
                                      "--storage", str(tmp_path), "e2=2"])))
    cells = sorted((c["lam"], c["prune_fraction"]) for c in plan.cells)
    assert cells == [(0.0, 0.3), (0.0, 0.5), (1.0, 0.3), (1.0, 0.5)]
    assert plan.common["epochs"] == 3 and plan.common["e2"] == 2  # key=value over --config
