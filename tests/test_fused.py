"""Fused trial arrays (ts3ray/fused/): K members trained as one vmap'd model reproduce K
unfused lottery runs - records, selection counts, masks - on tiny real data (digits)."""
import math

import pytest
import torch

import ts3ray
from ts3ray.config import make_config
from ts3ray.errors import ConfigError
from ts3ray.fused import FusedArray, check_fusable
from ts3ray.fused.functional import rowwise_small_loss_mask
from ts3ray.method.losses import small_loss_count, small_loss_mask
from ts3ray.run import LotteryRun

TINY = dict(dataset="digits", noise="sym", noise_rate=0.4, epochs=3, e1=1, e2=1, rounds=1,
            prune_fraction=0.5, device="cpu")
MEMBERS = [dict(seed=0, lam=0.5, tau=0.7, gamma=0.5), dict(seed=1, lam=0.0, tau=0.5, gamma=1.0),
           dict(seed=7, lam=1.0, tau=0.9, gamma=0.0)]


def values(method, **changes):
    """Each member's run keys; lam, tau, gamma only where they act (TS3-Net)."""
    own = (lambda m: m) if method == "ts3net" else (lambda m: {"seed": m["seed"]})
    return [{**TINY, "method": method, **own(member), **changes} for member in MEMBERS]


def fused_rows(array):
    rows = [r for records in array.epochs() for r in records]
    return {c.run_id: [r for r in rows if r["run_id"] == c.run_id] for c in array.configs}


def test_ce_members_equal_three_unfused_ts3ray_runs(tmp_path):
    configs = values("ce")
    array = FusedArray([make_config(v) for v in configs])
    fused = fused_rows(array)
    for k, config in enumerate(configs):
        unfused = ts3ray.run(config, out=str(tmp_path / f"run{k}")).epochs
        unfused = unfused.sort_values(["round", "epoch"]).to_dict("records")
        mine = fused[array.configs[k].run_id]
        assert len(mine) == len(unfused) == 2 * 3
        for a, b in zip(unfused, mine):
            assert (a["round"], a["epoch"], a["stage"]) == (b["round"], b["epoch"], b["stage"])
            assert abs(a["loss_sparse"] - b["loss_sparse"]) <= 1e-4
            assert a["acc_sparse"] == b["acc_sparse"]  # the same correct test predictions
            assert a["sparsity"] == b["sparsity"] and a["lr"] == b["lr"]
            assert a["nonzero_params"] == b["nonzero_params"]
    losses = [[r["loss_sparse"] for r in rows] for rows in fused.values()]
    assert losses[0] != losses[1] != losses[2]  # three different trials, not one copied


def test_pruned_weights_stay_exactly_zero_per_member():
    array = FusedArray([make_config(v) for v in values("ce", epochs=2)])
    for _ in range(3):  # level 0 (2 epochs), then 1 epoch of level 1 under the masks
        array.train_epoch()
    assert array.members[0].level == 1
    masks = [m.masks["S"] for m in array.members]
    for member, mask in zip(array.members, masks):
        weights = dict(member.sparse_model.named_parameters())
        for name, keep in mask.items():
            assert torch.all(weights[name][~keep] == 0)  # exactly zero after SGD steps
            assert torch.all(array.nets["S"].params[name][array.members.index(member)][~keep]
                             == 0)
        assert member.sparsity() == pytest.approx(0.5, abs=1e-4)
    # each member pruned by its own magnitudes: different masks
    assert not torch.equal(masks[0]["fc1.weight"], masks[1]["fc1.weight"])
    # and its surviving weights were trained (they moved off their initial values)
    init = array.members[0].init_states["S"]["fc1.weight"]
    kept = masks[0]["fc1.weight"]
    assert not torch.equal(array.members[0].sparse_model.fc1.weight[kept], init[kept])


def _unfused_with_counts(config):
    """An unfused run's records and each epoch's selection counts (EpochStats sums)."""
    run, rows, counts = LotteryRun(config), [], []
    while not run.done:
        start = run.begin_epoch()
        run.method.step(start.nets, start.ctx)
        counts.append({k: v.item() for k, v in start.stats.sums.items()
                       if not k.startswith("loss")})
        rows.append(run.finish_epoch(start))
    return rows, counts


