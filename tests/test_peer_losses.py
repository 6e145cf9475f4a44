"""Competitor losses and schedules against values computed by hand.

Batch of four 3-class samples whose logits are log-probabilities, so softmax(logits) = p:
    p0 = (0.5, 0.25, 0.25) y=0   p_y = 0.5
    p1 = (0.1, 0.6, 0.3)   y=2   p_y = 0.3
    p2 = (0.2, 0.2, 0.6)   y=2   p_y = 0.6
    p3 = (0.7, 0.2, 0.1)   y=1   p_y = 0.2
"""
import math

import pytest
import torch

from ts3ray.errors import ConfigError
from ts3ray.method import peer_losses as PL
from ts3ray.method.base import dataset_family
from ts3ray.method.registry import make_options
from ts3ray.method.schedules import forget_rate, linear_rampup

P = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.7, 0.2, 0.1]],
                 dtype=torch.float64)
LOGITS = P.log()
Y = torch.tensor([0, 2, 2, 1])
P_Y = [0.5, 0.3, 0.6, 0.2]
# CE = -ln p_y = 0.693147, 1.203973, 0.510826, 1.609438
CE = [-math.log(p) for p in P_Y]


def close(tensor, expected, tol=1e-9):
    assert tensor.tolist() == pytest.approx(expected, abs=tol)


def test_ce():
    close(PL.ce_per_sample(LOGITS, Y), CE)


def test_rce_with_the_codes_log_clip():
    # RCE = -sum_k p_k log clip(onehot_k, 1e-4, 1) = -ln(1e-4) * (1 - p_y) = 9.210340 * (1 - p_y)
    # = 9.210340 * (0.5, 0.7, 0.4, 0.8) = 4.605170, 6.447238, 3.684136, 7.368272
    close(PL.rce_per_sample(LOGITS, Y, log_zero=PL.RCE_LOG_ZERO_CODE),
          [4.605170186, 6.447238260, 3.684136149, 7.368272298], 1e-8)


def test_rce_with_the_papers_A():
    # log 0 := A = -4: RCE = 4 (1 - p_y) = 2.0, 2.8, 1.6, 3.2
    close(PL.rce_per_sample(LOGITS, Y, log_zero=-4.0), [2.0, 2.8, 1.6, 3.2])
    close(PL.rce_per_sample(LOGITS, Y), [2.0, 2.8, 1.6, 3.2])  # the default follows the paper


def test_rce_clamps_tiny_probabilities_like_the_code():
    # p = (1, ~1e-13, ~1e-13), y=0: the code floors each p_k at 1e-7, so RCE = 9.21 * 2e-7
    logits = torch.tensor([[0.0, -30.0, -30.0]], dtype=torch.float64)
    close(PL.rce_per_sample(logits, torch.tensor([0]), log_zero=PL.RCE_LOG_ZERO_CODE),
          [-math.log(1e-4) * 2e-7], 1e-15)


def test_sce_cifar10_weights():
    # alpha = 0.1, beta = 1: 0.1 * CE + RCE with the paper's A = -4, e.g. sample 0:
    # 0.0693147 + 4 * 0.5 = 2.0693147; with the code's A: 0.0693147 + 4.6051702 = 4.6744849
    expected = [0.1 * ce + 4.0 * (1 - p) for ce, p in zip(CE, P_Y)]
    assert expected[0] == pytest.approx(2.0693147, abs=1e-7)
    close(PL.sce_per_sample(LOGITS, Y, 0.1, 1.0), expected)
    assert PL.sce_per_sample(LOGITS, Y, 0.1, 1.0).mean().item() == pytest.approx(
        sum(expected) / 4)
    code = [0.1 * ce - math.log(1e-4) * (1 - p) for ce, p in zip(CE, P_Y)]
    assert code[0] == pytest.approx(4.6744849, abs=1e-7)
    close(PL.sce_per_sample(LOGITS, Y, 0.1, 1.0, log_zero=PL.RCE_LOG_ZERO_CODE), code)


def test_mae_reduced_and_l1_forms():
    # code form 1 - p_y = 0.5, 0.7, 0.4, 0.8; Ghosh et al.'s ||e_y - p||_1 = 2 (1 - p_y),
    # the default
    close(PL.mae_per_sample(LOGITS, Y, scale=1.0), [0.5, 0.7, 0.4, 0.8])
    close(PL.mae_per_sample(LOGITS, Y), [1.0, 1.4, 0.8, 1.6])
    l1 = (P - torch.nn.functional.one_hot(Y, 3)).abs().sum(dim=1)
    close(PL.mae_per_sample(LOGITS, Y, scale=2.0), l1.tolist())


# NCE = -ln p_y / -(ln p_0 + ln p_1 + ln p_2):
#   s0: ln 2 / (ln 2 + ln 4 + ln 4) = ln 2 / (5 ln 2) = 0.2 exactly
#   s1: 1.203973 / (2.302585 + 0.510826 + 1.203973 = 4.017384) = 0.299691
#   s2: 0.510826 / (1.609438 + 1.609438 + 0.510826 = 3.729702) = 0.136961
#   s3: 1.609438 / (0.356675 + 1.609438 + 2.302585 = 4.268698) = 0.377032
NCE = [0.2, 0.2996910, 0.1369611, 0.3770326]


