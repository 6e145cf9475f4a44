"""Competitor epoch steps on tiny synthetic data: selection rules, peers, one optimiser,
whole-set trimming, co-divide, masks, evaluation and CPU bit-determinism."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ts3ray import pruning
from ts3ray.config import make_config
from ts3ray.errors import ConfigError
from ts3ray.data import make_synthetic
from ts3ray.method import base, coteaching, itlm, jocor
from ts3ray.method import dividemix as DM
from ts3ray.method import peer_losses as PL
from ts3ray.method.base import EpochContext, EpochStats, Net, Setting
from ts3ray.method.losses import masked_mean, per_sample_ce, small_loss_count, small_loss_mask
from ts3ray.method.peer_data import gmm_clean_probability, stream_seed, train_losses
from ts3ray.method.registry import METHODS as ALL_METHODS
from ts3ray.method.registry import make_options
from ts3ray.method.schedules import forget_rate
from ts3ray.models import build_model
from ts3ray.run import prepare_data

METHODS = {n: m for n, m in ALL_METHODS.items() if n != "ts3net"}  # the competitors
CPU = torch.device("cpu")
CLASSES, SHAPE = 4, (3, 8, 8)


@pytest.fixture(scope="module")
def data():
    """96 training images of 4 classes with 40% symmetric noise, batches of 32, augmented.

    Also pays the process's one-time costs here rather than in the first test that meets
    them: the first torch.optim construction (~2 s) and the sklearn import (~1.7 s)."""
    import sklearn.mixture  # noqa: F401

    torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    ds = make_synthetic(CLASSES, SHAPE, n_train=96, n_test=32, seed=0, augment=True,
                        name="synthetic-cifar")
    cfg = make_config(dict(dataset="synthetic-cifar", noise="sym", noise_rate=0.4,
                           protocol="shared", batch_size=32, device="cpu", arch="lenet_300_100"), check_files=False)
    return prepare_data(cfg, CPU, ds)[0]


def build_nets(method: str, prune: str = "both", lr: float = 0.05) -> dict[str, Net]:
    """The method's networks at 50% sparsity (pruned weights zero), with its optimiser rule."""
    spec = METHODS[method]
    models = {n: build_model("lenet_300_100", num_classes=CLASSES, in_channels=SHAPE[0],
                             image_size=SHAPE[1:], seed=i) for i, n in enumerate(spec.networks)}
    masks = {}
    for n in spec.networks if prune == "both" else ("S",):
        masks[n] = pruning.global_magnitude_prune(models[n], pruning.init_masks(models[n]), 0.5)
        pruning.apply_masks(models[n], masks[n])
    sgd = dict(lr=lr, momentum=0.9, weight_decay=1e-4)
    if spec.joint_optimizer:
        shared = torch.optim.SGD([p for m in models.values() for p in m.parameters()], **sgd)
        optimizers = {n: shared for n in models}
    else:
        optimizers = {n: torch.optim.SGD(m.parameters(), **sgd) for n, m in models.items()}
    return {n: Net(models[n], optimizers[n], masks.get(n)) for n in spec.networks}


TWELVE_EPOCHS = make_config(dict(dataset="synthetic-cifar", epochs=12, e1=1, e2=1),
                            check_files=False)


def context(data, method, epoch=0, overrides=None, state=None, rate=0.4,
            reinit=None) -> EpochContext:
    options = make_options(method, "synthetic-cifar", "sym", 0.4, overrides, epochs=12)
    return EpochContext(config=TWELVE_EPOCHS, data=data, options=options, key=epoch, epoch=epoch,
                        stats=EpochStats(CPU), seed=7, select_rate=rate,
                        state={} if state is None else state, reinit=reinit)


def snapshot(nets):
    return {n: [p.detach().clone() for p in net.model.parameters()] for n, net in nets.items()}


FAST = {"itlm": {"warmup_epochs": 1, "reinit": False}, "dividemix": {"warmup_epochs": 1}}  # reinit: IMP tests