def test_ts3net_members_with_own_lam_tau_gamma_equal_unfused_runs():
    configs = [make_config(v) for v in values("ts3net")]  # warmup, alternate, refine
    array = FusedArray(configs)
    fused, fused_counts = [], []
    while not array.done:
        fused.append(array.train_epoch())
        fused_counts.append({k: v.tolist() for k, v in array.last_sums.items()
                             if not k.startswith("loss")})
    for k, config in enumerate(configs):
        rows, counts = _unfused_with_counts(config)
        assert [r["stage"] for r in rows] == ["warmup", "alternate", "refine"] * 2
        for e, (a, b) in enumerate(zip(rows, (epoch[k] for epoch in fused))):
            assert abs(a["loss_sparse"] - b["loss_sparse"]) <= 1e-4
            if not math.isnan(a["loss_dense"]):
                assert abs(a["loss_dense"] - b["loss_dense"]) <= 1e-4
            assert a["acc_sparse"] == b["acc_sparse"] and a["acc_dense"] == b["acc_dense"]
            assert a["relabel_count"] == b["relabel_count"]
            # the same selection counts: selected, selected_correct, relabeled, ...
            assert counts[e] == {key: v[k] for key, v in fused_counts[e].items()}
    relabeled = [epoch[k]["relabel_count"] for epoch in fused for k in range(3)
                 if epoch[k]["stage"] == "refine"]
    assert len(set(relabeled)) > 1  # members relabel by their own tau


def test_rowwise_top_k_is_each_rows_small_loss_set():
    losses = torch.rand(4, 37, generator=torch.Generator().manual_seed(3))
    keep = small_loss_count(37, 0.4)
    fused = rowwise_small_loss_mask(losses, keep)
    for row, mask in zip(losses, fused):
        assert torch.equal(mask, small_loss_mask(row, 0.4)) and int(mask.sum()) == keep


@pytest.mark.parametrize("changes, key", [
    ({"lr": 0.1}, "lr"),  # members may differ only in seed, lam, tau, gamma
    ({"method": "jocor"}, "method"),
    ({"grad_clip": 1.0}, "grad_clip"),
    ({"selection": "gmm"}, "selection"),
    ({"alternate": "parity"}, "alternate"),
])
def test_unfusable_arrays_are_refused_in_one_line(changes, key):
    shared = [{**v, "protocol": "shared"} for v in values("ts3net")]  # recipe keys settable
    if key == "lr":  # only the last member differs
        configs = [make_config(v) for v in shared[:2]] + [make_config({**shared[2], **changes})]
    elif key == "method":  # another method, with the members' own seeds only
        configs = [make_config({**v, **changes}) for v in values("jocor", protocol="shared")]
    else:
        configs = [make_config({**v, **changes}) for v in shared]
    with pytest.raises(ConfigError) as err:
        check_fusable(configs)
    assert err.value.key == key and "\n" not in str(err.value)
    if key == "lr":
        assert "member 2 differs" in str(err.value)


def test_a_resumed_array_continues_as_if_uninterrupted(tmp_path):
    configs = [make_config(v) for v in values("ts3net")]
    whole = [r for records in FusedArray(configs).epochs() for r in records]
    first = FusedArray(configs)
    for _ in range(4):  # into level 1, after a prune and reset
        first.train_epoch()
    torch.save(first.state_dict(), tmp_path / "array.pt")
    resumed = FusedArray(configs)
    resumed.load_state_dict(torch.load(tmp_path / "array.pt", weights_only=True))
    list(resumed.epochs())
    rows = [r for m in resumed.members for r in m.epoch_rows]
    key = lambda r: (r["run_id"], r["global_epoch"])
    strip = lambda r: {k: "nan" if isinstance(v, float) and math.isnan(v) else v
                       for k, v in r.items() if k != "seconds"}
    assert [strip(r) for r in sorted(rows, key=key)] == [strip(r) for r in sorted(whole, key=key)]


def _plain(rows):
    return [{k: "nan" if isinstance(v, float) and math.isnan(v) else v
             for k, v in r.items() if k != "seconds"} for r in rows]


def test_a_member_checkpoint_continues_as_an_unfused_run(tmp_path):
    """A member's state is an unfused LotteryRun checkpoint, momentum rows included."""
    configs = [make_config(v) for v in values("ts3net")]
    array = FusedArray(configs)
    for _ in range(4):  # mid level 1: SGD momentum buffers hold state
        array.train_epoch()
    torch.save(array.member_state(1), tmp_path / "member1.pt")
    alone = LotteryRun(configs[1])
    alone.load_state_dict(torch.load(tmp_path / "member1.pt", weights_only=True))
    list(alone.epochs())
    assert _plain(alone.epoch_rows) == _plain(list(LotteryRun(configs[1]).epochs()))


