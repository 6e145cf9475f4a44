"""Tables from small hand-made Parquet datasets: exact cells, marks, formats, bad input."""
from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from ts3ray.cli import main as cli_main
from ts3ray.errors import UserError
from ts3ray.results.load import read_table
from ts3ray.results.render import RENDERERS
from ts3ray.results.tables import TableOptions, compare_table, sensitivity_table, sparsity_table

BASE = dict(lam=0.5, tau=0.7, gamma=0.5, e1=20, e2=60)


def trial_rows(tid, final, *, dataset="cifar10", noise="sym", rate=0.4, seed=0, rounds=3,
               stopped=False, variant="full", arch="cifar_cnn", per_round=None, **params):
    """Levels rows of one trial: rounds 0..R; the last round holds `final`."""
    config = {**BASE, **params}
    rows = []
    for r in range(rounds + 1):
        acc = final if r == rounds else (per_round[r] if per_round else 0.10)
        rows.append(dict(
            run_id=f"run-{tid}", trial_id=f"t{tid}", round=r, sparsity=1 - 0.5 ** r,
            nonzero_params=int(500_000 * 0.5 ** r), total_params=520_000,
            acc_sparse_last=acc, acc_sparse_at_best_val=acc + 0.01, acc_dense_last=0.5,
            dataset=dataset, noise=noise, noise_rate=rate, arch=arch, variant=variant,
            seed=seed, lr=0.1, stopped_early=stopped, stopped_at_epoch=None if not stopped else 3,
            attempt=0, **config))
    return rows


def sensitivity_frame():
    """One-at-a-time grid around BASE on two settings; hand-set final accuracies."""
    rows, tid = [], 0

    def add(final, **kw):
        nonlocal tid
        tid += 1
        rows.extend(trial_rows(tid, final, **kw))

    for ds, shift in (("cifar10", 0.0), ("cifar100", -0.25)):
        add(0.86 + shift, dataset=ds, seed=0)              # base, two seeds
        add(0.87 + shift, dataset=ds, seed=1)
        add(0.80 + shift, dataset=ds, lam=0.0)
        add(0.84 + shift, dataset=ds, lam=1.0)
        add(0.85 + shift, dataset=ds, tau=0.3)
        add(0.83 + shift, dataset=ds, gamma=0.1)
        add(0.88 + shift, dataset=ds, e1=10)               # beats the base
        add(0.82 + shift, dataset=ds, e2=30)
    add(0.99, lam=0.0, stopped=True)                        # early-stopped: left out
    return pd.DataFrame(rows)


@pytest.fixture
def sweep_dir(tmp_path):
    """A sweep directory with the levels rows split over partition-style sub-folders."""
    df = sensitivity_frame()
    levels = tmp_path / "sweep" / "results" / "levels"
    for i, (tid, part) in enumerate(df.groupby("trial_id")):
        folder = levels / f"trial_id={tid}"
        folder.mkdir(parents=True)
        part.to_parquet(folder / f"part-{i}.parquet")
    (levels / ".tmp-unfinished.parquet").write_bytes(b"not parquet")  # writer temp file
    return tmp_path / "sweep"


def run_cli(argv, capsys):
    code = cli_main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# -- sensitivity (Table IX) -------------------------------------------------------------

def test_sensitivity_cells_marks_and_footnotes():
    table = sensitivity_table(sensitivity_frame(), TableOptions())
    assert [b.key for b in table.blocks] == ["lam", "tau", "gamma", "e1", "e2"]
    lam = table.blocks[0]
    assert [c.plain for c in lam.columns] == ["cifar10 sym-40%", "cifar100 sym-40%"]
    assert [r.label for r in lam.rows] == ["0.00", "0.50", "1.00"]
    base = lam.rows[1].cells[0]
    assert base.mean == pytest.approx(86.5)
    assert base.std == pytest.approx(0.7071068, abs=1e-6)  # sample std of 86, 87
    assert lam.rows[0].cells[0].mean == pytest.approx(80.0) and lam.rows[0].cells[0].std is None
    assert [r.cells[0].best for r in lam.rows] == [False, True, False]
    assert lam.rows[2].cells[1].mean == pytest.approx(59.0)
    e1 = table.blocks[3]
    assert [r.label for r in e1.rows] == ["10", "20"]
    assert [r.cells[0].best for r in e1.rows] == [True, False]  # 88.00 > 86.50
    assert "1 early-stopped trials left out" in table.footnotes
    assert any("ddof=1" in n for n in table.footnotes)
    assert any("base configuration: lam=0.50, tau=0.70, gamma=0.50, e1=20, e2=60" in n
               for n in table.footnotes)


