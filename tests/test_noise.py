"""Seeded label noise: transition matrices, realised rates, flip directions, validation."""
import math

import pytest
import torch

from ts3ray.data import NOISE_KINDS, apply_label_noise
from ts3ray.data.core.noise import ASYM_MAPS, transition_matrix
from ts3ray.errors import ConfigError

N = 50_000
Y10 = torch.arange(N) % 10  # 5000 per class
TOL = 0.015


def test_transition_matrices_by_hand():
    sym = transition_matrix("sym", 4, 0.3)
    assert torch.allclose(sym, torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1],
                                             [0.1, 0.1, 0.7, 0.1], [0.1, 0.1, 0.1, 0.7]], dtype=torch.float64))
    pair = transition_matrix("pairflip", 3, 0.25)
    assert pair.tolist() == [[0.75, 0.25, 0.0], [0.0, 0.75, 0.25], [0.25, 0.0, 0.75]]
    asym = transition_matrix("asym", 10, 0.2, "cifar10")
    assert asym[9, 1] == asym[2, 0] == asym[3, 5] == asym[5, 3] == asym[4, 7] == 0.2
    assert asym[9, 9] == 0.8 and asym[0, 0] == asym[1, 1] == asym[8, 8] == 1.0
    assert torch.equal(transition_matrix("none", 5, 0.4), torch.eye(5, dtype=torch.float64))
    cifar100 = transition_matrix("asym", 100, 0.2, "cifar100")
    assert cifar100[4, 0] == cifar100[0, 1] == cifar100[99, 95] == 0.2 and cifar100[4, 5] == 0
    for t in (sym, pair, asym, cifar100):
        assert torch.allclose(t.sum(1), torch.ones(len(t), dtype=torch.float64))


@pytest.mark.parametrize("convention", ["sample", "exact"])
@pytest.mark.parametrize("rate", [0.2, 0.45])
def test_sym_rate_and_true_class_excluded(convention, rate):
    out = apply_label_noise(Y10, 10, "sym", rate, seed=1, convention=convention)
    assert abs(out.realized_rate - rate) < TOL
    assert torch.equal(out.is_noisy, out.labels != Y10) and out.labels.dtype == torch.int64
    # the true class is excluded from the draw: flips spread evenly over the 9 *other* classes,
    # so the rate is eps (not eps * (C - 1) / C as when drawing over all classes)
    pairs = torch.zeros(10, 10)
    pairs.index_put_((Y10, out.labels), torch.ones(N), accumulate=True)
    off = pairs[~torch.eye(10, dtype=torch.bool)] / 5000
    assert torch.all((off - rate / 9).abs() < 0.012)
    assert torch.equal(out.transition, transition_matrix("sym", 10, rate))


def test_sym_two_classes_always_flips_to_the_other():
    y = torch.arange(N) % 2
    out = apply_label_noise(y, 2, "sym", 0.4, seed=0)
    assert abs(out.realized_rate - 0.4) < TOL
    assert torch.equal(out.labels[out.is_noisy], 1 - y[out.is_noisy])


def test_exact_flips_round_eps_n_per_class():
    y = torch.cat([torch.zeros(7), torch.ones(10), torch.full((13,), 2)]).long()
    out = apply_label_noise(y, 3, "sym", 0.25, seed=0, convention="exact")
    # round-half-up(0.25 * n): 7 -> 2, 10 -> 3 (2.5 rounds up), 13 -> 3
    assert [int(out.is_noisy[y == c].sum()) for c in range(3)] == [2, 3, 3]
    big = apply_label_noise(Y10, 10, "pairflip", 0.3, seed=2, convention="exact")
    assert big.realized_rate == 0.3
    assert [int(big.is_noisy[Y10 == c].sum()) for c in range(10)] == [1500] * 10


@pytest.mark.parametrize("convention", ["sample", "exact"])
@pytest.mark.parametrize("dataset,num_classes", [("mnist", 10), ("digits", 10), ("cifar10", 10), ("cifar100", 100)])
def test_asym_flips_only_along_the_map(dataset, num_classes, convention):
    y = torch.arange(N) % num_classes
    out = apply_label_noise(y, num_classes, "asym", 0.2, seed=3, dataset=dataset, convention=convention)
    mapping = ASYM_MAPS[dataset]
    mapped = torch.tensor([int(c) in mapping for c in y])
    assert not out.is_noisy[~mapped].any()  # unmapped classes keep labels
    assert abs(out.is_noisy[mapped].double().mean().item() - 0.2) < TOL
    edges = set(mapping.items())
    noisy_pairs = set(zip(y[out.is_noisy].tolist(), out.labels[out.is_noisy].tolist()))
    assert noisy_pairs and noisy_pairs <= edges


