"""Protocols (method/protocols.py): each builds the optimiser, schedule and constants its
recipe says, owns its keys, and is recorded; run_id hashes the resolved options."""
from __future__ import annotations

import math

import pytest
import torch

from ts3ray.config import make_config
from ts3ray.data import make_synthetic
from ts3ray.errors import ConfigError
from ts3ray.method import jocor
from ts3ray.method.peer_losses import RCE_LOG_ZERO_CODE
from ts3ray.method.protocols import apply_schedule, beta1_at, lr_factor
from ts3ray.method.registry import method_options, protocol_warnings
from ts3ray.run import LotteryRun

RECIPE = ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "adam_beta1",
          "beta1_decayed", "lr_schedule", "lr_decay_epochs", "lr_decay_factor", "lr_floor",
          "batch_size", "grad_clip", "init")
ADAM_PLAN = dict(optimizer="adam", lr=1e-3, momentum=0.0, nesterov=False, weight_decay=0.0,
                 adam_beta1=0.9, beta1_decayed=0.1, lr_schedule="linear",
                 lr_decay_epochs=(16,), lr_decay_factor=0.1, lr_floor=0.0, batch_size=128,
                 grad_clip=None,
                 init="torch_default")  # decay from 80/200 = 40% of E = 40 -> epoch 16
TS3_MNIST = dict(optimizer="sgd", lr=0.01, momentum=0.9, nesterov=False, weight_decay=0.0,
                 adam_beta1=0.9, beta1_decayed=None, lr_schedule="step", lr_decay_epochs=(),
                 lr_decay_factor=0.1, lr_floor=0.0, batch_size=256, grad_clip=None,
                 init="kaiming")

# (method, dataset, protocol, E) -> the recipe's values, written out by hand from the sources
CASES = [
    ("jocor", "mnist", "published", 40, ADAM_PLAN, dict(lam=0.95, forget_schedule="paper")),
    ("coteaching", "cifar10", "published", 40, ADAM_PLAN, dict(t_k=10)),
    ("coteaching", "cifar10", "code", 40, ADAM_PLAN, dict(forget_schedule="code")),
    ("ts3net", "mnist", "published", 40, TS3_MNIST, {}),
    ("ce", "mnist", "published", 40, TS3_MNIST, {}),  # the paper's baseline in its framework
    ("ts3net", "cifar10", "published", 120,
     dict(TS3_MNIST, lr=0.1, weight_decay=1e-4, lr_decay_epochs=(40,)), {}),  # Sec. IV-A
    ("ts3net", "clothing1m", "published", 100,
     dict(TS3_MNIST, lr=0.02, weight_decay=1e-4, lr_decay_epochs=(60,), batch_size=32), {}),
    # the official code's LeNet settings: lr 0.1, momentum 0 (open_lth), no wd, batch 128
    ("ts3net", "mnist", "code", 40, dict(TS3_MNIST, lr=0.1, momentum=0.0, batch_size=128),
     dict(refine_loss="code", entropy="class_mean", dense_reset="from_sparse", lam=1.0)),
    ("ts3net", "cifar100", "code", 120,
     dict(TS3_MNIST, lr=0.1, weight_decay=1e-4, lr_decay_epochs=(40,)), dict(lam=1.0)),
    ("jocor", "cifar100", "published", 40, dict(ADAM_PLAN, lr_decay_epochs=(20,)),  # 100/200
     dict(lam=0.85)),
    ("jocor", "mnist", "shared", 40, TS3_MNIST, dict(lam=0.95)),  # the run's SGD
    ("sce", "mnist", "shared", 40, TS3_MNIST, dict(rce_log_zero=-4.0, alpha=0.01, beta=1.0)),
    # SCE's official Keras code: SGD 0.1, x0.1 after epochs 10 and 30 of 50 (11/50, 31/50 of E)
    ("sce", "mnist", "published", 40, dict(TS3_MNIST, lr=0.1, lr_decay_epochs=(9, 25),
                                           batch_size=128), dict(rce_log_zero=RCE_LOG_ZERO_CODE)),
    # the APL repository's configs/mnist: nesterov, wd 1e-2, cosine to 0.001, clip 5, its init
    ("mae", "mnist", "published", 40,
     dict(TS3_MNIST, nesterov=True, weight_decay=1e-2, lr_schedule="cosine", lr_floor=0.1,
          batch_size=128, grad_clip=5.0, init="apl"), dict(mae_scale=1.0)),
    # digits: the MNIST config at batch 16 (11 steps an epoch at 128 leave MAE near chance)
    ("mae", "digits", "published", 20,
     dict(TS3_MNIST, nesterov=True, weight_decay=1e-2, lr_schedule="cosine", lr_floor=0.1,
          batch_size=16, grad_clip=5.0, init="apl"), dict(mae_scale=1.0)),
    ("itlm", "mnist", "published", 40,
     dict(TS3_MNIST, lr=0.1, momentum=0.0, weight_decay=0.0, lr_decay_epochs=(24,),
          lr_decay_factor=0.2, init="kaiming"), {}),  # x0.2 at 60% (of each round: segment)
    ("apl", "mnist", "published", 40, None, dict(mae_scale=1.0, alpha=1.0, beta=10.0)),
    ("dividemix", "cifar10", "published", 300,
     dict(TS3_MNIST, lr=0.02, weight_decay=5e-4, lr_decay_epochs=(150,), batch_size=64,
          init="torch_default"), dict(lambda_u=25.0, warmup_epochs=10, alpha=4.0)),
    ("dividemix", "clothing1m", "published", 80,
     dict(TS3_MNIST, lr=0.002, weight_decay=1e-3, lr_decay_epochs=(40,), batch_size=32,
          init="torch_default"), dict(lambda_u=0.0, warmup_epochs=1, alpha=0.5)),
    ("dividemix", "cifar10", "code", 300, None, dict(evaluate="ensemble")),
]