def test_sensitivity_markdown_via_cli(sweep_dir, capsys):
    code, out, err = run_cli(["table", "sensitivity", str(sweep_dir)], capsys)
    assert code == 0, err
    assert "| λ | cifar10 sym-40% | cifar100 sym-40% |" in out
    # the base holds two seeds, the other cells one: every cell says its n
    assert "| 0.50 | **86.50 ± 0.71 (2)** | **61.50 ± 0.71 (2)** |" in out
    assert "| 0.00 | 80.00 (1) | 55.00 (1) |" in out
    assert "| E1 | cifar10 sym-40% | cifar100 sym-40% |" in out
    assert "| 10 | **88.00 (1)** | **63.00 (1)** |" in out
    assert "Note: reported: the last epoch of each level (the paper's protocol)" in out
    assert "Note: 1 early-stopped trials left out" in out
    assert "99.00" not in out


def test_sensitivity_csv_and_latex(sweep_dir, capsys):
    code, out, _ = run_cli(["table", "sensitivity", str(sweep_dir), "--format", "csv"], capsys)
    assert code == 0
    body = [r for r in csv.reader(io.StringIO(out)) if r and not r[0].startswith("#")]
    assert body[0] == ["parameter", "value", "cifar10 sym-40%", "cifar100 sym-40%"]
    assert ["lam", "0.50", "86.50 ± 0.71 (2)*", "61.50 ± 0.71 (2)*"] in body
    assert ["tau", "0.30", "85.00 (1)", "60.00 (1)"] in body
    assert "# 1 early-stopped trials left out" in out.splitlines()
    code, out, _ = run_cli(["table", "sensitivity", str(sweep_dir), "--format", "latex"], capsys)
    assert code == 0
    assert r"$\lambda$ & cifar10 sym-40\% & cifar100 sym-40\% \\" in out
    assert r"0.50 & \textbf{86.50 $\pm$ 0.71 (2)} & \textbf{61.50 $\pm$ 0.71 (2)} \\" in out
    assert r"(d) Influence of $E_1$" in out
    assert out.count(r"\begin{tabular}") == 1 and r"\bottomrule" in out


def test_sensitivity_metric_and_base_override(tmp_path, capsys):
    path = tmp_path / "levels.parquet"
    sensitivity_frame().to_parquet(path)
    code, out, _ = run_cli(["table", "sensitivity", str(path), "--metric", "acc_sparse_at_best_val",
                            "--params", "lam", "--base", "tau=0.3"], capsys)
    assert code == 0
    # with tau=0.3 as base only the tau=0.3 trial (lam=0.5) remains in the lam block
    assert "| 0.50 | **86.00** | **61.00** |" in out
    assert "| 0.00 |" not in out and "(b)" not in out
    assert "reported: the epoch of best validation accuracy" in out  # --metric names the rule


def test_sensitivity_parameter_not_varied(tmp_path, capsys):
    df = sensitivity_frame()
    df = df[df["tau"] == 0.7]
    path = tmp_path / "levels.parquet"
    df.to_parquet(path)
    code, out, err = run_cli(["table", "sensitivity", str(path)], capsys)
    assert code == 2 and out == ""
    assert err.strip() == ("ts3ray: error: sensitivity: parameter tau has one value (0.7) in "
                           "RESULTS; the sweep does not vary it (choose others with --params)")
    code, out, _ = run_cli(["table", "sensitivity", str(path), "--params", "lam,gamma"], capsys)
    assert code == 0 and "(b) Influence of γ" in out


def test_sensitivity_ambiguous_base_asks_for_override():
    rows = trial_rows(1, 0.8, lam=0.0) + trial_rows(2, 0.9, lam=1.0)
    with pytest.raises(UserError, match=r"base value of lam \(0 and 1 are equally common\); "
                                        r"pass --base lam=VALUE"):
        sensitivity_table(pd.DataFrame(rows), TableOptions(params=("lam",)))
    table = sensitivity_table(pd.DataFrame(rows), TableOptions(params=("lam",), base={"lam": 1.0}))
    assert [r.cells[0].mean for r in table.blocks[0].rows] == pytest.approx([80.0, 90.0])