def test_asym_maps_are_the_official_ones():
    assert ASYM_MAPS["mnist"] == {7: 1, 2: 7, 5: 6, 6: 5, 3: 8} == ASYM_MAPS["digits"]
    assert ASYM_MAPS["cifar10"] == {9: 1, 2: 0, 3: 5, 5: 3, 4: 7}
    assert [ASYM_MAPS["cifar100"][i] for i in (0, 3, 4, 5, 97, 99)] == [1, 4, 0, 6, 98, 95]


@pytest.mark.parametrize("convention", ["sample", "exact"])
def test_pairflip_goes_to_next_class(convention):
    out = apply_label_noise(Y10, 10, "pairflip", 0.4, seed=4, convention=convention)
    assert abs(out.realized_rate - 0.4) < TOL
    assert torch.equal(out.labels[out.is_noisy], (Y10[out.is_noisy] + 1) % 10)


def test_sample_convention_matches_the_transition_matrix():
    out = apply_label_noise(Y10, 10, "sym", 0.3, seed=5)
    freq = torch.zeros(10, 10, dtype=torch.float64)
    freq.index_put_((Y10, out.labels), torch.ones(N, dtype=torch.float64), accumulate=True)
    assert torch.allclose(freq / 5000, out.transition, atol=0.02)


@pytest.mark.parametrize("kind", ["sym", "pairflip", "asym"])
def test_seeded_and_global_rng_untouched(kind):
    before = torch.random.get_rng_state()
    a = apply_label_noise(Y10, 10, kind, 0.3, seed=7, dataset="mnist")
    b = apply_label_noise(Y10, 10, kind, 0.3, seed=7, dataset="mnist")
    c = apply_label_noise(Y10, 10, kind, 0.3, seed=8, dataset="mnist")
    assert torch.equal(a.labels, b.labels) and not torch.equal(a.labels, c.labels)
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("convention", ["sample", "exact"])
@pytest.mark.parametrize("kind,rate", [("sym", 0.0), ("asym", 0.0), ("pairflip", 0.0), ("none", 0.0), ("none", 0.4)])
def test_zero_rate_and_none_change_nothing(kind, rate, convention):
    out = apply_label_noise(Y10, 10, kind, rate, seed=0, dataset="cifar10", convention=convention)
    assert torch.equal(out.labels, Y10) and not out.is_noisy.any() and out.realized_rate == 0.0
    if kind == "none":
        assert torch.equal(out.transition, torch.eye(10, dtype=torch.float64))


@pytest.mark.parametrize("kwargs,key", [
    (dict(kind="gauss", rate=0.2), "noise"),
    (dict(kind="sym", rate=-0.1), "noise_rate"),
    (dict(kind="sym", rate=0.9), "noise_rate"),  # 1 - 1/C = 0.9 is excluded
    (dict(kind="sym", rate=math.nan), "noise_rate"),
    (dict(kind="sym", rate="0.2"), "noise_rate"),
    (dict(kind="sym", rate=0.2, convention="flip"), "convention"),
    (dict(kind="asym", rate=0.2, dataset="fashion-mnist"), "noise"),
    (dict(kind="asym", rate=0.2, dataset=None), "noise"),
])
def test_bad_noise_settings_raise_config_error(kwargs, key):
    with pytest.raises(ConfigError) as err:
        apply_label_noise(Y10, 10, seed=0, **kwargs)
    assert err.value.key == key and "\n" not in str(err.value)


def test_asym_error_names_the_datasets_with_maps():
    with pytest.raises(ConfigError) as err:
        apply_label_noise(Y10, 10, "asym", 0.2, 0, dataset="synthetic")
    assert str(err.value).startswith("noise='asym' is not allowed")
    assert all(name in str(err.value) for name in ("mnist", "digits", "cifar10", "cifar100", "'synthetic'"))
    assert NOISE_KINDS == ("none", "sym", "asym", "pairflip", "human")


def test_human_kind_is_not_drawn_here():
    with pytest.raises(ConfigError) as err:
        apply_label_noise(Y10, 10, "human", 0.1, 0)
    assert err.value.key == "noise" and "training_labels" in str(err.value)


def test_rate_limit_depends_on_classes():
    y = torch.arange(100) % 2
    with pytest.raises(ConfigError, match="noise_rate"):
        apply_label_noise(y, 2, "sym", 0.5, 0)
    assert apply_label_noise(y, 2, "sym", 0.49, 0).labels.shape == (100,)