def run_epochs(data, method, epochs=2):
    nets = build_nets(method)
    state: dict = {}
    values = []
    for epoch in range(epochs):
        ctx = context(data, method, epoch, FAST.get(method), state)
        METHODS[method].epoch(nets, ctx)
        values.append(ctx.stats.read())
    return nets, values


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_with_masks_kept(data, method):
    nets, values = run_epochs(data, method)
    for name, net in nets.items():
        assert net.masks is not None
        for pname, param in net.model.named_parameters():
            if pname in net.masks:
                pruned = param[~net.masks[pname]]
                assert torch.equal(pruned, torch.zeros_like(pruned))
        assert values[-1][f"steps_{name}"] > 0, f"{name} trained in the last epoch"
    assert all(torch.isfinite(torch.tensor(list(v.values()))).all() for v in values)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_bit_deterministic_on_cpu(data, method):
    first, v1 = run_epochs(data, method)
    second, v2 = run_epochs(data, method)
    assert v1 == v2
    for name in first:
        assert all(torch.equal(a, b) for a, b in
                   zip(snapshot(first)[name], snapshot(second)[name]))


def test_registry_declarations():
    assert {n: s.networks for n, s in METHODS.items()} == {
        "ce": ("S",), "sce": ("S",), "mae": ("S",), "apl": ("S",), "itlm": ("S",),
        "coteaching": ("S", "D"), "jocor": ("S", "D"), "dividemix": ("S", "D")}
    assert [n for n, s in METHODS.items() if s.joint_optimizer] == ["jocor"]
    assert {n for n, s in METHODS.items() if s.uses_select_rate} == {"itlm", "coteaching", "jocor"}
    assert METHODS["coteaching"].pruned(make_options("coteaching", "cifar10")) == ("S",)
    both = make_options("coteaching", "cifar10", overrides={"prune": "both"})
    assert METHODS["coteaching"].pruned(both) == ("S", "D")
    with pytest.raises(ConfigError, match="unknown option of sce"):  # one network: no prune
        make_options("sce", "cifar10", overrides={"prune": "both"})
    dm = make_options("dividemix", "cifar10", overrides={"warmup_epochs": 2})
    assert [METHODS["dividemix"].stage_of(e, dm) for e in range(3)] == ["warmup"] * 2 + ["dividemix"]
    assert METHODS["dividemix"].evaluated(dm) == ("S",)
    assert METHODS["coteaching"].stage_of(0, make_options("coteaching", "cifar10")) == "coteaching"


class Recorder(Net):
    """A Net that remembers the value of every loss it steps on."""

    def __init__(self, net: Net):
        super().__init__(net.model, net.optimizer, net.masks)
        self.losses: list[float] = []

    def step(self, loss):
        self.losses.append(loss.item())
        super().step(loss)


def first_batch(data, key):
    return next(iter(data.batches.epoch(key)))


def test_coteaching_updates_each_network_on_its_peers_picks(data):
    nets = build_nets("coteaching")
    epoch = 10  # ramp done: forget eps = 0.4 -> keep ceil(0.6 * 32) = 20 per batch
    x, y, _ = first_batch(data, epoch)
    with torch.no_grad():
        ce = {n: per_sample_ce(net.model(x), y) for n, net in nets.items()}
    pick = {n: small_loss_mask(ce[n], 0.4) for n in ce}
    assert not torch.equal(pick["S"], pick["D"])  # otherwise the test could not tell
    rec = {n: Recorder(net) for n, net in nets.items()}
    coteaching.coteaching_epoch(rec, context(data, "coteaching", epoch))
    assert rec["S"].losses[0] == pytest.approx(masked_mean(ce["S"], pick["D"]).item(), abs=1e-6)
    assert rec["D"].losses[0] == pytest.approx(masked_mean(ce["D"], pick["S"]).item(), abs=1e-6)
    assert rec["S"].losses[0] != pytest.approx(masked_mean(ce["S"], pick["S"]).item(), abs=1e-6)


@pytest.mark.parametrize("epoch, kept", [(0, 96), (5, 3 * small_loss_count(32, 0.2))])
def test_coteaching_selection_follows_the_forget_rate(data, epoch, kept):
    ctx = context(data, "coteaching", epoch)
    coteaching.coteaching_epoch(build_nets("coteaching"), ctx)
    assert forget_rate(5, 0.4) == pytest.approx(0.2)
    assert ctx.stats.read()["selected"] == kept


