"""Sweep planning, resource checks, the search space and per-trial Parquet files (no Ray)."""
from __future__ import annotations

import argparse
import pickle
import re
import sys
import dataclasses

import optuna
import pandas as pd
import pytest

from ts3ray.config import make_config
from ts3ray.errors import DataMissingError, UserError
from ts3ray.run import LotteryRun
from ts3ray.tune import results
from ts3ray.tune.cli import add_arguments, build
from ts3ray.tune.plans import PRESETS
from ts3ray.tune.resources import TrialResources, check_satisfiable
from ts3ray.tune.search import MethodSpace, make_searcher

NODE_2CPU = {"Alive": True, "Resources": {"CPU": 2.0, "memory": 1e9}}
NODE_GPU = {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0}}


def parse(argv: list[str]):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_sensitivity_quick_has_the_16_distinct_table_ix_configurations():
    plan, opts = build(parse(["sensitivity", "--preset", "quick"]))
    values = [{**plan.common, **cell} for cell in plan.cells]
    assert len(values) == 16  # 5 blocks x 4 values, the base counted once
    assert sorted({v["lam"] for v in values}) == [0.0, 0.5, 0.7, 1.0]
    assert sorted({v["e2"] for v in values}) == [30, 45, 60, 80]
    base = {"lam": 0.5, "tau": 0.7, "gamma": 0.5, "e1": 20, "e2": 60}
    on_base = [v for v in values if all(v[k] == b for k, b in base.items())]
    assert len(on_base) == 1
    # every configuration changes at most one parameter from the base
    assert all(sum(v[k] != b for k, b in base.items()) <= 1 for v in values)
    assert all(v["e1"] + v["e2"] <= v["epochs"] for v in values)
    assert set(plan.cells[0]) == {"lam", "tau", "gamma", "e1", "e2"}  # the rest is common
    assert plan.common["data_root"].startswith("/")  # made absolute on the driver
    assert opts.name == "sensitivity-quick" and opts.checkpoint_every is None  # level ends + timer


@pytest.mark.parametrize("sweep", sorted(PRESETS))
def test_presets_checkpoint_at_level_ends_and_on_the_timer_only(sweep):
    """A preset with `--checkpoint-every` would checkpoint a short trial several times within
    seconds, and with Tune keeping 2 checkpoints each such trial forces an experiment-state
    sync (Tune's "snapshotting has been triggered multiple times" warning)."""
    assert all(preset.checkpoint_every is None for preset in PRESETS[sweep].values())
    _, opts = build(parse([sweep, "--preset", "quick"]))  # the paper presets need real data
    assert opts.checkpoint_every is None


def test_sparsity_plan_crosses_fractions_variants_and_seeds():
    plan, _ = build(parse(["sparsity", "--variants", "full,warm", "--seeds", "0,1",
                           "epochs=4", "e1=1", "e2=1"]))
    cells = plan.cells
    assert len(cells) == 4 * 2 * 2
    assert {(c["variant"], c["seed"], c["prune_fraction"]) for c in cells} == {
        (v, s, p) for v in ("full", "warm") for s in (0, 1) for p in (0.3, 0.4, 0.5, 0.6)}
    assert plan.common["rounds"] == 3 and plan.common["epochs"] == 4


def test_paper_preset_without_data_fails_on_the_driver(tmp_path):
    with pytest.raises(DataMissingError, match="cifar-10-batches-py"):
        build(parse(["sensitivity", "--preset", "paper", f"data_root={tmp_path}"]))


def test_bad_values_fail_with_one_line():
    with pytest.raises(UserError, match="--params 'beta' is not allowed"):
        build(parse(["sensitivity", "--params", "lam,beta"]))
    with pytest.raises(UserError, match="--settings item 'cifar10:sym'"):
        build(parse(["sparsity", "--settings", "cifar10:sym"]))
    with pytest.raises(UserError, match="e1\\+e2"):
        build(parse(["search", "epochs=5", "e1=3", "e2=3"]))


