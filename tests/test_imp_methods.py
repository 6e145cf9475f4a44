"""IMP (Algorithm 2) over every method on tiny synthetic data: a 2-level lottery run per
method, pruned weights exactly zero in every pruned network, dense peers reset to their own
initial weights, CPU bit-determinism, resume = uninterrupted (incl. a method's state), the
evaluation columns, and the config rules of `method` / `method_options`."""
from __future__ import annotations

import io
import math

import pytest
import torch

from ts3ray.config import METHOD_NAMES, make_config
from ts3ray.data import make_synthetic
from ts3ray.errors import ConfigError
from ts3ray.method.registry import METHODS, resolve_method
from ts3ray.run import LotteryRun

TINY = dict(dataset="synthetic", noise="sym", noise_rate=0.4, epochs=2, e1=1, e2=1,
            rounds=1, prune_fraction=0.5, batch_size=32, device="cpu", seed=0,
            protocol="shared")
# warm-ups shortened to the tiny schedule (ITLM's follows e1 = 1 by itself)
OPTIONS = {"dividemix": "warmup_epochs=1", "coteaching": "t_k=1", "jocor": "t_k=1"}


@pytest.fixture(scope="module")
def dataset():
    """96 training images of 4 classes (8x8, one channel), 32 test images. Also pays the
    process's one-time costs (first torch.optim construction, the sklearn import) here."""
    import sklearn.mixture  # noqa: F401

    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    return make_synthetic(4, (1, 8, 8), n_train=96, n_test=32, seed=0)


def config(method: str, **changes):
    values = {**TINY, "method": method, "method_options": OPTIONS.get(method, ""), **changes}
    return make_config(values, check_files=False)


def run_all(cfg, dataset, check=None) -> LotteryRun:
    run = LotteryRun(cfg, dataset=dataset)
    for _ in run.epochs():
        if check is not None:
            check(run)
    return run


def without_seconds(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def same_rows(a, b) -> bool:
    def equal(x, y):
        return x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))

    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(equal(x[k], y[k]) for k in x)
        for x, y in zip(without_seconds(a), without_seconds(b)))


def assert_pruned_zero(run: LotteryRun) -> None:
    for name, masks in run.masks.items():
        params = dict(run.models[name].named_parameters())
        for pname, mask in masks.items():
            assert torch.count_nonzero(params[pname][~mask]) == 0, f"{name}.{pname}"


def test_method_names_match_the_registry():
    assert tuple(METHODS) == METHOD_NAMES
    assert METHOD_NAMES[0] == "ce" and METHOD_NAMES[-1] == "ts3net"  # Table I row order


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_runs_two_levels_and_is_bit_deterministic(method, dataset):
    first = run_all(config(method), dataset, check=assert_pruned_zero)
    second = run_all(config(method), dataset)
    assert [r["round"] for r in first.level_rows] == [0, 1]
    assert [r["sparsity"] for r in first.level_rows] == pytest.approx([0.0, 0.5], abs=1e-3)
    assert same_rows(first.epoch_rows, second.epoch_rows)
    assert same_rows(first.level_rows, second.level_rows)
    for name in first.models:
        for a, b in zip(first.models[name].parameters(), second.models[name].parameters()):
            assert torch.equal(a, b)
    row = first.epoch_rows[-1]
    assert row["stage"] == first.method.stage(1)
    assert 0.0 <= row["acc_sparse"] <= 1.0
    assert math.isnan(row["acc_dense"]) == (len(first.models) == 1)
    assert row["acc_eval"] == row["acc_sparse"]  # every default evaluates S alone


@pytest.mark.parametrize("method, prune", [("coteaching", "S"), ("jocor", "both"),
                                           ("dividemix", "both")])
def test_two_network_imp_keeps_pruned_weights_zero_and_resets_each_net_to_its_own_init(
        method, prune, dataset):
    cfg = config(method, method_options=",".join(filter(None, [OPTIONS[method],
                                                               f"prune={prune}"])))
    run = LotteryRun(cfg, dataset=dataset)
    init = {n: {k: v.clone() for k, v in s.items()} for n, s in run.init_states.items()}
    first = next(iter(init["S"]))
    assert not torch.equal(init["S"][first], init["D"][first])  # different initialisations
    expected = ("S", "D") if prune == "both" else ("S",)
    assert tuple(run.masks) == expected == run.method.pruned
    run.train_epoch()
    run.train_epoch()  # level 0 ends: prune each pruned net by its own weights, reset all
    for name, model in run.models.items():
        masks = run.masks.get(name, {})
        for key, value in model.state_dict().items():
            want = init[name][key] * masks[key] if key in masks else init[name][key]
            assert torch.equal(value, want), f"{name}.{key} not reset to its own init"
    if prune == "both":  # each network pruned by its own magnitudes: different masks
        assert any(not torch.equal(run.masks["S"][k], run.masks["D"][k]) for k in run.masks["S"])
    for _ in run.epochs():
        assert_pruned_zero(run)
    assert run.level_rows[-1]["sparsity"] == pytest.approx(0.5, abs=1e-3)


def test_ce_is_the_warm_variant_ticket_bit_for_bit(dataset):
    """CE inside IMP trains S exactly as TS3-Net's `warm` variant trains S (same init,
    batches and loss); `warm` also trains D, which CE does not have."""
    ce = run_all(config("ce", epochs=3), dataset)
    warm = run_all(config("ts3net", epochs=3, variant="warm"), dataset)
    for column in ("acc_sparse", "loss_sparse", "nonzero_params"):
        assert [r[column] for r in ce.epoch_rows] == [r[column] for r in warm.epoch_rows]
    assert [r["stage"] for r in ce.epoch_rows][:3] == ["ce"] * 3
    assert ce.dense_model is None and warm.dense_model is not None