@pytest.mark.parametrize("method, dataset, protocol, epochs, recipe, options", CASES)
def test_each_protocol_resolves_its_recipe(method, dataset, protocol, epochs, recipe, options):
    noise = "human" if dataset == "clothing1m" else "sym"
    c = make_config(dict(method=method, dataset=dataset, noise=noise, protocol=protocol,
                         epochs=epochs, e1=min(10, epochs // 4), e2=epochs // 2),
                    check_files=False)
    assert c.protocol == protocol
    if recipe is not None:
        assert {k: getattr(c, k) for k in RECIPE} == recipe
    resolved = method_options(c)
    for key, value in options.items():
        assert getattr(resolved, key) == value, key


def test_published_owns_its_keys_and_shared_takes_the_users():
    with pytest.raises(ConfigError) as err:
        make_config({"dataset": "mnist", "method": "jocor", "lr": 0.01}, check_files=False)
    assert err.value.key == "lr" and "0.001 under protocol=published for jocor" in str(err.value)
    assert "protocol=shared" in str(err.value)
    same = make_config({"dataset": "mnist", "method": "jocor", "lr": 0.001}, check_files=False)
    assert same.lr == 0.001  # a value equal to the recipe's is no contradiction
    with pytest.raises(ConfigError, match="rce_log_zero"):  # the units the constants need
        make_config({"dataset": "mnist", "method": "sce", "method_options": "rce_log_zero=-4"},
                    check_files=False)
    shared = make_config({"dataset": "mnist", "method": "jocor", "protocol": "shared",
                          "lr": 0.03, "batch_size": 64}, check_files=False)
    assert (shared.optimizer, shared.lr, shared.batch_size) == ("sgd", 0.03, 64)


def test_run_id_hashes_the_resolved_options(monkeypatch):
    values = dict(dataset="mnist", method="jocor")
    default = make_config(values, check_files=False)
    explicit = make_config({**values, "method_options": "lam=0.95"}, check_files=False)
    assert explicit.run_id == default.run_id  # the same resolved value: the same run
    other = make_config({**values, "method_options": "lam=0.9"}, check_files=False)
    assert other.run_id != default.run_id
    monkeypatch.setitem(jocor.LAMBDA, "mnist", 0.9)  # a default changes in a new release
    changed = make_config(values, check_files=False)
    assert "lam=0.9," in changed.method_options and changed.run_id != default.run_id
    assert changed.run_id == other.run_id


def test_the_out_of_regime_warning_names_the_constant_and_the_protocol():
    shared = make_config(dict(dataset="mnist", method="jocor", protocol="shared"),
                         check_files=False)
    (line,) = protocol_warnings(shared)
    assert line.startswith("jocor lam=0.95 was tuned under Adam") and "protocol=published" in line
    assert protocol_warnings(make_config(dict(dataset="mnist", method="jocor"),
                                         check_files=False)) == []  # published: its own Adam
    low = make_config(dict(dataset="mnist", method="jocor", protocol="shared",
                           method_options="lam=0.5"), check_files=False)
    assert protocol_warnings(low) == []
    apl = make_config(dict(dataset="mnist", method="apl", protocol="shared"), check_files=False)
    assert "effective beta of 20" in protocol_warnings(apl)[0]


def test_linear_decay_and_the_beta1_plan_by_hand():
    c = make_config(dict(dataset="mnist", method="coteaching", epochs=10, e1=2, e2=4),
                    check_files=False)
    assert c.lr_decay_epochs == (4,)  # 40% of 10
    # Co-teaching's alpha_plan: lr for epochs < 4, then lr (10 - e) / (10 - 4)
    assert [round(lr_factor(c, e), 6) for e in range(10)] == [
        1, 1, 1, 1, 1, round(5 / 6, 6), round(4 / 6, 6), 0.5, round(2 / 6, 6), round(1 / 6, 6)]
    assert [beta1_at(c, e) for e in (3, 4, 9)] == [0.9, 0.1, 0.1]
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=c.lr, betas=(0.9, 0.999))
    assert apply_schedule([opt], c, 7) == pytest.approx(5e-4)
    assert opt.param_groups[0]["betas"] == (0.1, 0.999) and opt.param_groups[0]["lr"] == 5e-4
    cosine = make_config(dict(dataset="mnist", method="mae", epochs=10, e1=2, e2=4),
                         check_files=False)
    assert (cosine.lr_schedule, cosine.lr_floor) == ("cosine", 0.1)  # eta_min 0.001 of 0.01
    assert [round(lr_factor(cosine, e), 6) for e in (0, 5)] == [1.0, 0.55]
    assert lr_factor(cosine, 2) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.2)))


