"""Masks, global magnitude pruning, exact zeros through SGD, reset to init, counting."""
import math
from fractions import Fraction

import pytest
import torch
from torch import nn

from ts3ray import pruning as P
from ts3ray.errors import ConfigError
from ts3ray.models import build_model


def set_weights(model, values):
    with torch.no_grad():
        for name, value in values.items():
            dict(model.named_parameters())[name].copy_(torch.tensor(value))


def tiny_mlp():
    """2 -> 3 -> 2 with known weights; '2.weight' is the output layer."""
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    set_weights(model, {
        "0.weight": [[0.5, -0.1], [0.3, 0.9], [-0.2, 0.05]],
        "0.bias": [0.001, 0.002, 0.003],
        "2.weight": [[0.01, -0.7, 0.4], [0.02, 0.6, -0.03]],
        "2.bias": [0.0001, 0.0002],
    })
    return model


def as_lists(masks):
    return {name: mask.tolist() for name, mask in masks.items()}


T, F = True, False


def test_init_masks_exclude_output_by_default():
    model = tiny_mlp()
    masks = P.init_masks(model)
    assert as_lists(masks) == {"0.weight": [[T, T], [T, T], [T, T]]}
    assert masks["0.weight"].dtype == torch.bool
    assert set(P.init_masks(model, include_output=True)) == {"0.weight", "2.weight"}


def test_prunes_the_smallest_magnitudes_round_by_round():
    model = tiny_mlp()
    first = P.global_magnitude_prune(model, P.init_masks(model), 0.5)  # ceil(0.5*6) = 3
    assert as_lists(first) == {"0.weight": [[T, F], [T, T], [F, F]]}  # 0.05, 0.1, 0.2 go
    second = P.global_magnitude_prune(model, first, 0.5)  # ceil(0.5*3) = 2: 0.3 and 0.5
    assert as_lists(second) == {"0.weight": [[F, F], [F, T], [F, F]]}


def test_pruning_is_global_across_layers_when_output_included():
    model = tiny_mlp()
    masks = P.init_masks(model, include_output=True)
    quarter = P.global_magnitude_prune(model, masks, 0.25)  # 3 smallest all in the output
    assert as_lists(quarter) == {
        "0.weight": [[T, T], [T, T], [T, T]],
        "2.weight": [[F, T, T], [F, T, F]],
    }
    half = P.global_magnitude_prune(model, masks, 0.5)  # 0.01 0.02 0.03 0.05 0.1 0.2
    assert as_lists(half) == {
        "0.weight": [[T, F], [T, T], [F, F]],
        "2.weight": [[F, T, T], [F, T, F]],
    }


def test_ties_broken_by_layer_then_position_and_input_masks_untouched():
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False), nn.Linear(2, 1))
    set_weights(model, {"0.weight": [[0.5, -0.5], [0.5, -0.5]], "1.weight": [[-0.5, 0.5], [0.5, 0.5]]})
    masks = P.init_masks(model)
    pruned = P.global_magnitude_prune(model, masks, 0.75)  # 6 of 8 equal magnitudes
    assert as_lists(pruned) == {"0.weight": [[F, F], [F, F]], "1.weight": [[F, F], [T, T]]}
    assert all(mask.all() for mask in masks.values())
    again = P.global_magnitude_prune(model, masks, 0.75)
    assert as_lists(again) == as_lists(pruned)


def test_fraction_zero_one_and_out_of_range():
    model = tiny_mlp()
    masks = P.init_masks(model)
    assert as_lists(P.global_magnitude_prune(model, masks, 0.0)) == as_lists(masks)
    assert not P.global_magnitude_prune(model, masks, 1.0)["0.weight"].any()
    with pytest.raises(ConfigError, match="prune_fraction=1.5"):
        P.global_magnitude_prune(model, masks, 1.5)