# -- sparsity (Tables VIII / XI) --------------------------------------------------------

def sparsity_frame():
    rows = []
    specs = [  # tid, variant, arch, seed, per-level accuracies (rounds 0, 1, 2)
        (1, "full", "cnn", 0, [0.80, 0.82, 0.84]),
        (2, "full", "cnn", 1, [0.82, 0.84, 0.80]),
        (3, "warm", "cnn", 0, [0.81, 0.70, 0.90]),
        (4, "full", "vgg16", 0, [0.60, 0.61, 0.62]),
        (5, "warm", "vgg16", 0, [0.65, 0.50, 0.70]),
    ]
    for tid, variant, arch, seed, accs in specs:
        rows += trial_rows(tid, accs[-1], rounds=2, per_round=accs, variant=variant,
                           arch=arch, seed=seed)
    rows += trial_rows(9, 0.99, rounds=2, per_round=[0.99] * 3, variant="warm", stopped=True)
    return pd.DataFrame(rows)


def test_sparsity_table_by_variant():
    frame = sparsity_frame()
    with pytest.raises(UserError, match=r"differ in more than the seed \(arch: cnn, vgg16\)"):
        sparsity_table(frame, TableOptions())  # cnn and vgg16 trials are never averaged
    table = sparsity_table(frame[frame["arch"] != "vgg16"], TableOptions())
    (block,) = table.blocks
    assert block.key == "cifar10 sym-40%"
    assert [c.plain for c in block.columns] == ["0", "50", "75"]
    assert [r.label for r in block.rows] == ["warm", "full"]  # paper order: full last
    warm, full = block.rows
    # full: cnn seeds 0 and 1 -> 2 trials per level
    assert full.cells[0].mean == pytest.approx((80 + 82) / 2) and full.cells[0].n == 2
    assert full.cells[0].std == pytest.approx(pd.Series([80, 82]).std())
    assert warm.cells[2].mean == pytest.approx(90) and warm.cells[2].n == 1
    assert [c.best for c in warm.cells] == [True, False, True]  # 0%: 81.00 and 81.00, a tie
    assert [c.best for c in full.cells] == [True, True, False]  # 75%: 82.00 against 90.00
    assert "1 early-stopped trials left out" in table.footnotes


def test_sparsity_table_blocks_per_arch(sweep_dir, tmp_path, capsys):
    path = tmp_path / "run"
    path.mkdir()
    sparsity_frame().to_parquet(path / "levels.parquet")
    code, out, _ = run_cli(["table", "sparsity", str(path), "--rows", "arch,variant"], capsys)
    assert code == 0
    assert "cifar10 sym-40%, cnn" in out and "cifar10 sym-40%, vgg16" in out
    assert "| variant | 0 | 50 | 75 |" in out
    assert "| warm | **81.00 (1)** | 70.00 (1) | **90.00 (1)** |" in out  # tie at 0: both marked
    assert "| full | **81.00 ± 1.41 (2)** | **83.00 ± 1.41 (2)** | 82.00 ± 2.83 (2) |" in out
    assert "| warm | **65.00 (1)** | 50.00 (1) | **70.00 (1)** |" in out
    code, out, _ = run_cli(["table", "sparsity", str(path), "--rows", "arch,variant",
                            "--format", "csv"], capsys)
    body = [r for r in csv.reader(io.StringIO(out)) if r and not r[0].startswith("#")]
    assert body[0] == ["setting/arch", "variant", "0", "50", "75"]
    assert ["cifar10 sym-40%, vgg16", "full", "60.00 (1)", "61.00 (1)*", "62.00 (1)"] in body


# -- compare (Tables I-III) -------------------------------------------------------------