def test_jocor_one_optimiser_and_joint_small_loss(data, monkeypatch):
    nets = build_nets("jocor")
    assert nets["S"].optimizer is nets["D"].optimizer
    epoch = 10
    x, y, _ = first_batch(data, epoch)
    with torch.no_grad():
        joint = PL.jocor_per_sample(nets["S"].model(x), nets["D"].model(x), y, 0.9)
    expected = masked_mean(joint, small_loss_mask(joint, 0.4)).item()
    before = snapshot(nets)
    ctx = context(data, "jocor", epoch)
    jocor.jocor_epoch(nets, ctx)
    stats = ctx.stats.read()
    assert stats["selected"] == 3 * small_loss_count(32, 0.4)
    assert stats["loss_S"] == stats["loss_D"]
    state = nets["S"].optimizer.state
    for name, net in nets.items():  # the one optimiser holds momentum for both networks
        assert all(p in state for p in net.model.parameters())
        assert any(not torch.equal(a, b) for a, b in zip(before[name], snapshot(nets)[name]))
    # the first step's loss is the mean joint loss over the joint small-loss picks
    fresh = build_nets("jocor")
    losses = []
    original = jocor.joint_step
    monkeypatch.setattr(jocor, "joint_step", lambda ns, loss: (
        losses.append(loss.item()), original(ns, loss)))
    jocor.jocor_epoch(fresh, context(data, "jocor", epoch))
    assert len(losses) == 3 and losses[0] == pytest.approx(expected, abs=1e-6)


def test_joint_step_refuses_separate_optimisers(data):
    nets = build_nets("coteaching")
    with pytest.raises(ValueError, match="share one optimiser"):
        base.joint_step(list(nets.values()), torch.zeros((), requires_grad=True))


def test_itlm_trims_over_the_whole_training_set(data, monkeypatch):
    nets = build_nets("itlm")
    with torch.no_grad():
        losses = train_losses(nets["S"].model, data)
    keep = small_loss_count(96, 0.4)  # ceil(0.6 * 96) = 58
    expected = torch.topk(losses, keep, largest=False).indices.sort().values
    trained_on = []
    original = itlm.subset_batches

    def recording(*args, **kwargs):
        for batch in original(*args, **kwargs):
            trained_on.append(batch[-1])
            yield batch

    monkeypatch.setattr(itlm, "subset_batches", recording)
    ctx = context(data, "itlm", epoch=0, overrides={"warmup_epochs": 0, "reinit": False})
    itlm.itlm_epoch(nets, ctx)
    assert torch.equal(ctx.state["itlm_subset"], expected)
    assert torch.equal(torch.cat(trained_on).sort().values, expected)  # each once, no others
    assert [b.shape[0] for b in trained_on] == [32, 26]  # full batches over the trimmed set
    stats = ctx.stats.read()
    assert stats["selected"] == keep
    assert stats["selected_correct"] == data.label_is_clean[expected].sum().item()
    # a per-batch trim would keep ceil(0.6 * 32) = 20 of every batch of the epoch's order
    per_batch = [small_loss_mask(losses[b.idx], 0.4).sum().item() for b in data.batches.epoch(0)]
    in_batches = [int(torch.isin(b.idx, expected).sum()) for b in data.batches.epoch(0)]
    assert per_batch == [20, 20, 20] and in_batches != per_batch


def test_itlm_rounds_reselect_and_reinitialise_at_each_round_start(data):
    """warm-up 1 epoch, then 3 rounds over the other 11 of 12 epochs: [1, 4), [4, 8), [8, 12).
    Each round starts by ranking the whole set with the previous round's model and
    re-initialising (ctx.reinit); within a round the trimmed set is kept."""
    nets = build_nets("itlm")
    state: dict = {}
    over = {"warmup_epochs": 1, "rounds": 3}
    assert itlm.round_bounds(make_options("itlm", "cifar10", overrides=over, epochs=12),
                             12) == [(0, 1), (1, 3), (4, 4), (8, 4)]
    reinits = []

    def step(epoch):
        ctx = context(data, "itlm", epoch, over, state, reinit=lambda n: reinits.append((epoch, n)))
        itlm.itlm_epoch(nets, ctx)

    step(0)
    assert "itlm_subset" not in state and not reinits  # warm-up trains on every sample
    step(1)
    chosen = state["itlm_subset"]
    step(2)
    step(3)
    assert state["itlm_subset"] is chosen  # kept within the round
    step(4)
    assert state["itlm_subset"] is not chosen
    assert reinits == [(1, "S"), (4, "S")]


