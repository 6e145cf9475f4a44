"""Issue 22, items 5-6: numbers checked after parsing, trial counts before materialising,
contradictions refused. Each case runs in process through `ts3ray.cli.main`: exit 2, one
line on stderr naming the key and what is allowed, nothing written."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ts3ray.cli import main
from ts3ray.config import NO_EFFECT_RULES, RunConfig, make_config, no_effect

REPO = Path(__file__).resolve().parent.parent
RUN = ["run", "dataset=digits", "noise=sym", "noise_rate=0.4", "epochs=3", "e1=1", "e2=1",
       "rounds=1", "device=cpu"]
TS = ["sweep", "grid", "epochs=3", "e1=1", "e2=1", "rounds=1"]
COMPARE = ["sweep", "compare", "epochs=3", "e1=1", "e2=1", "rounds=1"]
SEARCH = ["sweep", "search", "epochs=3", "e1=1", "e2=1", "rounds=1"]

RUN_CASES = [  # (id, extra key=value items, text in the one line)
    ("1e309", ["lam=1e309"], "lam='1e309' is not allowed: a finite number (it reads as inf)"),
    ("nan", ["weight_decay=nan"], "weight_decay='nan' is not allowed: a finite number"),
    ("int 2**63", ["seed=9223372036854775808"], "seed='9223372036854775808' is not allowed: "
                                                "an integer below 2**63"),
    ("dividemix lambda_u=1e309", ["method=dividemix", "method_options=lambda_u=1e309"],
     "lambda_u='1e309' is not allowed: a finite number (it reads as inf)"),
    ("empty method option", ["method=jocor", "method_options=lam=0.5,,t_k=2"],
     "method_options='lam=0.5,,t_k=2' is not allowed: key=value items separated by single"),
    ("method option twice", ["method=jocor", "method_options=lam=0.5,lam=0.6"],
     "lam given once (it is given twice)"),
    ("run key twice", ["seed=1", "seed=2"], "seed='2' is not allowed: seed given once"),
    ("lam with ce", ["method=ce", "lam=0.3"], "lam=0.3 is not allowed: no effect here"),
    ("tau gamma order with jocor", ["method=jocor", "tau=0.5", "order=dense_first"],
     "tau=0.5 is not allowed: no effect here (nor order=dense_first): they act only with "
     "method=ts3net"),
    ("select_rate with dividemix", ["method=dividemix", "method_options=warmup_epochs=1",
                                     "select_rate=0.2"],
     "select_rate=0.2 is not allowed: no effect here: it acts only with methods that select"),
    ("select_rate with gmm", ["selection=gmm", "select_rate=0.2"],
     "not method=ts3net selection=gmm"),
    ("momentum with adam", ["protocol=shared", "optimizer=adam", "momentum=0.8"],
     "momentum=0.8 is not allowed: no effect here: it acts only with optimizer=sgd"),
    ("adam betas with sgd", ["protocol=shared", "adam_beta1=0.8", "adam_beta2=0.99"],
     "adam_beta1=0.8 is not allowed: no effect here (nor adam_beta2=0.99): they act only "
     "with optimizer=adam"),
    ("lr_decay_factor constant", ["protocol=shared", "lr_decay_factor=0.5"],
     "lr_decay_factor=0.5 is not allowed: no effect here: it acts only with a decaying "
     "schedule"),
    ("lr_decay_factor cosine", ["protocol=shared", "lr_schedule=cosine", "lr_decay_factor=0.5"],
     "lr_schedule=cosine"),
    ("data_workers on device", ["data_path=device", "data_workers=3"],
     "data_workers=3 is not allowed: no effect here: it acts only when batches stream"),
    ("prune_fraction rounds=0", ["rounds=0", "prune_fraction=0.3"],
     "prune_fraction=0.3 is not allowed: no effect here: they act only with rounds >= 1"),
    ("prune_output rounds=0", ["rounds=0", "prune_output=true"],
     "prune_output=True is not allowed: no effect here"),
    ("val_fraction holds 0", ["val_fraction=0.001"],
     "val_fraction=0.001 is not allowed: no effect here: it holds out 0 of digits's 1437 "
     "training images"),
    ("dividemix warm-up = level", ["method=dividemix", "method_options=warmup_epochs=3"],
     "warmup_epochs=3 is not allowed: fewer than the level's epochs=3"),
]


def _run_argv(extra: list[str], out: Path) -> list[str]:
    keys = {item.partition("=")[0] for item in extra}
    base = [item for item in RUN if item.partition("=")[0] not in keys]
    return [*base, *extra, "--out", str(out), "--quiet"]


def _refused(argv: list[str], capsys, written: Path, text: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("ts3ray: error: "), err
    assert text in err, err
    assert not written.exists()
    return err


@pytest.mark.parametrize("extra, text", [c[1:] for c in RUN_CASES], ids=[c[0] for c in RUN_CASES])
def test_run_refuses_in_one_line(tmp_path, capsys, extra, text):
    _refused(_run_argv(extra, tmp_path / "out"), capsys, tmp_path / "out", text)


SWEEP_CASES = [  # (id, argv, text)
    ("grid empty value", [*TS, "--grid", "lam=0.1,,0.3"], "--grid 'lam=0.1,,0.3' is not "
                                                          "allowed: an empty value"),
    ("grid value twice", [*TS, "--grid", "lam=0.1,0.3,0.1"], "--grid lam '0.1' is given twice"),
    ("grid value twice once parsed", [*TS, "--grid", "lam=0.1,0.10"],
     "--grid lam '0.10' is given twice (equal to '0.1')"),
    ("grid 1e309", [*TS, "--grid", "lam=0.1,1e309"], "lam='1e309' is not allowed: a finite"),
    ("grid over MAX_TRIALS", [*TS, "--seeds", "0,1,2", "--grid", "lam=" + ",".join(
        f"{i / 100:g}" for i in range(101)), "tau=" + ",".join(f"{i / 100:g}" for i in range(40))],
     "the grid sweep has 12,120 trials (1 settings x 3 seeds x 101 lam values x 40 tau values)"
     ": at most 10,000"),
    ("grid axis without effect", [*TS, "--grid", "select_rate=0.1,0.2", "selection=gmm"],
     "select_rate=0.1 is not allowed: no effect here"),
    ("seed twice", [*TS, "--seeds", "0,1,0", "--grid", "lam=0,1"], "--seeds '0' is given twice"),
    ("seed as a sweep value", [*TS, "seed=1", "--grid", "lam=0,1"],  # every cell: --seeds
     "seed=1 is not allowed as a key=value of a sweep: its seeds are --seeds (now 0); use "
     "--seeds 1"),
    ("dataset as a sweep value", [*TS, "dataset=mnist", "--grid", "lam=0,1"],  # --settings
     "dataset=mnist is not allowed as a key=value of a sweep: its settings are --settings (now "
     "digits:sym:0.4); use --settings mnist:sym:0.4"),
    ("noise rate other than a setting's", [*TS, "--settings", "digits:sym:0.2,digits:sym:0.4",
                                           "noise_rate=0.2", "--grid", "lam=0,1"],
     "noise_rate=0.2 is not allowed as a key=value of a sweep: its settings are --settings "
     "(now digits:sym:0.2,digits:sym:0.4); use --settings digits:sym:0.2"),
    ("seed as a grid axis", [*TS, "--grid", "lam=0,1", "seed=3"],  # swallowed by --grid
     "--grid seed is not allowed: a sweep's seed values are --seeds (e.g. --seeds 0,1,2); "
     "key=value items go before --grid"),
    ("dataset as a grid axis", [*TS, "--grid", "dataset=mnist,digits"],
     "--grid dataset is not allowed: a sweep's dataset values are --settings"),
    ("method twice", [*COMPARE, "--methods", "ce,jocor,ce"], "--methods 'ce' is given twice"),
    ("method options for a method not run", [*COMPARE, "--methods", "ce,ts3net",
                                             "--method-options", "jocor.lam=0.5"],
     "--method-options jocor.lam=0.5 is not allowed: jocor is not in --methods (ce,ts3net)"),
    ("compare key acting on no method", [*COMPARE, "lam=0.3", "--methods", "ce,jocor"],
     "lam=0.3 is not allowed for the compare sweep: it acts on none of --methods ce,jocor"),
    ("space name twice", [*SEARCH, "--space", "lam=0.1:0.5,lam=0.2:0.3"],
     "--space lam is given twice"),
    ("search over MAX_TRIALS", [*SEARCH, "--num-samples", "20000"],
     "the search sweep has 20,000 trials"),
    ("float flag 1e309", [*TS, "--grid", "lam=0,1", "--reduction-factor", "1e309"],
     "'1e309' is not allowed: a finite number (it reads as inf)"),
    ("cpus flag nan", [*TS, "--grid", "lam=0,1", "--cpus-per-trial", "nan"],
     "'nan' is not allowed: a finite number (it reads as nan)"),
    ("prune fractions 1e309", ["sweep", "sparsity", "--prune-fractions", "0.5,1e309"],
     "--prune-fractions '1e309' is not allowed: a finite number"),
]


@pytest.mark.parametrize("argv, text", [c[1:] for c in SWEEP_CASES], ids=[c[0] for c in SWEEP_CASES])
def test_sweeps_refuse_in_one_line(tmp_path, capsys, argv, text):
    store = tmp_path / "st"
    _refused([*argv, "--storage", str(store)], capsys, store, text)


def test_a_compare_key_acts_on_the_methods_it_applies_to():
    """lam=0.3 with ce and ts3net: ts3net runs with it, ce without it (not refused)."""
    import argparse

    from ts3ray.tune.cli import add_arguments, build

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    plan, _ = build(parser.parse_args([*COMPARE[1:], "lam=0.3", "--methods", "ce,ts3net"]))
    lam = {cell["method"]: {**plan.common, **cell}["lam"] for cell in plan.cells}
    assert lam == {"ce": RunConfig.lam, "ts3net": 0.3}


def test_defaults_never_trigger_a_rule():
    """Every rule's keys at their defaults, not given: accepted in configurations where they
    have no effect (method=ce, optimizer=adam, rounds=0, data_path=device)."""
    config = make_config({"method": "ce", "rounds": "0", "data_path": "device",
                          "protocol": "shared", "optimizer": "adam"}, check_files=False)
    assert config.lam == 0.5 and config.momentum == 0.9 and config.prune_fraction == 0.5
    every_key = {k for rule in NO_EFFECT_RULES for k in rule.keys}
    assert {k for _, keys in no_effect(config, every_key) for k in keys} >= {
        "lam", "momentum", "prune_fraction", "data_workers"}  # had they been given


def test_the_smallest_val_fraction_that_holds_out_an_image_is_accepted():
    """digits: 1437 images, 10 classes: round(f x 143.7) >= 1 from f = 0.0035 (hand-computed:
    0.0035 x 143.7 = 0.503 -> 1 per class, 10 images; 0.0034 x 143.7 = 0.489 -> 0)."""
    from ts3ray.config import held_out_images

    assert held_out_images(make_config({"val_fraction": "0.0035"}, check_files=False)) == 10
    with pytest.raises(Exception, match="holds out 0"):
        make_config({"val_fraction": "0.0034"}, check_files=False)


def _peak_kib(tmp_path: Path, name: str, args: list[str]):
    """Run `ts3ray ARGS` in a child; its exit, stderr, seconds and its own peak RSS (KiB;
    RUSAGE_CHILDREN would be the largest of every earlier child of the test process)."""
    peak = tmp_path / name
    child = (f"import atexit, resource, sys; atexit.register(lambda: open({str(peak)!r}, 'w')"
             ".write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))); "
             f"from ts3ray.cli import main; sys.exit(main({args!r}))")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    return done, time.perf_counter() - started, int(peak.read_text())


def test_a_ten_million_cell_grid_is_refused_fast_and_small(tmp_path):
    """10 seeds x 100 x 100 x 100 values = 10^7 cells: refused by its count within 5 s of a
    two-cell grid's refusal (the imports, the part a loaded machine slows, are in both), and
    with no more memory than a one-line refusal of a two-cell grid (the imports: torch alone
    maps ~650 MB here; 726 MB in all, measured standalone)."""
    values = ",".join(f"{i / 100:g}" for i in range(100))
    store = str(tmp_path / "st")
    done, seconds, peak = _peak_kib(tmp_path, "big", [
        *TS, "--seeds", ",".join(map(str, range(10))), "--storage", store,
        "--grid", f"lam={values}", f"tau={values}", f"gamma={values}"])
    small, small_seconds, baseline = _peak_kib(
        tmp_path, "small", [*TS, "--storage", store, "--grid", "lam=0.1,,0.2"])
    assert done.returncode == 2 and small.returncode == 2, done.stderr + small.stderr
    assert "10,000,000 trials" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert seconds - small_seconds < 5, (seconds, small_seconds)  # the count, not the cells
    assert peak - baseline < 128 * 1024, (peak, baseline)  # the grid itself: < 128 MB
    assert not (tmp_path / "st").exists()


@pytest.mark.parametrize("section", ["scheduler:\n  name: asha\n  reduction_factor: .inf",
                                     "resources:\n  cpus_per_trial: .nan",
                                     "resources:\n  max_concurrent: 99999999999999999999"])
def test_a_spec_number_is_checked_after_parsing(tmp_path, capsys, section):
    spec = tmp_path / "s.yaml"
    spec.write_text(f"kind: grid\nparameters:\n  lam: [0, 1]\n{section}\n")
    store = tmp_path / "st"
    _refused(["sweep", "grid", "--spec", str(spec), "--storage", str(store)], capsys, store,
             "is not allowed")


@pytest.mark.parametrize("method", ["ce", "jocor", "dividemix"])
def test_a_whole_resolved_config_passed_back_in_is_accepted(method):
    """A config.json (every key, defaults included) makes the same config again; a key at
    its default value changes nothing, so it cannot contradict. A changed one still does."""
    config = make_config({"method": method, "epochs": 20, "e1": 5, "e2": 5})
    again = make_config(config.to_dict())
    assert again == config
    with pytest.raises(Exception, match="lam"):
        make_config({**config.to_dict(), "lam": 0.9})