def compare_frame():
    """TS3-Net (full, warm) and two competitors on cifar10 sym-20% / sym-40%, R = 3."""
    rows = []
    for tid, (method, variant, rate, seed, accs) in enumerate([
        ("ts3net", "full", 0.2, 0, [0.88, 0.89, 0.90, 0.91]),
        ("ts3net", "full", 0.4, 0, [0.84, 0.85, 0.86, 0.87]),
        ("ts3net", "full", 0.4, 1, [0.82, 0.83, 0.84, 0.85]),
        ("ts3net", "warm", 0.2, 0, [0.80, 0.81, 0.92, 0.79]),
        ("sce", "full", 0.4, 0, [0.86, 0.80, 0.80, 0.80]),
        ("ce", "full", 0.2, 0, [0.78, 0.77, 0.76, 0.75]),
        ("ce", "full", 0.4, 0, [0.70, 0.70, 0.70, 0.60]),
    ]):
        rows += [dict(r, method=method) for r in
                 trial_rows(tid, accs[-1], per_round=accs, variant=variant, rate=rate, seed=seed)]
    return pd.DataFrame(rows)


def cells(row):
    return [(c.mean, c.std) for c in row.cells]


def test_compare_table_rows_cells_and_params(tmp_path, capsys):
    table = compare_table(compare_frame(), TableOptions())
    (block,) = table.blocks
    assert [c.plain for c in block.columns] == ["sym-20%", "sym-40%", "Params (M)", "Non-zero"]
    assert [r.label for r in block.rows] == ["ce", "sce", "ts3net (warm)", "ts3net (dense)",
                                             "ts3net"]
    ce, sce, warm, dense, full = block.rows
    assert cells(ce)[:2] == [(pytest.approx(75.0), None), (pytest.approx(60.0), None)]
    assert sce.cells[0].mean is None and sce.cells[1].mean == pytest.approx(80.0)
    assert full.cells[0].mean == pytest.approx(91.0)
    assert full.cells[1].mean == pytest.approx(86.0)  # two seeds: 87 and 85
    assert full.cells[1].std == pytest.approx(1.4142136)  # sample std of (87, 85)
    # Params (M) = 520,000 x (1 - 0.875) / 1e6 = 0.065; Non-zero: 500,000 x 0.5^3 = 62,500
    assert full.cells[2].mean == pytest.approx(0.065) and full.cells[2].decimals == 3
    assert full.cells[3].mean == 62_500 and full.cells[3].decimals == 0
    # TS3-Net (dense): D's acc_dense_last (0.5) in the same trials, the dense parameter count
    assert dense.cells[1].mean == pytest.approx(50.0) and dense.cells[2].mean == pytest.approx(0.52)
    assert dense.cells[3].mean is None
    assert [c.best for c in full.cells] == [True, True, False, False]
    path = tmp_path / "levels.parquet"
    compare_frame().to_parquet(path)
    code, out, _ = run_cli(["table", "compare", str(path)], capsys)
    assert code == 0
    assert "| ts3net | **91.00 (1)** | **86.00 ± 1.41 (2)** | 0.065 | 62500 |" in out
    assert "| ts3net (dense) | 50.00 (1) | 50.00 ± 0.00 (2) | 0.52 | – |" in out
    assert "| ce | 75.00 (1) | 60.00 (1) | 0.065 | 62500 |" in out
    assert "sparsity used: 87.5%" in out and "total parameters x (1 - sparsity)" in out


def test_compare_table_levels_and_paper_layout():
    near = compare_table(compare_frame(), TableOptions(sparsity=0.70))
    warm = next(r for r in near.blocks[0].rows if r.label == "ts3net (warm)")
    assert warm.cells[0].mean == pytest.approx(92.0) and warm.cells[0].best
    assert warm.cells[2].mean == pytest.approx(0.13)  # 520k x 0.25
    assert near.blocks[0].key == "cifar10, 75%"
    dense_only = pd.DataFrame([dict(r, method="dividemix") for r in
                               trial_rows(99, 0.95, rounds=0, rate=0.4)])
    both = compare_table(pd.concat([compare_frame(), dense_only]),
                         TableOptions(sparsity=(0.0, 0.875)))
    assert [b.key for b in both.blocks] == ["cifar10, 0%", "cifar10, 87.5%"]
    assert "dividemix" in [r.label for r in both.blocks[0].rows]
    assert "dividemix" not in [r.label for r in both.blocks[1].rows]  # no 87.5% level
    assert ("1 trial(s) without a level at 87.5% sparsity left out of that block (dividemix)"
            in both.footnotes)
    sce = next(r for r in both.blocks[0].rows if r.label == "sce")
    assert sce.cells[1].mean == pytest.approx(86.0) and sce.cells[2].mean == pytest.approx(0.52)
    paper = compare_table(compare_frame(), TableOptions(sparsity="paper"))
    rows = {r.label: r for r in paper.blocks[0].rows}
    assert rows["sce"].cells[1].mean == pytest.approx(86.0)  # competitors: level 0, dense
    assert rows["ce"].cells[2].mean == pytest.approx(0.52)
    assert rows["ts3net"].cells[1].mean == pytest.approx(86.0)  # TS3-Net: highest level
    assert rows["ts3net"].cells[2].mean == pytest.approx(0.065)
    assert rows["sce"].cells[1].best and rows["ts3net"].cells[1].best  # tie at 86.00