@pytest.fixture(scope="module")
def dataset():
    return make_synthetic(4, (1, 8, 8), n_train=96, n_test=32, seed=0)


def test_jocor_published_trains_with_one_adam_over_both_networks(dataset):
    c = make_config(dict(dataset="synthetic", method="jocor", epochs=5, e1=1, e2=2, rounds=0,
                         method_options="t_k=1", device="cpu"), check_files=False)
    run = LotteryRun(c, dataset=dataset)
    assert list(run.optimizers) == ["S+D"]
    (adam,) = run.optimizers.values()
    assert isinstance(adam, torch.optim.Adam)
    params = {id(p) for g in adam.param_groups for p in g["params"]}
    assert params == {id(p) for m in run.models.values() for p in m.parameters()}
    rows = list(run.epochs())
    assert [r["lr"] for r in rows] == pytest.approx([1e-3, 1e-3, 1e-3, 2 / 3 * 1e-3, 1 / 3 * 1e-3])
    assert adam.param_groups[0]["betas"][0] == 0.1  # the decay started at epoch 2
    # PyTorch's default init: two fresh networks nearly agree (JoCoR's premise)
    kaiming = LotteryRun(make_config(dict(dataset="synthetic", method="jocor", epochs=5, e1=1,
                                          e2=2, rounds=0, method_options="t_k=1",
                                          protocol="shared", device="cpu"),
                                     check_files=False), dataset=dataset)
    assert symmetric_kl(run, dataset) < 0.05 < symmetric_kl(kaiming, dataset)


def symmetric_kl(run, dataset) -> float:
    """The mean symmetric KL between the two networks' initial predictions on the test set."""
    models = {n: m for n, m in run.models.items()}
    for name, model in models.items():
        model.load_state_dict(run.init_states[name])
        model.eval()
    x = torch.cat([b.x for b in run.data.eval_sets["test"].batches()])
    with torch.no_grad():
        p, q = (torch.log_softmax(models[n](x), 1) for n in ("S", "D"))
    return float(((p.exp() * (p - q)).sum(1) + (q.exp() * (q - p)).sum(1)).mean())


def test_itlm_rounds_retrain_from_the_levels_masked_initial_weights(dataset):
    c = make_config(dict(dataset="synthetic", method="itlm", epochs=5, e1=1, e2=2, rounds=1,
                         method_options="warmup_epochs=1,rounds=2", device="cpu",
                         protocol="shared", batch_size=32), check_files=False)
    run = LotteryRun(c, dataset=dataset)
    for _ in range(5):  # level 0; rounds [1, 3) and [3, 5)
        run.train_epoch()
    seen = {}
    original = run._reinit

    def spy(nets):
        inner = original(nets)

        def reinit(name):
            inner(name)
            seen[run.epoch] = {k: v.clone() for k, v in run.models[name].state_dict().items()}
        return reinit

    run._reinit = spy
    for _ in range(5):  # level 1: pruned S
        run.train_epoch()
    assert sorted(seen) == [1, 3]  # each round starts from the level's masked init
    masks, init = run.masks["S"], run.init_states["S"]
    for state in seen.values():
        for key, value in state.items():
            want = init[key] * masks[key] if key in masks else init[key]
            assert torch.equal(value, want), key
    rows = run.epoch_rows[5:]
    assert [r["stage"] for r in rows] == ["warmup", "itlm", "itlm", "itlm", "itlm"]
