"""--tracker tensorboard through Tune's callback (event files hold val_acc and acc), Optuna
user_attrs in a real search journal, the optuna-dashboard line, a missing extra refused."""
from __future__ import annotations

import struct

import optuna
import pytest

from ts3ray.results.load import read_table
from ts3ray.tune.cli import run_sweep


def read_scalars(path) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard event file (TFRecord framing: u64 length, u32 crc, data, u32 crc) read
    with the Event proto tensorboard itself reads: {tag: [(step, value)]}."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    data = path.read_bytes()
    at = 0
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at:at + 8])
        event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
        at += 12 + length + 4
        for value in event.summary.value:
            if value.HasField("simple_value"):
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


@pytest.fixture(scope="module")
def search(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("tracked")
    code = run_sweep("search", ["--storage", str(root), "--num-samples", "2", "--scheduler",
                                "none", "--max-concurrent", "1", "--tracker", "tensorboard",
                                "epochs=3", "e1=1", "e2=1", "rounds=1"])
    assert code == 0
    return root / "search-quick"


def test_tensorboard_event_files_hold_the_epoch_metrics(search):
    epochs = read_table(str(search), "epochs")
    files = sorted(search.glob("trial_*/events.out.tfevents.*"))
    assert len(files) == 2
    for path in files:
        scalars = read_scalars(path)
        trial = path.parent.name.removeprefix("trial_")
        rows = epochs[epochs["trial_id"] == trial].sort_values("global_epoch")
        acc = scalars["ray/tune/test_acc"]
        assert [step for step, _ in acc] == rows["global_epoch"].tolist() == list(range(1, 7))
        assert [v for _, v in acc] == pytest.approx(rows["acc_sparse"].tolist(), abs=1e-6)
        assert [v for _, v in scalars["ray/tune/val_acc"]] == pytest.approx(
            rows["val_acc_sparse"].tolist(), abs=1e-6)
        assert {"ray/tune/level", "ray/tune/label_precision", "ray/tune/sparsity"} <= set(scalars)


def test_optuna_trials_carry_user_attrs_never_the_objective(search, capsys):
    journal = search / "optuna-journal.log"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name="search-quick", storage=storage)
    levels = read_table(str(search), "levels")
    assert len(study.trials) == 2
    for trial in study.trials:
        attrs = trial.user_attrs
        assert set(attrs) == {"trial_id", "e1", "e2", "level", "test_acc"}
        row = levels[(levels["trial_id"] == attrs["trial_id"]) & (levels["round"] == 1)].iloc[0]
        assert attrs["level"] == 1 and attrs["e1"] == row["e1"] and attrs["e2"] == row["e2"]
        assert "e2_frac" in trial.params and "e2" not in trial.params
        assert attrs["test_acc"] == pytest.approx(row["acc_sparse_last"])
        assert trial.value == pytest.approx(row["val_acc_sparse_last"])  # the objective: val


def test_the_sweep_says_what_to_run_next(local_ray, tmp_path, capsys):
    code = run_sweep("search", ["--storage", str(tmp_path), "--num-samples", "1", "--scheduler",
                                "none", "epochs=2", "e1=1", "e2=1", "rounds=0"])
    assert code == 0
    said = capsys.readouterr()
    out = said.out
    # ts3ray's first line comes before anything of Ray's
    assert said.err.startswith("ts3ray: sweep search-quick (search, 1 trials) checked; starting Ray")
    where = tmp_path / "search-quick"
    assert f"next: optuna-dashboard {where / 'optuna-journal.log'}" in out
    assert f"ts3ray ticket export {where} --pareto" in out


def test_a_tracker_that_is_not_installed_is_refused_before_ray(tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("mlflow") is not None:
        pytest.skip("mlflow is installed here")
    assert run_sweep("grid", ["--storage", str(tmp_path), "--tracker", "mlflow"]) == 2
    err = capsys.readouterr().err
    assert err == ("ts3ray: error: --tracker mlflow needs the mlflow package, which is not "
                   "installed here (pip install 'ts3ray[mlflow]')\n")
    assert run_sweep("grid", ["--storage", str(tmp_path), "--tracker", "neptune"]) == 2
    assert "--tracker='neptune' is not allowed: one of tensorboard, mlflow, wandb" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