def test_compare_table_of_results_without_a_method_column():
    """Parquet written before methods existed holds TS3-Net runs."""
    table = compare_table(compare_frame().drop(columns="method"), TableOptions())
    labels = [r.label for r in table.blocks[0].rows]
    assert labels == ["ts3net (warm)", "ts3net (dense)", "ts3net"]
    by_variant = compare_table(compare_frame(), TableOptions(rows=("variant",)))
    # the "full" trials of three methods are three configurations: three rows, never pooled
    assert [r.label for r in by_variant.blocks[0].rows] == [
        "warm", "full [method=ce]", "full [method=sce]", "full [method=ts3net]"]


# -- reading RESULTS --------------------------------------------------------------------

def test_every_results_path_form_gives_the_same_table(sweep_dir, tmp_path):
    expected = sensitivity_table(sensitivity_frame(), TableOptions())
    text = RENDERERS["md"](expected)
    df = sensitivity_frame()
    run = tmp_path / "run"
    run.mkdir()
    df.to_parquet(run / "levels.parquet")
    runs = tmp_path / "runs"  # a folder of run folders, each with levels + epochs files
    for tid, part in df.groupby("trial_id"):
        (runs / tid).mkdir(parents=True)
        part.to_parquet(runs / tid / "levels.parquet")
        pd.DataFrame({"global_epoch": [1]}).to_parquet(runs / tid / "epochs.parquet")
    for results in (sweep_dir, sweep_dir / "results", sweep_dir / "results" / "levels",
                    run, run / "levels.parquet", runs):
        table = sensitivity_table(read_table(str(results), "levels"), TableOptions())
        assert RENDERERS["md"](table) == text, results


def test_schemas_are_unified_across_files(tmp_path):
    levels = tmp_path / "levels"
    levels.mkdir()
    first = pd.DataFrame(trial_rows(1, 0.8)).assign(extra=None)
    second = pd.DataFrame(trial_rows(2, 0.9)).assign(extra=1.5, added="x")
    first.to_parquet(levels / "a.parquet")
    second.to_parquet(levels / "b.parquet")
    df = read_table(str(levels), "levels")
    assert len(df) == 8 and df["extra"].notna().sum() == 4 and "added" in df.columns


def test_out_is_written_atomically(sweep_dir, tmp_path, capsys):
    out_file = tmp_path / "tables" / "ix.tex"
    code, out, _ = run_cli(["table", "sensitivity", str(sweep_dir), "--format", "latex",
                            "--out", str(out_file)], capsys)
    assert code == 0 and out == ""
    assert r"\textbf{86.50 $\pm$ 0.71 (2)}" in out_file.read_text()
    assert [p.name for p in out_file.parent.iterdir()] == ["ix.tex"]