def test_dividemix_trains_each_network_on_its_peers_division(data, monkeypatch):
    nets = build_nets("dividemix")
    ctx = context(data, "dividemix", epoch=3, overrides={"warmup_epochs": 0})
    with torch.no_grad():
        expected = {n: gmm_clean_probability(train_losses(net.model, data),
                                             stream_seed(7, 3, f"gmm-{n}"))
                    for n, net in nets.items()}
    assert not torch.equal(expected["S"] > 0.5, expected["D"] > 0.5)
    calls = []
    monkeypatch.setattr(DM, "train_on_division",
                        lambda learner, peer, prob, c, name: calls.append((learner, peer, prob)))
    DM.dividemix_epoch(nets, ctx)
    assert [(learner is nets[a], peer is nets[b]) for (learner, peer, _), (a, b)
            in zip(calls, [("S", "D"), ("D", "S")])] == [(True, True), (True, True)]
    assert torch.equal(calls[0][2], expected["D"])  # S learns from D's GMM
    assert torch.equal(calls[1][2], expected["S"])  # D learns from S's GMM
    assert ctx.stats.read()["selected"] == (expected["S"] > 0.5).sum().item()


class Const(nn.Module):
    """A stand-in network that predicts the same probabilities for every input."""

    def __init__(self, probs):
        super().__init__()
        self.logits = torch.tensor(probs, dtype=torch.float64).log()

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1)


def test_co_refinement_and_co_guessing_targets():
    model, peer = Const([0.6, 0.4]), Const([0.2, 0.8])
    x = torch.zeros(1, 1, dtype=torch.float64)
    w = torch.tensor([0.5])
    y = torch.tensor([0])
    inputs, targets = DM.mixmatch_targets(model, peer, x, x, y, w, (x, x), 2, 0.5)
    assert inputs.shape[0] == 4
    # refined: 0.5 * (1, 0) + 0.5 * (0.6, 0.4) = (0.8, 0.2) -> sharpen T=0.5: (0.64, 0.04)/0.68
    assert targets[0].tolist() == pytest.approx([0.64 / 0.68, 0.04 / 0.68])
    assert torch.equal(targets[0], targets[1])
    # guessed: mean of both nets over both views (0.4, 0.6) -> (0.16, 0.36) / 0.52
    assert targets[2].tolist() == pytest.approx([0.16 / 0.52, 0.36 / 0.52])
    # without an unlabelled batch only the two labelled views are mixed
    assert DM.mixmatch_targets(model, peer, x, x, y, w, None, 2, 0.5)[0].shape[0] == 2


def test_dividemix_epoch_uses_mixup_coefficient_at_least_one_half(data, monkeypatch):
    seen = []
    original = PL.mixup_coefficient
    monkeypatch.setattr(PL, "mixup_coefficient", lambda lam: seen.append(original(lam)) or seen[-1])
    nets = build_nets("dividemix")
    ctx = context(data, "dividemix", epoch=0, overrides={"warmup_epochs": 0, "lambda_u": 25.0})
    DM.dividemix_epoch(nets, ctx)
    assert seen and all(0.5 <= lam <= 1.0 for lam in seen)
    stats = ctx.stats.read()
    assert stats["steps_S"] + stats["steps_D"] == len(seen)  # one mixup per training step


def test_ensemble_prediction_sums_both_networks(data):
    nets = build_nets("dividemix")
    models = {n: net.model for n, net in nets.items()}
    batches = list(data.eval_sets["test"].batches())
    x, y = torch.cat([b.x for b in batches]), torch.cat([b.y for b in batches])
    for m in models.values():
        m.eval()
    with torch.no_grad():
        both = models["S"](x) + models["D"](x)
    for m in models.values():
        m.train()
    ensemble = make_options("dividemix", "cifar10", overrides={"evaluate": "ensemble"})
    assert METHODS["dividemix"].evaluated(ensemble) == ("S", "D")
    expected = (both.argmax(1) == y).double().mean().item()
    assert data.accuracies(models, ("S", "D"))["test"].item() == pytest.approx(expected)
    assert models["S"].training and models["D"].training  # modes restored


def test_grad_clip_bounds_the_step_and_ignores_pruned_weights(data):
    net = build_nets("sce")["S"]
    net.optimizer = torch.optim.SGD(net.model.parameters(), lr=1.0)  # update = -clipped grad
    before = [p.detach().clone() for p in net.model.parameters()]
    x, y, _ = first_batch(data, 0)
    loss = 1e3 * per_sample_ce(net.model(x), y).mean()
    net.grad_clip = 5.0
    net.step(loss)
    moved = torch.cat([(a - p.detach()).flatten() for a, p in zip(before, net.model.parameters())])
    assert moved.norm().item() == pytest.approx(5.0, rel=1e-4)
    for name, param in net.model.named_parameters():
        if name in net.masks:
            assert torch.equal(param[~net.masks[name]], torch.zeros_like(param[~net.masks[name]]))