def test_nce_normalisation():
    close(PL.nce_per_sample(LOGITS, Y), NCE, 1e-6)
    assert PL.nce_per_sample(LOGITS, Y)[0].item() == pytest.approx(0.2, abs=1e-15)


def test_apl_nce_plus_mae_and_nce_plus_rce():
    # NCE+MAE with alpha = beta = 1 (CIFAR-10), the paper's MAE: s0 = 0.2 + 1.0 = 1.2;
    # the code's reduced MAE: s0 = 0.2 + 0.5 = 0.7
    close(PL.apl_per_sample(LOGITS, Y, 1.0, 1.0), [n + m for n, m in zip(NCE, [1., 1.4, .8, 1.6])],
          1e-6)
    close(PL.apl_per_sample(LOGITS, Y, 1.0, 1.0, mae_scale=1.0),
          [n + m for n, m in zip(NCE, [.5, .7, .4, .8])], 1e-6)
    # NCE+RCE with alpha = 10, beta = 0.1 (CIFAR-100): s0 = 2.0 + 0.1 * 4 * 0.5 = 2.2; with the
    # code's A: 2.0 + 0.1 * 4.605170 = 2.460517
    got = PL.apl_per_sample(LOGITS, Y, 10.0, 0.1, passive="rce")
    assert got[0].item() == pytest.approx(2.2, abs=1e-9)
    got = PL.apl_per_sample(LOGITS, Y, 10.0, 0.1, passive="rce", log_zero=PL.RCE_LOG_ZERO_CODE)
    assert got[0].item() == pytest.approx(2.460517, abs=1e-6)
    with pytest.raises(ValueError):
        PL.apl_per_sample(LOGITS, Y, 1.0, 1.0, passive="ce")


def test_losses_are_finite_for_extreme_logits():
    logits = torch.tensor([[80.0, -80.0, 0.0], [-1e4, 1e4, 0.0]])
    labels = torch.tensor([1, 0])
    for fn in (PL.ce_per_sample, PL.rce_per_sample, PL.mae_per_sample, PL.nce_per_sample):
        assert torch.isfinite(fn(logits, labels)).all()
    logits.requires_grad_(True)
    PL.apl_per_sample(logits, labels, 1.0, 1.0).sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_jocor_joint_loss():
    # p1 = (0.5, 0.5), p2 = (0.8, 0.2), y = 0, lambda = 0.9
    # CE1 = ln 2 = 0.693147, CE2 = -ln 0.8 = 0.223144
    # KL(p1||p2) = 0.5 ln(0.5/0.8) + 0.5 ln(0.5/0.2) = 0.223144
    # KL(p2||p1) = 0.8 ln(1.6) + 0.2 ln(0.4) = 0.192745
    # loss = 0.1 * 0.916291 + 0.9 * 0.415888 = 0.465928
    p1 = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    p2 = torch.tensor([[0.8, 0.2]], dtype=torch.float64)
    y = torch.tensor([0])
    kl12 = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)
    kl21 = 0.8 * math.log(1.6) + 0.2 * math.log(0.4)
    expected = 0.1 * (math.log(2) - math.log(0.8)) + 0.9 * (kl12 + kl21)
    assert expected == pytest.approx(0.465928, abs=1e-6)
    close(PL.jocor_per_sample(p1.log(), p2.log(), y, 0.9), [expected])
    # the code's kl_loss_compute(a, b) = F.kl_div(log_softmax(a), softmax(b)) = KL(p_b || p_a):
    # both of its terms together are the same symmetric KL
    code = sum(torch.nn.functional.kl_div(a.log_softmax(1), b.softmax(1), reduction="sum")
               for a, b in ((p1.log(), p2.log()), (p2.log(), p1.log())))
    assert code.item() == pytest.approx(kl12 + kl21)


def test_jocor_gradient_flows_through_both_networks():
    a = torch.tensor([[0.3, -0.2]], requires_grad=True)
    b = torch.tensor([[-0.5, 0.4]], requires_grad=True)
    PL.jocor_per_sample(a, b, torch.tensor([1]), 0.9).sum().backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_sharpen_with_temperature_one_half():
    # (0.6, 0.4) -> (0.36, 0.16) / 0.52 = (0.692308, 0.307692)
    close(PL.sharpen(torch.tensor([[0.6, 0.4]], dtype=torch.float64), 0.5)[0],
          [0.36 / 0.52, 0.16 / 0.52])


def test_mixup_coefficient_is_the_larger_share():
    assert PL.mixup_coefficient(0.3) == pytest.approx(0.7)
    assert PL.mixup_coefficient(0.8) == 0.8
    assert PL.mixup_coefficient(0.5) == 0.5