def test_resource_request_that_no_node_holds_fails_with_the_fix():
    with pytest.raises(UserError) as err:
        check_satisfiable(TrialResources(cpu=1, gpu=0.5), [NODE_2CPU])
    assert str(err.value) == (
        "--gpus-per-trial=0.5 cannot be satisfied: no node has a GPU (cluster: 1 node(s), "
        "2 CPU, 0 GPU); use --gpus-per-trial 0 or start Ray with GPUs (--num-gpus N for a "
        "local run)")
    with pytest.raises(UserError, match="--cpus-per-trial=4 cannot be satisfied: the largest "
                                        "node has 2 CPU"):
        check_satisfiable(TrialResources(cpu=4), [NODE_2CPU])
    with pytest.raises(UserError, match="no single node has both"):  # 8 CPUs, GPU elsewhere
        check_satisfiable(TrialResources(cpu=4, gpu=1),
                          [{"Alive": True, "Resources": {"CPU": 8.0}},
                           {"Alive": True, "Resources": {"CPU": 2.0, "GPU": 1.0}}])
    check_satisfiable(TrialResources(cpu=2, gpu=0.25), [NODE_2CPU, NODE_GPU])  # fits
    with pytest.raises(UserError, match="--gpus-per-trial=1.5"):
        TrialResources(gpu=1.5)


def test_search_space_keeps_e1_below_e_and_e1_plus_e2_within_epochs():
    space = MethodSpace(epochs=7)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    derived = []
    study.optimize(lambda t: (derived.append(space(t)), 0.0)[1], n_trials=60)
    pairs = [(t.params["e1"], d["e2"]) for t, d in zip(study.trials, derived)]
    assert all(e1 + e2 <= 7 and 0 <= e1 < 7 for e1, e2 in pairs)
    assert max(e1 for e1, _ in pairs) == 6 and min(e1 for e1, _ in pairs) == 0
    assert max(e2 for _, e2 in pairs) >= 6  # E2 reaches the whole rest when E1 is small
    assert all(0 <= t.params["lam"] <= 1 for t in study.trials)
    # every range is fixed: the distributions are the same in every trial
    assert len({tuple(sorted(t.distributions.items())) for t in study.trials}) == 1


def test_searcher_starts_with_the_paper_defaults():
    base = make_config({"dataset": "digits", "epochs": 20, "e1": 5, "e2": 10}).to_dict()
    searcher = make_searcher(base, "val_acc_sparse", seed=0)
    first = searcher.suggest("t0")
    assert {k: first[k] for k in ("lam", "tau", "gamma", "e1", "e2")} == {
        "lam": 0.5, "tau": 0.7, "gamma": 0.5, "e1": 5, "e2": 10}
    assert first["e2_frac"] == 10 / 15  # E2 as a fraction of the E - E1 = 15 epochs left
    second = searcher.suggest("t1")
    assert second != first and second["e1"] + second["e2"] <= 20
    with pytest.raises(UserError, match="--sampler='grid'"):
        make_searcher(base, "val_acc_sparse", sampler="grid")


def _files(root, table):
    return sorted(p.relative_to(root / table).as_posix() for p in (root / table).rglob("*.parquet"))