@pytest.mark.parametrize("method, options", [("itlm", "rounds=1"),
                                             ("jocor", "t_k=1")])
def test_resume_equals_uninterrupted_with_method_state(method, options, dataset):
    """ITLM keeps its trimmed set across the epochs of a round (one round of 3 epochs);
    JoCoR has one optimiser over both networks. A checkpoint taken mid-level continues
    bit-identically."""
    cfg = config(method, epochs=4, e1=1, method_options=options)
    whole = run_all(cfg, dataset)
    first = LotteryRun(cfg, dataset=dataset)
    for _ in range(6):  # level 1, epoch 2: ITLM selected at epoch 1 and keeps it in epoch 2
        first.train_epoch()
    state = first.state_dict()
    if method == "itlm":
        assert "itlm_subset" in state["method_state"]
    else:
        assert list(state["optimizers"]) == ["S+D"]
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    resumed = LotteryRun(cfg, dataset=dataset)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    list(resumed.epochs())
    assert same_rows(whole.epoch_rows, resumed.epoch_rows)
    assert same_rows(whole.level_rows, resumed.level_rows)
    # without the kept set the resumed ITLM run would re-select mid-round: it differs
    if method == "itlm":
        lost = LotteryRun(cfg, dataset=dataset)
        state["method_state"] = {}
        lost.load_state_dict(state)
        list(lost.epochs())
        assert not same_rows(whole.epoch_rows, lost.epoch_rows)


def test_ensemble_evaluation_columns(dataset):
    cfg = config("dividemix", method_options="evaluate=ensemble,warmup_epochs=1")
    run = LotteryRun(cfg, dataset=dataset, device="cpu")
    record = run.train_epoch()
    data, models = run.data, run.models
    test = data.eval_sets["test"]
    batches = list(test.batches())
    x, y = torch.cat([b.x for b in batches]), torch.cat([b.y for b in batches])
    for m in models.values():
        m.eval()
    with torch.no_grad():
        both = (models["S"](x) + models["D"](x)).argmax(1)
        alone = models["S"](x).argmax(1)
    assert record["acc_eval"] == (both == y).double().mean().item()
    assert record["acc_sparse"] == (alone == y).double().mean().item()
    assert math.isnan(record["val_acc_eval"])  # no hold-out in this config
    held = LotteryRun(config("dividemix", method_options="evaluate=ensemble,warmup_epochs=1",
                             val_fraction=0.25), dataset=dataset)
    list(held.epochs())
    assert all(0.0 <= r["val_acc_eval"] <= 1.0 for r in held.epoch_rows)
    assert held.level_rows[-1]["acc_eval_last"] == held.epoch_rows[-1]["acc_eval"]
    assert held.level_rows[-1]["val_acc_eval_last"] == held.epoch_rows[-1]["val_acc_eval"]


def test_select_rate_follows_the_ts3net_rules():
    def rate(method, **values):
        cfg = make_config({**TINY, "method": method, "method_options": OPTIONS.get(method, ""),
                           **values}, check_files=False)
        return resolve_method(cfg).select_rate

    assert rate("coteaching") == pytest.approx(0.4)  # eps
    assert rate("jocor", dataset="mnist", noise="asym", noise_rate=0.2) == pytest.approx(0.1)
    assert rate("itlm", dataset="cifar100", noise="asym", noise_rate=0.2) == pytest.approx(0.2)
    assert rate("coteaching", select_rate=0.3) == pytest.approx(0.3)
    assert rate("sce") is None and rate("dividemix") is None  # no rate: loss / GMM


@pytest.mark.parametrize("values, key", [
    (dict(method="adam"), "method"),
    (dict(method="ce", variant="warm"), "variant"),
    (dict(method="coteaching", selection="gmm"), "selection"),
    (dict(method="ts3net", method_options="lam=0.5"), "method_options"),
    (dict(method="jocor", method_options="lambda=0.5"), "lambda"),
    (dict(method="jocor", method_options="lam=two"), "lam"),
    (dict(method="jocor", method_options="lam=1.5"), "lam"),
    (dict(method="sce", method_options="prune=both"), "prune"),
    (dict(method="jocor", method_options="lam=0.5,lam=0.6"), "method_options"),
    (dict(method="dividemix", method_options="warmup_epochs=2"), "warmup_epochs"),
    (dict(method="jocor", method_options="lam=1e309"), "lam"),
    (dict(method="coteaching", method_options="prune=D"), "prune"),
])
def test_bad_method_values_are_one_line_config_errors(values, key):
    with pytest.raises(ConfigError) as err:
        make_config({**TINY, **values}, check_files=False)
    assert err.value.key == key and "\n" not in str(err.value)


def test_method_options_have_one_spelling():
    a = make_config({**TINY, "method": "jocor", "method_options": "t_k=5, lam=0.5"},
                    check_files=False)
    b = make_config({**TINY, "method": "jocor", "method_options": "lam=0.5,t_k=5"},
                    check_files=False)
    assert a.method_options == "c=1.0,forget_schedule=paper,lam=0.5,prune=S,t_k=5"
    assert a.run_id == b.run_id
    assert resolve_method(a).options.lam == 0.5 and resolve_method(a).options.t_k == 5


def test_run_cli_refuses_bad_method_options_before_writing(tmp_path, capsys):
    from ts3ray.cli import main

    out = tmp_path / "run"
    code = main(["run", "dataset=digits", "method=jocor", "method_options=lam=2", "--out",
                 str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "lam=2.0 is not allowed: a number in [0, 1]" in err
    assert not out.exists()