def test_prune_count_reads_the_fraction_as_a_decimal():
    assert P.prune_count(0.2, 1000) == 200  # 0.2 * 1000 is 200.00000000000003 in floats
    assert P.prune_count(0.3, 7) == 3


def expected_remaining(total, fraction, rounds):
    """Exact ceil rule of Algorithm 2: each round removes ceil(p_f * remaining)."""
    remaining = total
    for _ in range(rounds):
        remaining -= math.ceil(Fraction(fraction) * remaining)
    return remaining


@pytest.mark.parametrize("fraction", ["0.3", "0.5"])
@pytest.mark.parametrize("include_output", [False, True])
def test_sparsity_after_rounds_follows_the_geometric_rule(fraction, include_output):
    model = build_model("lenet_300_100", num_classes=10, in_channels=1, image_size=8, seed=3)
    masks = P.init_masks(model, include_output=include_output)
    total = 64 * 300 + 300 * 100 + (100 * 10 if include_output else 0)
    assert sum(m.numel() for m in masks.values()) == total
    weights = dict(model.named_parameters())
    for r in (1, 2, 3):
        previous = masks
        masks = P.global_magnitude_prune(model, masks, float(fraction))  # weights never zeroed
        remaining = expected_remaining(total, fraction, r)
        assert sum(int(m.sum()) for m in masks.values()) == remaining
        assert P.sparsity(masks) == pytest.approx(1 - remaining / total, abs=1e-12)
        assert abs(P.sparsity(masks) - (1 - (1 - float(fraction)) ** r)) <= r / total
        removed = torch.cat([weights[n].detach().abs()[previous[n] & ~masks[n]] for n in masks])
        kept = torch.cat([weights[n].detach().abs()[masks[n]] for n in masks])
        assert removed.max() <= kept.min()  # the newly pruned are the smallest survivors
        assert all(not (masks[n] & ~previous[n]).any() for n in masks)  # nothing revives