def test_trial_attempts_append_their_own_rows_and_status_is_derived_from_them(tmp_path):
    from ts3ray.results.compact import compact
    from ts3ray.results.load import read_table

    config = make_config({"dataset": "synthetic", "epochs": 2, "e1": 1, "e2": 1, "rounds": 1})
    run = LotteryRun(config)
    first = results.TrialInfo(sweep="t", trial_id="abc", attempt=1, node="n1",
                              resumed_from=0, started_at=1.0)
    writer = results.TrialWriter(str(tmp_path), first, run)
    epochs = run.epochs()
    next(epochs)
    assert writer.flush(run) == 1 and not (tmp_path / "levels").exists()  # no level done yet
    next(epochs)
    assert writer.flush(run) == 2  # epoch 2 and level 0
    state = run.state_dict()
    # a second attempt resumes from that checkpoint on another node and finishes the run
    resumed = LotteryRun(config)
    resumed.load_state_dict(state)
    second = results.TrialInfo(sweep="t", trial_id="abc", attempt=2, node="n2",
                               resumed_from=resumed.global_epoch, started_at=2.0)
    writer = results.TrialWriter(str(tmp_path), second, resumed)
    assert writer.flush(resumed) == 0  # nothing new: the restored rows are in storage
    for _ in resumed.epochs():
        writer.flush(resumed)
    assert _files(tmp_path, "epochs") == ["abc/a001-e0000001.parquet", "abc/a001-e0000002.parquet",
                                          "abc/a002-e0000003.parquet", "abc/a002-e0000004.parquet"]
    rows = read_table(str(tmp_path), "epochs").sort_values("global_epoch")
    assert list(rows["global_epoch"]) == [1, 2, 3, 4]  # each epoch once
    assert list(rows["attempt"]) == [1, 1, 2, 2] and list(rows["node"]) == ["n1", "n1", "n2", "n2"]
    assert not rows["stopped_early"].any()  # 4 = (R + 1) x E epochs: the full budget
    levels = read_table(str(tmp_path), "levels")
    assert list(levels["round"]) == [0, 1] and levels["select_rate"].dtype.kind == "f"
    # compaction: one file per table, the same rows, and a second run changes nothing
    assert compact(str(tmp_path)) == {"epochs": (4, 1), "levels": (2, 1)}
    compacted = _files(tmp_path, "epochs")
    assert len(compacted) == 1 and compacted[0].startswith("compacted-")
    pd.testing.assert_frame_equal(read_table(str(tmp_path), "epochs").sort_values("global_epoch")
                                  .reset_index(drop=True), rows.reset_index(drop=True))
    before = (tmp_path / "epochs" / compacted[0]).read_bytes()
    assert compact(str(tmp_path)) == {"epochs": (1, 1), "levels": (1, 1)}
    assert (tmp_path / "epochs" / compacted[0]).read_bytes() == before


def test_rows_written_twice_by_a_crash_are_read_once_and_a_short_trial_is_stopped_early(tmp_path):
    from ts3ray.results.compact import compact
    from ts3ray.results.load import read_table

    config = make_config({"dataset": "synthetic", "epochs": 2, "e1": 1, "e2": 1, "rounds": 1})
    run = LotteryRun(config)
    info = results.TrialInfo(sweep="t", trial_id="t1", attempt=1, node="n", resumed_from=0,
                             started_at=1.0)
    writer = results.TrialWriter(str(tmp_path), info, run)
    for _ in range(3):
        next(run.epochs())
    writer.flush(run)  # epochs 1-3 written, but (say) the checkpoint at 3 never landed
    again = LotteryRun(config)
    for _ in range(2):
        next(again.epochs())  # the retry resumes from the checkpoint at epoch 2
    retry = results.TrialWriter(str(tmp_path), dataclasses.replace(info, attempt=2, started_at=2.0),
                                again)
    next(again.epochs())
    retry.flush(again)  # epoch 3 a second time
    assert len(_files(tmp_path, "epochs")) == 2  # epoch 3 is in both files
    rows = read_table(str(tmp_path), "epochs").sort_values("global_epoch")
    assert list(rows["global_epoch"]) == [1, 2, 3] and list(rows["attempt"]) == [1, 1, 2]
    assert rows["stopped_early"].all() and (rows["stopped_at_epoch"] == 3).all()  # 3 < 4
    compact(str(tmp_path))
    once = read_table(str(tmp_path), "epochs")
    assert list(once["global_epoch"]) == [1, 2, 3]
    assert list(once["attempt"]) == [1, 1, 2]  # epoch 3 from the newest attempt


