"""The compare sweep: its plan (methods x settings x seeds, per-method options, bad input) and
one tiny end-to-end sweep on the shared local Ray whose printed table has every method."""
from __future__ import annotations

import argparse

import pytest

from ts3ray.config import METHOD_NAMES
from ts3ray.errors import UserError
from ts3ray.tune.cli import add_arguments, build


@pytest.fixture(scope="module", autouse=True)
def one_time_costs():
    """The process's first torch.optim construction and sklearn import (seconds on a busy
    machine) are paid here, not inside the first test that meets them."""
    import sklearn.mixture  # noqa: F401
    import torch

    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def parse(argv: list[str]):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def items(text: str) -> dict[str, str]:
    """A resolved method_options string as a dict."""
    return dict(item.split("=", 1) for item in text.split(",") if item)


def test_compare_plan_crosses_methods_settings_and_seeds():
    plan, opts = build(parse(["compare", "--seeds", "0,1", "--settings",
                              "digits:sym:0.4,digits:sym:0.2"]))
    configs = [{**plan.common, **cell} for cell in plan.cells]
    assert len(configs) == len(METHOD_NAMES) * 2 * 2
    assert {(c["method"], c["noise_rate"], c["seed"]) for c in configs} == {
        (m, r, s) for m in METHOD_NAMES for r in (0.4, 0.2) for s in (0, 1)}
    # quick: digits, E/E1/E2 = 20/5/10, p_f 0.5, R 3; warm-ups and ramps scaled to it
    assert (plan.common["epochs"], plan.common["e1"], plan.common["e2"]) == (20, 5, 10)
    assert (plan.common["rounds"], plan.common["prune_fraction"]) == (3, 0.5)
    options = {c["method"]: items(c["method_options"]) for c in configs}
    assert options["dividemix"]["warmup_epochs"] == "5" and options["jocor"]["t_k"] == "5"
    assert options["jocor"]["lam"] == "0.95"  # the rest resolved: MNIST's published lambda
    assert options["ce"] == {} and options["ts3net"] == {}
    assert {c["protocol"] for c in configs} == {"published"}
    assert opts.name == "compare-quick" and plan.table == "compare"


def test_compare_method_options_merge_over_the_preset():
    plan, _ = build(parse(["compare", "--methods", "jocor,dividemix,ce", "--method-options",
                           "dividemix.evaluate=ensemble jocor.lam=0.5"]))
    options = {cell["method"]: items(cell["method_options"]) for cell in plan.cells}
    assert options["jocor"]["lam"] == "0.5" and options["dividemix"]["evaluate"] == "ensemble"
    assert options["dividemix"]["warmup_epochs"] == "5" and options["ce"] == {}


def test_compare_paper_preset_is_table_one(tmp_path):
    args = parse(["compare", "--preset", "paper", "--methods", "ce", f"data_root={tmp_path}"])
    with pytest.raises(UserError, match="mnist"):  # no MNIST files there
        build(args)
    from ts3ray.tune.plans import PRESETS

    paper = PRESETS["compare"]["paper"]
    assert paper.settings == "mnist:sym:0.2,mnist:sym:0.4,mnist:asym:0.2"
    assert paper.values == {"prune_fraction": 0.5, "rounds": 3}