def test_dividemix_loss_terms():
    # two samples, both with p = (0.75, 0.25) (logits = log p)
    p = torch.tensor([[0.75, 0.25], [0.75, 0.25]], dtype=torch.float64)
    # L_reg: mean p = (0.75, 0.25); 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25) = 0.143841
    assert PL.uniform_prior_penalty(p.log()).item() == pytest.approx(
        0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2), abs=1e-12)
    # L_U with target (1, 0): ((0.75 - 1)^2 + 0.25^2) / 2 = 0.0625 (mean over classes too)
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    assert PL.mse_probs(p.log(), targets).item() == pytest.approx(0.0625)
    # L_X: soft CE with target (0.5, 0.5): -(0.5 ln 0.75 + 0.5 ln 0.25) = 0.836988
    half = torch.full((2, 2), 0.5, dtype=torch.float64)
    assert PL.soft_ce(p.log(), half).item() == pytest.approx(
        -(0.5 * math.log(0.75) + 0.5 * math.log(0.25)))
    # negative entropy of (0.5, 0.5) = -ln 2
    assert PL.negative_entropy(torch.zeros(3, 2)).item() == pytest.approx(-math.log(2))


@pytest.mark.parametrize("epoch, expected", [(0, 0.0), (1, 0.04), (5, 0.2), (9, 0.36),
                                             (10, 0.4), (30, 0.4)])
def test_coteaching_forget_rate_paper(epoch, expected):
    # R(T) updated after epoch T: 0-based epoch e forgets eps * min(e / 10, 1), eps = 0.4
    assert forget_rate(epoch, 0.4) == pytest.approx(expected)


@pytest.mark.parametrize("epoch, expected", [(0, 0.4 / 9), (4, 0.4 * 5 / 9), (7, 0.4 * 8 / 9),
                                             (8, 0.4), (9, 0.4), (50, 0.4)])
def test_coteaching_forget_rate_code(epoch, expected):
    # linspace(0, 0.4, 10)[e + 1] for the code's training epochs 1, 2, ...
    assert forget_rate(epoch, 0.4, form="code") == pytest.approx(expected)


def test_forget_rate_exponent_and_bad_values():
    assert forget_rate(5, 0.5, t_k=10, c=2.0) == pytest.approx(0.5)  # 25/10 capped at 1
    assert forget_rate(2, 0.5, t_k=10, c=2.0) == pytest.approx(0.2)  # 0.5 * 4/10
    with pytest.raises(ConfigError, match="forget_schedule"):
        forget_rate(0, 0.4, form="linear")
    with pytest.raises(ConfigError, match="t_k"):
        forget_rate(0, 0.4, t_k=0)


def test_lambda_u_rampup():
    assert linear_rampup(9.9, 10, 16) == 0.0
    assert linear_rampup(10.5, 10, 16) == pytest.approx(0.5 / 16)
    assert linear_rampup(30.0, 10, 16) == 1.0


def test_published_defaults_per_dataset():
    assert dataset_family("digits") == "mnist" and dataset_family("cifar100") == "cifar100"
    sce = {ds: make_options("sce", ds) for ds in ("mnist", "cifar10", "cifar100")}
    assert [(o.alpha, o.beta) for o in sce.values()] == [(0.01, 1.0), (0.1, 1.0), (6.0, 0.1)]
    assert (make_options("apl", "cifar100").alpha, make_options("apl", "cifar100").beta) == (10, 1)
    rce = make_options("apl", "cifar100", overrides={"passive": "rce"})
    assert (rce.alpha, rce.beta) == (10.0, 0.1)
    assert make_options("jocor", "cifar100").lam == 0.85
    dm = make_options("dividemix", "cifar10", "sym", 0.2)
    assert (dm.lambda_u, dm.warmup_epochs, dm.alpha, dm.temperature) == (0.0, 10, 4.0, 0.5)
    assert make_options("dividemix", "cifar10", "sym", 0.4).lambda_u == 25.0
    assert make_options("dividemix", "cifar100", "sym", 0.2).lambda_u == 25.0
    assert make_options("dividemix", "cifar100", "sym", 0.5).warmup_epochs == 30
    asym = make_options("dividemix", "cifar10", "asym", 0.2)
    assert asym.lambda_u == 0.0 and asym.confidence_penalty


@pytest.mark.parametrize("method, overrides, key", [
    ("sce", {"gamma": 1}, "gamma"),
    ("sce", {"beta": -1.0}, "beta"),
    ("apl", {"passive": "ce"}, "passive"),
    ("sce", {"rce_log_zero": 0.0}, "rce_log_zero"),
    ("jocor", {"lam": 1.5}, "lam"),
    ("coteaching", {"forget_schedule": "linear"}, "forget_schedule"),
    ("dividemix", {"alpha": 0.0}, "alpha"),
    ("dividemix", {"evaluate": "mean"}, "evaluate"),
    ("itlm", {"rounds": 0}, "rounds"),
    ("dividemix", {"warmup_epochs": 40}, "warmup_epochs"),
    ("mixup", {}, "method"),
])
def test_bad_options_fail_with_one_line(method, overrides, key):
    with pytest.raises(ConfigError) as err:
        make_options(method, "cifar10", overrides=overrides)
    assert err.value.key == key and "\n" not in str(err.value)