def _chunk(root, trial, attempt, epochs, written_at, val_type="double"):
    """A hand-made epochs file of `trial` in the sweep layout (tune/results.py)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(epochs)
    table = pa.table({
        "run_id": [f"run-{trial}"] * n, "trial_id": [trial] * n, "round": [0] * n,
        "epoch": epochs, "global_epoch": epochs, "rounds": [0] * n, "epochs": [3] * n,
        "attempt": [attempt] * n, "written_at": [written_at] * n,
        "val": pa.nulls(n, pa.null()) if val_type == "null" else [0.5 + e / 10 for e in epochs],
    })
    path = root / "epochs" / trial / f"a{attempt:03d}-e{max(epochs):07d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def test_compaction_merges_new_files_with_an_earlier_compacted_file_row_by_row(tmp_path):
    from ts3ray.results.compact import compact_table
    from ts3ray.results.load import read_table

    _chunk(tmp_path, "A", 1, [1, 2], 10.0)
    _chunk(tmp_path, "B", 1, [1], 10.0, val_type="null")  # a column typed null in one file
    assert compact_table(str(tmp_path), "epochs") == (2, 1)
    # later: A's retry writes epoch 2 again and finishes; B goes on; C starts
    _chunk(tmp_path, "A", 2, [2, 3], 20.0)
    _chunk(tmp_path, "B", 1, [2], 11.0)
    _chunk(tmp_path, "C", 1, [1, 2, 3], 12.0)
    assert compact_table(str(tmp_path), "epochs") == (4, 1)
    rows = read_table(str(tmp_path), "epochs")
    got = sorted(zip(rows["trial_id"], rows["global_epoch"], rows["attempt"], rows["val"]))
    assert [g[:3] for g in got] == [("A", 1, 1), ("A", 2, 2), ("A", 3, 2), ("B", 1, 1),
                                    ("B", 2, 1), ("C", 1, 1), ("C", 2, 1), ("C", 3, 1)]
    assert pd.isna(got[3][3]) and got[4][3] == pytest.approx(0.7)  # null joined a double
    per_trial = rows.groupby("trial_id")["stopped_early"].first().to_dict()
    assert per_trial == {"A": False, "B": True, "C": False}  # B: 2 of (0 + 1) x 3 epochs
    # each trial's rows stay together, by epoch
    assert list(rows["trial_id"]) == ["A", "A", "A", "B", "B", "C", "C", "C"]
    assert list(rows["global_epoch"]) == [1, 2, 3, 1, 2, 1, 2, 3]


def test_reading_selected_columns_keeps_what_the_budget_status_needs(tmp_path):
    from ts3ray.results.load import read_table

    _chunk(tmp_path, "A", 1, [1, 2, 3], 10.0)
    _chunk(tmp_path, "B", 1, [1], 10.0)
    rows = read_table(str(tmp_path), "epochs", columns=())
    assert "val" not in rows.columns and {"trial_id", "stopped_early"} <= set(rows.columns)
    assert rows.groupby("trial_id")["stopped_early"].first().to_dict() == {"A": False, "B": True}


def test_many_small_tables_merge_into_few_chunks_with_one_schema():
    import pyarrow as pa

    from ts3ray.results import scan

    tables = [pa.table({"x": [i], "y": [None] if i % 2 else [float(i)]}) for i in range(300)]
    merged = scan.merged(tables)
    assert merged.column("x").to_pylist() == list(range(300))
    assert merged.column("x").num_chunks == 2  # 256 + 44, not 300
    assert merged.schema.field("y").type == pa.float64()
    target = pa.schema([("x", pa.float64()), ("z", pa.string())])
    conformed = scan.conform(merged.slice(0, 2), target)
    assert conformed.schema == target and conformed.column("z").null_count == 2


def test_gpus_auto_takes_one_gpu_where_there_is_one():
    from ts3ray.tune.resources import resolve_gpus

    auto = TrialResources(cpu=1, gpu=None)
    assert resolve_gpus(auto, [NODE_2CPU]).gpu == 0.0
    shared = resolve_gpus(auto, [NODE_2CPU, NODE_GPU], archs=("cifar_cnn", "vgg16"))
    assert shared.gpu == 0.5 and dict(shared.gpu_by_arch) == {"cifar_cnn": 0.25, "vgg16": 0.5}
    per_trial = shared.as_tune(lambda config: {"arch": config["arch"]})
    assert per_trial({"arch": "vgg16"}) == {"cpu": 1.0, "gpu": 0.5}
    assert per_trial({"arch": "cifar_cnn"}) == {"cpu": 1.0, "gpu": 0.25}
    later = resolve_gpus(auto, [NODE_2CPU], {"gpu_worker": {"CPU": 8, "GPU": 1}}, archs=("vgg19",))
    assert later.gpu == 0.5
    assert resolve_gpus(TrialResources(gpu=0.25), [NODE_2CPU, NODE_GPU]).gpu == 0.25
    with pytest.raises(UserError, match="--gpus-per-trial auto cannot tell whether GPU workers"):
        resolve_gpus(auto, [NODE_2CPU], {}, cannot_inspect=True)


def test_worker_types_the_autoscaler_can_start_satisfy_the_request(tmp_path):
    from ts3ray.tune.resources import startable_node_types

    bootstrap = tmp_path / "ray_bootstrap_config.yaml"
    bootstrap.write_text(
        "head_node_type: head\n"
        "available_node_types:\n"
        "  head: {resources: {CPU: 0}, max_workers: 0, node_config: {}}\n"
        "  gpu_worker: {resources: {CPU: 8, GPU: 1}, min_workers: 0, max_workers: 2, node_config: {}}\n"
        "  capped: {resources: {CPU: 64, GPU: 8}, max_workers: 0, node_config: {}}\n")
    startable = startable_node_types(str(bootstrap))
    assert startable == {"gpu_worker": {"CPU": 8, "GPU": 1}}
    head_only = [{"Resources": {"CPU": 0.0}, "Alive": True}]  # gpu.yaml's head runs no trials
    check_satisfiable(TrialResources(cpu=4, gpu=1), head_only, startable)  # autoscaler starts one
    with pytest.raises(UserError, match="--gpus-per-trial=2 cannot be satisfied"):
        check_satisfiable(TrialResources(cpu=4, gpu=2), head_only, startable)
    assert startable_node_types(str(tmp_path / "absent.yaml")) == {}


@pytest.mark.parametrize("option", ["--checkpoint-every", "--num-samples"])
def test_zero_option_values_are_refused_not_replaced(tmp_path, capsys, option):
    from ts3ray.tune.cli import run_sweep

    assert run_sweep("search", [option, "0", "--storage", str(tmp_path)]) == 2
    assert f"{option}=0 is not allowed" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_resume_refuses_a_changed_plan_or_option_and_names_what_changed(tmp_path):
    from ts3ray.tune.runner import check_resume, write_record

    plan, opts = build(parse(["grid", "--storage", str(tmp_path), "--grid", "lam=0,1",
                              "--scheduler", "asha", "epochs=4", "e1=1", "e2=1"]))
    (tmp_path / "grid-quick").mkdir()
    (tmp_path / "grid-quick" / "tuner.pkl").write_bytes(b"what Tune wrote")
    write_record(plan, opts)
    check_resume(plan, opts)  # the same command: fine
    moved, _ = build(parse(["grid", "--storage", str(tmp_path), "--grid", "lam=0,1",
                            "--scheduler", "asha", "epochs=4", "e1=1", "e2=1",
                            "data_root=/elsewhere", "--cpus-per-trial", "2"]))
    check_resume(moved, dataclasses.replace(opts, resources=TrialResources(cpu=2)))  # applies
    changed, changed_opts = build(parse(["grid", "--storage", str(tmp_path), "--grid",
                                         "lam=0,0.5,1", "--scheduler", "asha",
                                         "--reduction-factor", "4", "epochs=5", "e1=1", "e2=1"]))
    with pytest.raises(UserError) as err:
        check_resume(changed, changed_opts)
    message = str(err.value)
    assert "\n" not in message and message.startswith("--resume: this command differs")
    assert "--reduction-factor (stored 3.0, now 4.0)" in message
    assert "epochs (stored 4, now 5)" in message and "the trials (stored 2 cells, now 3" in message


def test_a_trial_config_names_its_cell_by_index_and_old_experiments_hold_the_cell():
    from ts3ray.tune.trainable import RunValues

    values = RunValues({"rounds": 1, "lam": 0.5}, cells=({"lam": 0.0}, {"lam": 1.0, "x": 3}))
    assert values({"cell": 1}) == {"rounds": 1, "lam": 1.0}  # x is not a RunConfig field
    assert values.cell({"cell": 0}) == {"lam": 0.0}
    assert values({"cell": {"lam": 0.7}}) == {"rounds": 1, "lam": 0.7}  # started by 0.x
    assert values({"lam": 0.2}) == {"rounds": 1, "lam": 0.2}  # a search's suggestion


def test_status_line_counts_trials_and_extrapolates_the_levels_left():
    from ts3ray.tune.runner import status_line
    from ts3ray.tune.trainable import RunValues, TotalLevels

    class T:
        def __init__(self, status, done):
            self.status, self.config = status, {"cell": {}}
            self.last_result = {"levels_done": done} if done is not None else None

    trials = [T("TERMINATED", 4), T("TERMINATED", 1), T("RUNNING", 2), T("PENDING", None),
              T("ERROR", 1)]
    levels = TotalLevels(RunValues({"rounds": 3}))  # 4 levels a trial
    line = status_line(trials, levels, 60.0, total=6)
    # levels: 4 + 4 (stopped early counts as finished) + 2 + 0 + 1 = 11 of 6 x 4 = 24
    assert line == ("status: 1 running, 1 pending, 1 done, 1 stopped early, 1 failed; "
                    "46% of IMP levels in 60 s, ETA ~71 s")


def test_line_progress_prints_levels_not_a_redrawn_bar(tmp_path, capsys):
    import io

    from ts3ray.run_cli import LineProgress

    run = LotteryRun(make_config({"dataset": "synthetic", "epochs": 2, "e1": 1, "e2": 1,
                                  "rounds": 1}))
    out = io.StringIO()
    progress = LineProgress(run, every_s=3600, stream=out)
    for record in run.epochs():
        progress.epoch_done(record)
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["level 0/1 done", "level 1/1 done"]
    assert "epoch 4/4 (alternate), sparsity 50.0%" in lines[1]


@pytest.mark.parametrize("argv, message", [
    (["--name", "../escape"], "--name='../escape' is not allowed: one path component"),
    (["--name", "/abs/path"], "--name='/abs/path' is not allowed"),
    (["--name", ".."], "--name='..' is not allowed"),
    (["--num-cpus", "-1"], "--num-cpus=-1 is not allowed: N >= 1"),
    (["--num-gpus", "-1"], "--num-gpus=-1 is not allowed: N >= 0"),
    (["--max-concurrent", "-1"], "--max-concurrent=-1 is not allowed"),
    (["--checkpoint-minutes", "0"], "--checkpoint-minutes=0 is not allowed"),
    (["--keep-checkpoints", "0"], "--keep-checkpoints=0 is not allowed"),
    (["--restart-errored"], "--restart-errored applies only with --resume"),
])
def test_bad_sweep_options_are_refused_before_ray(tmp_path, argv, message):
    with pytest.raises(UserError, match=re.escape(message)):
        build(parse(["sensitivity", "--storage", str(tmp_path), *argv]))
    assert not any(tmp_path.iterdir())


def test_storage_and_optuna_storage_paths_are_checked(tmp_path):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    with pytest.raises(UserError, match="--storage=.* is a file"):
        build(parse(["sensitivity", "--storage", str(afile)]))
    with pytest.raises(UserError, match="is a directory"):
        build(parse(["search", "--storage", str(tmp_path), "--optuna-storage", str(tmp_path)]))
    with pytest.raises(UserError, match="does not exist or is not writable"):
        build(parse(["search", "--storage", str(tmp_path), "--optuna-storage",
                     str(tmp_path / "missing" / "study.log")]))
    plan, opts = build(parse(["search", "--storage", str(tmp_path), "--optuna-storage",
                              str(tmp_path / "study.log")]))
    assert opts.optuna_storage.endswith("study.log")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim, /proc")
def test_the_driver_hands_freed_heap_pages_back_to_the_system():
    from ts3ray.tune.memory import FreedMemoryReturner

    def rss_mb():
        with open("/proc/self/status") as status:
            return next(int(l.split()[1]) / 1024 for l in status if l.startswith("VmRSS:"))

    returner = pickle.loads(pickle.dumps(FreedMemoryReturner(every_s=3600.0)))  # Tune pickles
    assert not returner.due()  # not yet due                           # its callbacks
    blocks = [bytearray(4000) for _ in range(25_000)]  # ~100 MB from malloc's heap
    kept = blocks[::16]  # holes the heap's top cannot shrink past
    del blocks
    held = rss_mb()
    returner.every_s = 0.0
    assert returner.due()
    assert rss_mb() < held - 50, "the ~90 MB freed between the kept blocks stayed resident"
    assert len(kept) == 1563


@pytest.mark.parametrize("argv, column", [
    (["search", "--num-samples", "2"], "val_acc_sparse"),
    (["grid", "--grid", "lam=0.1,0.2", "--scheduler", "asha"], "val_acc_sparse"),
    (["search", "--num-samples", "2", "--objective", "test"], "acc_sparse"),
])
def test_what_chooses_is_validation_unless_test_is_asked_for(argv, column):
    from ts3ray.tune.runner import objective_metric

    plan, _ = build(parse([*argv, "epochs=4", "e1=1", "e2=1", "rounds=1"]))
    assert objective_metric(plan) == column


def test_tune_never_sees_test_accuracy_unless_a_tracker_logs_it():
    """What Tune's scheduler and searcher get is the objective (validation) and the schedule;
    the level's test accuracy reaches Optuna's user_attrs from the trial's Parquet rows. Only
    a tracker (a logger) gets test columns, named test_* so none can be mistaken."""
    from ts3ray.tune.trackers import EPOCH_METRICS
    from ts3ray.tune.trainable import tune_metrics

    run = LotteryRun(make_config({"dataset": "synthetic", "epochs": 2, "e1": 1, "e2": 1,
                                  "rounds": 1, "val_fraction": 0.2}))
    records = list(run.epochs())
    for record in records:
        metrics = tune_metrics(record, run, attempt=1, objective="val_acc_sparse")
        assert metrics["val_acc_sparse"] == record["val_acc_sparse"]
        test_values = {record[c] for c in record if c.startswith("acc_")}
        assert not any(k.startswith(("acc", "test")) for k in metrics), metrics
        assert not test_values & {v for k, v in metrics.items() if isinstance(v, float)
                                  and k != "val_acc_sparse"}
    assert tune_metrics(records[1], run, attempt=1, objective=None)["level"] == 0
    test_names = {name for name, column in EPOCH_METRICS.items() if column.startswith("acc_")}
    assert test_names and all(name.startswith("test_") for name in test_names)

def test_user_errors_survive_the_trip_back_from_a_ray_worker():
    """Ray sends a trial's exception back pickled (cloudpickle): a ConfigError raised inside
    a trial must arrive as itself, with its one line, not as a TypeError of its rebuilding."""
    from ray import cloudpickle

    from ts3ray.errors import ConfigError
    from ts3ray.tune.spec import SpecErrors

    err = cloudpickle.loads(cloudpickle.dumps(ConfigError("data_path", "stream", "device")))
    assert isinstance(err, ConfigError) and (err.key, err.value) == ("data_path", "stream")
    assert str(err) == "data_path='stream' is not allowed: device"
    spec = cloudpickle.loads(cloudpickle.dumps(SpecErrors(["a: bad", "b: worse"])))
    assert spec.lines == ["a: bad", "b: worse"] and str(spec) == "a: bad; b: worse"
