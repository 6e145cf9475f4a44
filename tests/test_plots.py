"""Figures from small Parquet datasets: lines, labels and data, files on disk, bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ts3ray.cli import main as cli_main
from ts3ray.results.plots import (
    PlotOptions, plot_compare, plot_curves, plot_precision, plot_search, plot_sparsity,
)

SETTING = dict(dataset="cifar10", noise="sym", noise_rate=0.4)
PARAMS = dict(lam=0.5, tau=0.7, gamma=0.5, e1=2, e2=2)


def levels_frame():
    rows = []
    specs = [("full", 0, [0.80, 0.84]), ("full", 1, [0.82, 0.86]), ("warm", 0, [0.70, 0.60]),
             ("warm", 1, [0.99, 0.99])]
    for t, (variant, seed, accs) in enumerate(specs):
        for r, acc in enumerate(accs):
            rows.append(dict(run_id=f"r{t}", trial_id=f"t{t}", round=r, sparsity=0.5 * r,
                             acc_sparse_last=acc, variant=variant, arch="cnn", seed=seed,
                             stopped_early=(t == 3), **SETTING, **PARAMS, ))
    return pd.DataFrame(rows)


def epochs_frame():
    """Two variants x 2 rounds x 5 epochs; warm has no dense network (NaN acc_dense)."""
    rows = []
    for variant in ("full", "warm"):
        for seed in (0, 1):
            for r in range(2):
                for e in range(5):
                    stage = "warmup" if e < 2 else ("alternate" if e < 4 else "refine")
                    rows.append(dict(
                        run_id=f"{variant}{seed}", round=r, epoch=e, global_epoch=5 * r + e,
                        stage=stage, acc_sparse=0.5 + 0.05 * e + 0.01 * seed,
                        acc_dense=np.nan if variant == "warm" else 0.6 + 0.04 * e,
                        label_precision=0.8 + 0.01 * e if stage == "alternate" else np.nan,
                        relabel_accuracy=0.9 if stage == "refine" else np.nan,
                        variant=variant, seed=seed, **SETTING))
    return pd.DataFrame(rows)


def labelled(ax):
    return {l.get_label(): l for l in ax.get_lines() if not l.get_label().startswith("_")}


def test_plot_sparsity_lines_and_error_bars():
    fig = plot_sparsity(levels_frame())
    (ax,) = fig.axes
    lines = labelled(ax)
    assert list(lines) == ["warm", "full"]
    assert list(lines["full"].get_xdata()) == [0.0, 50.0]
    assert np.allclose(lines["full"].get_ydata(), [81.0, 85.0])  # mean of two seeds, in %
    assert np.allclose(lines["warm"].get_ydata(), [70.0, 60.0])  # stopped seed left out
    assert lines["full"].get_marker() == "o"
    assert len(ax.containers) == 1  # error bars only where several seeds
    assert ax.get_xlabel() == "sparsity (%)" and ax.get_ylabel() == "test accuracy (%)"
    assert ax.get_title() == "cifar10 sym-40%"
    assert "1 early-stopped" in fig.get_suptitle()


def test_plot_compare_one_line_per_method_in_table_order():
    df = levels_frame()
    df["method"] = ["ts3net" if v == "full" else "sce" for v in df["variant"]]
    df.loc[df["method"] == "sce", "variant"] = "full"
    ce = df[df["trial_id"] == "t2"].assign(trial_id="t9", run_id="r9", method="ce",
                                           acc_sparse_last=[0.5, 0.4])
    fig = plot_compare(pd.concat([df, ce]))
    (ax,) = fig.axes
    lines = labelled(ax)
    assert list(lines) == ["ce", "sce", "ts3net"]  # Table I order: baseline, peers, TS3-Net
    assert np.allclose(lines["ts3net"].get_ydata(), [81.0, 85.0])
    assert np.allclose(lines["ce"].get_ydata(), [50.0, 40.0])
    assert list(lines["sce"].get_xdata()) == [0.0, 50.0]
    assert ax.get_xlabel() == "sparsity (%)" and ax.get_ylabel() == "test accuracy (%)"


def test_plot_curves_solid_sparse_dashed_dense_and_round_lines():
    fig = plot_curves(epochs_frame(), PlotOptions(round_lines=True))
    (ax,) = fig.axes
    lines = labelled(ax)
    assert set(lines) == {"full (S)", "full (D)", "warm (S)"}
    assert lines["full (D)"].get_linestyle() == "--" and lines["full (S)"].get_linestyle() == "-"
    assert lines["full (D)"].get_color() == lines["full (S)"].get_color()
    assert list(lines["full (S)"].get_xdata()) == list(range(10))
    assert np.allclose(lines["full (S)"].get_ydata()[:5], [50.5, 55.5, 60.5, 65.5, 70.5])
    boundaries = [l for l in ax.get_lines() if l.get_label() == "_round boundary"]
    assert [l.get_xdata()[0] for l in boundaries] == [4.5]
    assert ax.get_xlabel() == "epoch"
    last = plot_curves(epochs_frame(), PlotOptions(round="last", by=("trial",)))
    last_lines = labelled(last.axes[0])
    assert "full0 (S)" in last_lines and list(last_lines["full0 (S)"].get_xdata()) == [5, 6, 7, 8, 9]


def test_plot_precision_two_panels():
    fig = plot_precision(epochs_frame())
    precision, relabel = fig.axes
    assert precision.get_title() == "label precision"
    assert relabel.get_title() == "pseudo-label accuracy"
    line = labelled(precision)["full"]
    y = np.asarray(line.get_ydata(), dtype=float)
    assert np.allclose(y[[0, 1, 5, 6]], [82.0, 83.0, 82.0, 83.0])
    assert np.isnan(y[2:5]).all()  # gap between rounds' alternate stages
    assert np.allclose(labelled(relabel)["warm"].get_ydata()[[0, -1]], [90.0, 90.0])


def test_plot_search_one_line_per_full_budget_trial():
    rng = np.random.default_rng(1)
    df = pd.DataFrame([dict(run_id=f"r{t}", round=0, acc_sparse_last=rng.uniform(),
                            lam=rng.uniform(), tau=0.7, gamma=rng.uniform(), e1=10 + t, e2=60,
                            stopped_early=t == 0, **SETTING) for t in range(7)])
    fig = plot_search(df)
    ax = fig.axes[0]
    assert len([l for l in ax.get_lines() if l.get_label() == "_trial"]) == 6
    assert [t.get_text() for t in ax.get_xticklabels()] == \
        ["λ", "τ", "γ", "E1", "E2", "acc_sparse_last (%)"]
    assert "6 full-budget trials" in ax.get_title()


@pytest.mark.parametrize("kind, table, suffix, magic", [
    ("sparsity", "levels", "png", b"\x89PNG"), ("curves", "epochs", "pdf", b"%PDF"),
    ("precision", "epochs", "png", b"\x89PNG"), ("search", "levels", "svg", b"<?xml"),
    ("compare", "levels", "png", b"\x89PNG"),
])
def test_cli_writes_figure_files(tmp_path, kind, table, suffix, magic):
    sweep = tmp_path / "sweep" / "results"
    (sweep / "levels").mkdir(parents=True)
    (sweep / "epochs").mkdir(parents=True)
    levels_frame().to_parquet(sweep / "levels" / "part-0.parquet")
    epochs_frame().to_parquet(sweep / "epochs" / "part-0.parquet")
    out = tmp_path / "figs" / f"{kind}.{suffix}"
    assert cli_main(["plot", kind, str(tmp_path / "sweep"), "--out", str(out)]) == 0
    data = out.read_bytes()
    assert len(data) > 1000 and data.startswith(magic)
    assert [p.name for p in out.parent.iterdir()] == [out.name]


@pytest.mark.parametrize("argv, message", [
    (["plot", "curves", "{run}/levels.parquet", "--out", "{tmp}/c.png"],
     "plot curves: the epochs table lacks required column(s): global_epoch, acc_sparse"),
    (["plot", "curves", "{run}", "--out", "{tmp}/c.jpg"], "--out='{tmp}/c.jpg' is not allowed"),
    (["plot", "search", "{run}", "--out", "{tmp}/s.png", "--round", "1"],
     "--round does not apply to `plot search`"),
    (["plot", "curves", "{run}", "--out", "{tmp}/c.png", "--round", "first"],
     "--round='first' is not allowed: an integer round or 'last'"),
    (["plot", "sparsity", "{run}", "--out", "{tmp}/s.png", "--by", "method"],
     "--by: column(s) method not in the results"),
    (["plot", "curves", "{run}", "--out", "{tmp}/c.png"],  # run dir without epochs.parquet
     "holds the levels table, but this needs the epochs table"),
])
def test_plot_bad_input(tmp_path, capsys, argv, message):
    run = tmp_path / "run"
    run.mkdir()
    levels_frame().to_parquet(run / "levels.parquet")
    argv = [a.replace("{run}", str(run)).replace("{tmp}", str(tmp_path)) for a in argv]
    code = cli_main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert message.replace("{tmp}", str(tmp_path)) in err
    assert not list(tmp_path.glob("*.png"))