@pytest.mark.parametrize("argv, message", [
    (["--methods", "ce,adam"], "--methods 'adam' is not allowed"),
    (["--method-options", "lam=0.5"], "--method-options item 'lam=0.5' is not allowed"),
    (["--method-options", "jocor.lambda=0.5"], "lambda='0.5' is not allowed"),
    (["method=ce"], "method= is not allowed for the compare sweep"),
    (["--scheduler", "asha"], "--scheduler asha is not allowed for the compare sweep"),
])
def test_compare_bad_input_is_one_line(argv, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")) as err:
        build(parse(["compare", *argv]))
    assert "\n" not in str(err.value)


def test_compare_trials_to_the_printed_table(tmp_path, capsys):
    """The plan's trials run as lottery runs (what each Tune trial runs) and the sweep's
    closing table: every method dense and at the highest sparsity (Ray-free; the trainable
    itself is covered by the other sweep tests)."""
    from ts3ray.config import make_config
    from ts3ray.results.writer import level_table, write_parquet
    from ts3ray.run import LotteryRun
    from ts3ray.tune.cli import print_table

    args = parse(["compare", "--storage", str(tmp_path), "--methods", "ce,ts3net",
                  "epochs=2", "e1=1", "e2=1", "rounds=1"])
    plan, opts = build(args)
    for i, cell in enumerate(plan.cells):
        config = make_config({**plan.common, **cell}, given=())  # as the trainable does
        run = LotteryRun(config)
        list(run.epochs())
        table = level_table(run.level_rows, config.to_dict())
        write_parquet(table, f"{opts.results_uri}/levels/trial-{i}.parquet")
    print_table(plan, opts, args)
    out = capsys.readouterr().out
    assert "digits, 0%" in out and "digits, 50%" in out  # every method dense and sparse
    for label in ("| ce |", "| ts3net (dense) |", "| ts3net |"):
        assert out.count(label) == 2
    assert "| method | sym-40% | Params (M) | Non-zero |" in out


@pytest.mark.parametrize("argv, message", [
    (["--tune-budget", "4"], "--tune-budget applies only with --protocol controlled"),
    (["--protocol", "controlled"], "--tune-budget=None is not allowed with --protocol controlled"),
    (["protocol=shared"], "protocol= is not allowed for the compare sweep: use --protocol"),
    (["--protocol", "controlled", "--tune-budget", "2", "val_fraction=0"],
     "--protocol controlled needs validation data"),
    (["--protocol", "controlled", "--tune-budget", "2", "--tune-seed", "0"],
     "--tune-seed=0 is one of the comparison's --seeds"),
])
def test_controlled_bad_input_is_one_line(argv, message):
    from ts3ray.tune.controlled import check_controlled, tuning_jobs

    with pytest.raises(UserError, match=message.replace("(", r"\(")) as err:
        plan, _ = build(parse(["compare", "--methods", "ce,jocor", *argv]))
        check_controlled(plan)
        tuning_jobs(plan, parse(["compare", *argv]).tune_seed)
    assert "\n" not in str(err.value)


def test_controlled_tunes_each_method_on_validation_then_compares_the_picks(local_ray,
                                                                            tmp_path):
    """Every method with constants to tune gets a search of the same budget on the tuning
    seed (CE has none); the comparison runs each method's pick (its best validation
    accuracy) on the comparison's seeds under protocol=controlled."""
    import pandas as pd

    from ts3ray.tune.cli import run_sweep

    code = run_sweep("compare", [
        "--storage", str(tmp_path), "--name", "ctl", "--methods", "ce,jocor",
        "--protocol", "controlled", "--tune-budget", "2", "--tune-seed", "7", "--seeds", "0",
        "epochs=2", "e1=1", "e2=1", "rounds=1", "--method-options", "jocor.t_k=1"])
    assert code == 0
    tuned = pd.read_parquet(tmp_path / "ctl.tune-jocor-1" / "results" / "levels")
    assert set(tuned["seed"]) == {7} and tuned["trial_id"].nunique() == 2
    assert not (tmp_path / "ctl.tune-ce-0").exists()  # nothing to tune
    last = tuned[tuned["round"] == 1].sort_values("val_acc_sparse_last", ascending=False)
    compared = pd.read_parquet(tmp_path / "ctl" / "results" / "levels")
    assert set(compared["protocol"]) == {"controlled"} and set(compared["seed"]) == {0}
    jocor_rows = compared[compared["method"] == "jocor"]
    assert set(jocor_rows["method_options"]) == {last.iloc[0]["method_options"]}
    assert set(tuned["method_options"]) != {last.iloc[0]["method_options"]}  # it varied