def test_a_shrunk_array_continues_its_members_runs():
    """Members 0 and 2 go on in an array of two after member 1 stops (ASHA frees its share)."""
    configs = [make_config(v) for v in values("ce")]
    whole = fused_rows(FusedArray(configs))
    array = FusedArray(configs)
    for _ in range(2):
        array.train_epoch()
    shrunk = array.subset([0, 2])
    assert shrunk.size == 2 and shrunk.members[0].global_epoch == 2
    list(shrunk.epochs())
    for member, config in zip(shrunk.members, (configs[0], configs[2])):
        assert _plain(member.epoch_rows) == _plain(whole[config.run_id])


def test_members_share_one_loaded_dataset_per_seed_and_a_shrunk_array_loads_none(monkeypatch):
    from ts3ray import data

    loads = []
    real = data.load_for_run
    monkeypatch.setattr(data, "load_for_run", lambda name, root, seed: loads.append(seed)
                        or real(name, root, seed=seed))
    configs = [make_config({**TINY, "seed": s, "lam": lam})
               for s, lam in [(0, 0.5), (0, 1.0), (1, 0.5)]]
    array = FusedArray(configs)
    assert loads == [0, 1]  # digits' split depends on the seed: one load per seed
    first, second, third = array.member_datasets
    assert first is second and first is not third
    assert array.members[0].data.batches.x.equal(array.members[1].data.batches.x)
    array.train_epoch()
    shrunk = array.subset([1, 2])
    assert loads == [0, 1]  # the kept members keep their datasets
    assert shrunk.member_datasets[0] is first and shrunk.member_datasets[1] is third


def test_a_batch_step_traces_as_one_graph_and_computes_the_eager_numbers():
    """The launch-lean step (steps.peer_batch_step: forward, Eq. 2-5, backward, foreach
    optimiser step, masks) traces with no graph break of its own: the only breaks are the
    torch.optim places around `Optimizer.step` on purpose (`torch._dynamo.graph_break()`
    in optimizer._use_grad), none from a value read back to the host or data-dependent
    control flow - the precondition for CUDA-graph capture. The traced step gives the eager
    step's masks, and its losses and weights to rounding (1e-5; the traced backward is
    AOT autograd's decomposition, not the eager kernels), on CPU with backend `eager`."""
    import torch._dynamo

    from ts3ray.fused.steps import peer_batch_step

    def one_step(step):
        array = FusedArray([make_config(v) for v in values("ts3net")])
        for _ in range(2):  # into level 1: pruned masks are applied by the step
            array.train_epoch()
        student, peer = array.nets["S"], array.nets["D"]
        array.nets["D"].set_masks([])
        torch.manual_seed(0)
        x, y = torch.randn(3, 64, 1, 8, 8), torch.randint(0, 10, (3, 64))
        weight = array.member_values["lam"]
        results = [step(student, peer, x, y, 45, weight) for _ in range(2)]  # grads reused
        return results, {n: p.detach().clone() for n, p in student.params.items()}

    torch._dynamo.reset()
    with torch._dynamo.config.patch(trace_autograd_ops=True):  # backward() in the graph
        traced = torch.compile(peer_batch_step, backend="eager")
        (eager_out, eager_w), (traced_out, traced_w) = one_step(peer_batch_step), one_step(traced)
        explained = torch._dynamo.explain(peer_batch_step)(*one_step_inputs())
    for (a_loss, a_mask, _), (b_loss, b_mask, _) in zip(eager_out, traced_out):
        assert (a_loss - b_loss).abs().max() <= 1e-5 and torch.equal(a_mask, b_mask)
    assert max((eager_w[n] - traced_w[n]).abs().max() for n in eager_w) <= 1e-6
    reasons = [str(r.reason) for r in explained.break_reasons]
    assert 1 <= explained.graph_break_count <= 3 and reasons  # torch.optim's, nothing else
    assert all("User-inserted graph break" in r for r in reasons), reasons
    frames = [str(frame) for r in explained.break_reasons for frame in r.user_stack]
    assert any("optimizer.py" in f for f in frames) and not any("steps.py" in f and
                                                                "item" in f for f in frames)