def train(model, masks, steps, *, keep_masked, seed=0):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(steps):
        x = torch.randn(8, 1, 8, 8, generator=g)
        y = torch.randint(0, 10, (8,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if keep_masked:
            P.apply_masks(model, masks)


@pytest.mark.parametrize("arch", ["lenet_300_100", "cifar_cnn"])
def test_masked_weights_stay_exactly_zero_through_sgd_momentum_and_decay(arch):
    def setup():
        model = build_model(arch, num_classes=10, in_channels=1, image_size=8, seed=1)
        masks = P.global_magnitude_prune(model, P.init_masks(model, include_output=True), 0.5)
        P.apply_masks(model, masks)
        return model, masks, {n: p.detach().clone() for n, p in model.named_parameters()}

    model, masks, start = setup()
    train(model, masks, 50, keep_masked=True)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        assert torch.count_nonzero(params[name][~mask]) == 0
        assert not torch.equal(params[name][mask], start[name][mask])  # survivors trained
    # without apply_masks the momentum of the pruned weights' gradients revives them
    model, masks, _ = setup()
    train(model, masks, 3, keep_masked=False)
    params = dict(model.named_parameters())
    assert any(torch.count_nonzero(params[n][~m]) > 0 for n, m in masks.items())


def test_reset_to_init_restores_survivors_and_keeps_pruned_at_zero():
    model = build_model("cifar_cnn", num_classes=10, in_channels=1, image_size=8, seed=2)
    init_state = {k: v.clone() for k, v in model.state_dict().items()}
    masks = P.init_masks(model)
    train(model, masks, 5, keep_masked=True)
    masks = P.global_magnitude_prune(model, masks, 0.3)
    P.reset_to_init(model, init_state, masks)
    state = model.state_dict()
    for key, initial in init_state.items():
        if key in masks:
            assert torch.equal(state[key][masks[key]], initial[masks[key]])
            assert torch.count_nonzero(state[key][~masks[key]]) == 0
        else:  # biases, BN parameters and running statistics, output layer
            assert torch.equal(state[key], initial), key
    assert P.sparsity(masks) == pytest.approx(0.3, abs=1e-5)


def test_apply_masks_zeroes_exactly_the_pruned_entries():
    model = tiny_mlp()
    P.apply_masks(model, {"0.weight": torch.tensor([[T, F], [F, T], [T, T]])})
    expected = torch.tensor([[0.5, 0.0], [0.0, 0.9], [-0.2, 0.05]])
    assert torch.equal(model[0].weight.detach(), expected)
    assert torch.equal(model[2].weight.detach(), tiny_mlp()[2].weight.detach())


def test_sparsity_of_hand_made_masks():
    masks = {"a": torch.tensor([T, F, F, T]), "b": torch.tensor([[F, F]])}
    assert P.sparsity(masks) == pytest.approx(4 / 6)
    assert P.sparsity({}) == 0.0


def test_nonzero_and_total_params_count_biases_and_batchnorm_not_buffers():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    set_weights(model, {
        "0.weight": [[1.0, 0.0, 2.0], [0.0, 0.0, -3.0]],  # 3 non-zero
        "0.bias": [0.0, 5.0],  # 1
        "1.weight": [1.0, 0.0],  # 1
        "1.bias": [0.5, -0.5],  # 2 (running_var = 1s is a buffer: not counted)
    })
    assert P.nonzero_params(model) == 7
    assert P.total_params(model) == 12


def test_nonzero_params_after_pruning_cifar_cnn():
    model = build_model("cifar_cnn", num_classes=10, in_channels=3, image_size=32, seed=0)
    masks = P.global_magnitude_prune(model, P.init_masks(model), 0.5)
    P.apply_masks(model, masks)
    eligible = sum(m.numel() for m in masks.values())
    # BN biases and conv/linear biases start at zero, so only weights are non-zero
    zero_at_init = sum(
        p.numel() for n, p in model.named_parameters() if n.endswith("bias")
    )
    assert P.total_params(model) == 518_150
    assert P.nonzero_params(model) == 518_150 - zero_at_init - math.ceil(eligible / 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_masks_match_cpu_and_apply_without_host_sync():
    cpu = build_model("cifar_cnn", num_classes=10, in_channels=3, image_size=32, seed=4)
    gpu = build_model("cifar_cnn", num_classes=10, in_channels=3, image_size=32, seed=4).cuda()
    cpu_masks = P.global_magnitude_prune(cpu, P.init_masks(cpu), 0.4)
    gpu_masks = P.global_magnitude_prune(gpu, P.init_masks(gpu), 0.4)
    assert all(gpu_masks[n].is_cuda and torch.equal(gpu_masks[n].cpu(), cpu_masks[n]) for n in cpu_masks)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        P.apply_masks(gpu, gpu_masks)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert P.nonzero_params(gpu) < P.total_params(gpu)


def test_many_ties_match_a_stable_sort_of_the_magnitudes():
    model = nn.Sequential(nn.Linear(20, 30, bias=False), nn.Linear(30, 10, bias=False), nn.Linear(10, 2))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in (model[0], model[1]):  # magnitudes in {0, 1, 2, 3}: heavy ties
            layer.weight.copy_(torch.randint(-3, 4, layer.weight.shape, generator=g).float())
    masks = P.init_masks(model)
    for _ in range(3):
        flat_keep = torch.cat([m.flatten() for m in masks.values()])
        magnitude = torch.cat([model[0].weight.abs().flatten(), model[1].weight.abs().flatten()])
        survivors = flat_keep.nonzero().flatten()
        order = survivors[torch.sort(magnitude[survivors].detach(), stable=True).indices]
        flat_keep[order[: math.ceil(Fraction("0.3") * len(survivors))]] = False
        masks = P.global_magnitude_prune(model, masks, 0.3)
        assert torch.equal(torch.cat([m.flatten() for m in masks.values()]), flat_keep)
