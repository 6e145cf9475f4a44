"""The frictions of issue 21, each as a new user met it: --help, plot's silence, the search
table's units, competitors' progress lines, the README's pareto example, what to run next."""
from __future__ import annotations

import pandas as pd
import pytest

from ts3ray.cli import main as cli
from ts3ray.tune.cli import best_trials, next_steps
from ts3ray.tune.plans import SweepPlan
from ts3ray.tune.runner import SweepOptions, trial_label


def test_help_opens_with_what_ts3ray_is_for(capsys):
    with pytest.raises(SystemExit) as done:
        cli(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].startswith("TS3-Net lottery tickets under noisy labels")
    assert "sub-command lives in its own module" not in out
    assert "ts3ray ticket export ray_results/search-quick --pareto" in out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("friction") / "run"
    assert cli(["run", "dataset=digits", "epochs=2", "e1=1", "e2=1", "rounds=1", "--out",
                str(out), "--quiet", "--threads", "1"]) == 0
    return out


def test_plot_says_what_it_wrote(run_dir, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "s.png"
    assert cli(["plot", "sparsity", str(run_dir), "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out} (sparsity of {run_dir})\n"


def test_the_pareto_example_of_a_sweep_without_validation_data(run_dir, capsys):
    assert cli(["table", "pareto", str(run_dir)]) == 2  # no validation split: says how
    assert "pass --select acc_sparse_last" in capsys.readouterr().err
    assert cli(["table", "pareto", str(run_dir), "--select", "acc_sparse_last"]) == 0
    plan = SweepPlan(sweep="grid", common={"val_fraction": 0.0}, cells=[{}])
    (line,) = next_steps(plan, SweepOptions(name="grid-quick", storage="/r"))
    assert "ts3ray plot pareto /r/grid-quick --select acc_sparse_last" in line


def test_the_search_table_shows_every_accuracy_in_percent():
    levels = pd.DataFrame({
        "trial_id": ["a", "a", "b"], "round": [0, 1, 1], "stopped_early": [False] * 3,
        "lam": [0.51234, 0.51234, 0.2], "tau": [0.7] * 3, "gamma": [0.5] * 3, "e1": [1] * 3,
        "e2": [1] * 3, "sparsity": [0.0, 0.5, 0.5], "val_acc_sparse_last": [0.4, 0.48951, 0.5],
        "acc_sparse_last": [0.7, 0.816666, 0.80833]})
    text = best_trials(levels, "val").splitlines()
    assert text[1].split() == ["trial_id", "lam", "tau", "gamma", "e1", "e2", "sparsity", "(%)",
                               "val_acc_sparse_last", "(%)", "acc_sparse_last", "(%)"]
    assert text[2].split() == ["b", "0.200", "0.7", "0.5", "1", "1", "50.0", "50.00", "80.83"]
    assert text[3].split() == ["a", "0.512", "0.7", "0.5", "1", "1", "50.0", "48.95", "81.67"]


def test_competitors_progress_lines_show_no_ts3net_constants():
    ts3 = {"dataset": "digits", "method": "ts3net", "variant": "full", "lam": 0.5, "seed": 0}
    assert trial_label(ts3) == "dataset=digits method=ts3net variant=full lam=0.5 seed=0"
    jocor = {**ts3, "method": "jocor", "prune_fraction": 0.5}
    assert trial_label(jocor) == "dataset=digits method=jocor seed=0 prune_fraction=0.5"