# -- bad input: one line, exit 2 --------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["table", "sparsity", "{tmp}/nowhere"], "RESULTS '{tmp}/nowhere' does not exist"),
    (["table", "sparsity", "{tmp}/empty"], "RESULTS '{tmp}/empty' holds no Parquet files"),
    (["table", "sparsity", "{tmp}/bad.parquet", ],
     "sparsity: the levels table lacks required column(s): round, noise_rate, sparsity, "
     "variant"),
    (["table", "sparsity", "{tmp}/run", "--metric", "acc_nope"],
     "metric='acc_nope' is not a numeric column of the levels table"),
    (["table", "sparsity", "{tmp}/run", "--base", "lam=0.5"],
     "--base does not apply to `table sparsity` (it takes: --rows, --report)"),
    (["table", "sensitivity", "{tmp}/run", "--base", "lamda=0.5"],
     "--base='lamda=0.5' is not allowed"),
    (["table", "compare", "{tmp}/run", "--sparsity", "120"], "--sparsity='120' is not allowed"),
    (["table", "sparsity", "{tmp}/run", "--rows", "nosuch"], "sparsity: the levels table lacks required column(s): nosuch"),
    (["table", "importance", "{tmp}/run", "--evaluator", "shap"],
     "evaluator='shap' is not allowed: fanova | ped-anova"),
    (["table", "sparsity", "{tmp}/run/epochs"], "holds the epochs table, but this needs the levels"),
])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no parquet here")
    pd.DataFrame({"run_id": ["a"], "dataset": ["x"], "noise": ["sym"],
                  "acc_sparse_last": [0.5]}).to_parquet(tmp_path / "bad.parquet")
    run = tmp_path / "run"
    (run / "epochs").mkdir(parents=True)
    sensitivity_frame().to_parquet(run / "levels.parquet")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and out == ""
    assert err.startswith("ts3ray: error: ") and err.count("\n") == 1
    assert message.replace("{tmp}", str(tmp_path)) in err


def test_unknown_kind_exits_2_with_one_line(capsys):
    assert cli_main(["table", "nonsense", "x"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nonsense'" in err and err.count("\n") == 1


def test_result_layer_imports_neither_torch_nor_ray():
    import subprocess
    import sys

    code = ("import sys, ts3ray.results.cli_table, ts3ray.results.cli_plot, "
            "ts3ray.results.importance, optuna; "
            "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dense_level_shared_by_prune_fractions_counts_once():
    """Trials differing only in p_f train the same level 0: one value there, no fake std."""
    rows = []
    for tid, (pf, seed, dense_acc) in enumerate([(0.3, 0, 0.80), (0.5, 0, 0.80), (0.3, 1, 0.70)]):
        trial = trial_rows(tid, 0.9, rounds=1, seed=seed, per_round=[dense_acc])
        for row in trial:
            row["prune_fraction"] = pf
            row["sparsity"] = 0.0 if row["round"] == 0 else pf
        rows += trial
    table = sparsity_table(pd.DataFrame(rows), TableOptions())
    (block,) = table.blocks
    assert [c.plain for c in block.columns] == ["0", "30", "50"]
    level0 = block.rows[0].cells[0]
    assert level0.mean == pytest.approx((80 + 70) / 2)  # seed 0 once, seed 1 once
    assert level0.std == pytest.approx(pd.Series([80.0, 70.0]).std())


# -- Tables IV-VI ---------------------------------------------------------------------------

def test_realworld_table_clothing1m_best_and_last_webvision_top1_top5(tmp_path, capsys):
    rows = []
    for seed, (best, last) in enumerate([(0.70, 0.68), (0.72, 0.66)]):
        rows += trial_rows(f"c{seed}", last, dataset="clothing1m", noise="human", rate=0.385,
                           seed=seed, rounds=1, arch="resnet18")
        rows[-1]["acc_sparse_at_best_clean_val"] = best
    rows += trial_rows("w", 0.60, dataset="webvision50", noise="human", rate=0.2, rounds=1,
                       arch="inception_resnet_v2")
    rows[-1].update(top5_sparse_last=0.80, acc_sparse_ilsvrc12_val_last=0.55,
                    top5_sparse_ilsvrc12_val_last=0.78)
    rows += trial_rows("a", 0.81, dataset="animal10n", noise="human", rate=0.08, rounds=1,
                       arch="vgg19")
    path = tmp_path / "levels.parquet"
    pd.DataFrame(rows).to_parquet(path)
    code, out, _ = run_cli(["table", "realworld", str(path)], capsys)
    assert code == 0
    assert "| method | Best | Last |" in out  # Table V
    assert "| ts3net | **71.00 ± 1.41** | **67.00 ± 1.41** |" in out
    assert "| method | WebVision top-1 | WebVision top-5 | ILSVRC12 top-1 | ILSVRC12 top-5 |" in out
    assert "| ts3net | **60.00** | **80.00** | **55.00** | **78.00** |" in out  # Table VI
    assert "| method | Accuracy |" in out and "| ts3net | **81.00** |" in out  # Table IV