def one_step_inputs():
    array = FusedArray([make_config(v) for v in values("ts3net")])
    array.nets["S"].set_masks([m.masks["S"] for m in array.members])
    x, y = torch.randn(3, 64, 1, 8, 8), torch.randint(0, 10, (3, 64))
    return array.nets["S"], array.nets["D"], x, y, 45, array.member_values["lam"]


def _losses(array):
    return [[r["loss_sparse"] for r in records] for records in array.epochs()]


def test_a_compiled_array_computes_the_eager_epochs(capfd):
    """compile=default (inductor, on the CPU) on the fused forward: a graph is compiled, no
    fallback line, and the epochs' losses are the eager array's to rounding."""
    import torch._dynamo

    eager = _losses(FusedArray([make_config(v) for v in values("ts3net", epochs=3, rounds=0)]))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = FusedArray([make_config(v) for v in values("ts3net", epochs=3, rounds=0,
                                                         compile="default")])
    got = _losses(compiled)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
    assert "warning" not in capfd.readouterr().err
    assert len(got) == 3 and max(abs(a - b) for ea, eb in zip(eager, got)
                                 for a, b in zip(ea, eb)) <= 1e-5


def test_a_compile_that_fails_falls_back_in_one_line_and_reduce_overhead_wants_cuda(capfd):
    """With no working C++ compiler inductor fails: the array says why in one line per
    forward and trains eagerly. reduce-overhead (CUDA graphs) on the CPU says it compiles without them, and the
    training batches have one shape (the last, smaller one dropped: a static step)."""
    import torch._dynamo
    import torch._inductor.config as inductor

    from ts3ray import accel

    accel._SAID.clear()
    torch._dynamo.reset()
    options = dict(epochs=2, rounds=0)  # batches of 256
    with inductor.patch({"cpp.cxx": ("/nonexistent/c++",)}):
        array = FusedArray([make_config(v) for v in values("ts3net", **options,
                                                           compile="reduce-overhead")])
        got = _losses(array)
    lines = capfd.readouterr().err.strip().splitlines()
    assert lines[0] == ("ts3ray: warning: compile=reduce-overhead on cpu: CUDA graphs need a "
                        "CUDA device; compiling without them (torch.compile's default mode)")
    fallbacks = [line for line in lines if "runs uncompiled, compiling it failed" in line]
    assert fallbacks and all("InvalidCxxCompiler" in line for line in fallbacks)
    assert "the fused forward" in fallbacks[0]
    samples = array.members[0].data.batches.num_samples
    assert int(array.last_sums["steps_S"][0]) == samples // 256 < math.ceil(samples / 256)
    assert len(got) == 2 and all(math.isfinite(v) for epoch in got for v in epoch)


def test_conv_bn_members_step_as_their_own_nets_with_their_own_running_statistics():
    """The CIFAR CNN (conv, BatchNorm2d, max-pool) fused: one training forward and backward
    give each member its own net's logits and gradients to rounding (vmap computes the K
    convolutions as one grouped convolution, which rounds differently: 1e-5 on logits) and
    each member's BatchNorm running statistics from its own batch alone."""
    import copy

    import torch.nn.functional as F

    from ts3ray.fused.functional import FusedNet
    from ts3ray.models.registry import build_model

    nets = [build_model("cifar_cnn", num_classes=10, in_channels=1, image_size=8, seed=s)
            for s in range(3)]
    alone = [copy.deepcopy(n) for n in nets]
    fused = FusedNet(nets).train()
    x = torch.randn(3, 32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (3, 32), generator=torch.Generator().manual_seed(1))
    logits = fused(x)
    F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(3, 32).mean(1) \
        .sum().backward()
    for k, net in enumerate(alone):
        own = net.train()(x[k])
        F.cross_entropy(own, y[k]).backward()
        assert (logits[k] - own).abs().max() <= 1e-5
        for name, p in net.named_parameters():
            assert (fused.params[name].grad[k] - p.grad).abs().max() <= 1e-5
        for name, b in net.named_buffers():
            assert torch.allclose(fused.buffers[name][k].to(b.dtype), b, atol=1e-6)
    means = fused.buffers["features.0.bn.running_mean"]
    assert not torch.allclose(means[0], means[1])  # three members, three statistics
