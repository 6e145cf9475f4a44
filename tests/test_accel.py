"""The GPU options on the CPU: every option trains a 2-level lottery run; bf16 and compile
leave the method's logic (selection sizes, masks, exact zeros, losses) as fp32 eager has it."""
from __future__ import annotations

import math

import pytest
import torch

from ts3ray.config import make_config
from ts3ray.data import make_synthetic
from ts3ray.method import losses as L
from ts3ray.run import LotteryRun

TWO_LEVELS = {"dataset": "synthetic", "epochs": 3, "e1": 1, "e2": 1, "rounds": 1}


def train(**options):
    run = LotteryRun(make_config({**TWO_LEVELS, **options}))
    rows = list(run.epochs())
    return run, rows


@pytest.mark.parametrize("options", [{"precision": "bf16"}, {"channels_last": True},
                                     {"deterministic": True}],
                         ids=["bf16", "channels_last", "deterministic"])
def test_each_option_trains_a_two_level_run_and_is_recorded(options):
    run, rows = train(**options)
    assert [r["stage"] for r in rows] == ["warmup", "alternate", "refine"] * 2
    assert run.level_rows[-1]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert all(math.isfinite(r["loss_sparse"]) for r in rows)
    for key, value in options.items():
        assert run.config.to_dict()[key] == value
    assert math.isnan(run.level_rows[0]["gpu_peak_mb"])  # measured on CUDA only
    torch.use_deterministic_algorithms(False)


def test_channels_last_converts_conv_nets_and_matches_the_default_layout():
    """NHWC convolutions sum in another order: the same epoch within 1 % (measured 0.13 %)."""
    options = {"dataset": "synthetic-cifar", "epochs": 1, "e1": 1, "e2": 0, "rounds": 0,
               "batch_size": 32, "protocol": "shared"}
    small = make_synthetic(num_classes=10, shape=(3, 32, 32), n_train=96, n_test=32, seed=0,
                           name="synthetic-cifar", augment=True)  # 96 images: seconds, not minutes
    plain = LotteryRun(make_config(options), dataset=small)
    nhwc = LotteryRun(make_config({**options, "channels_last": True}), dataset=small)
    conv = next(m for m in nhwc.sparse_model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    a, b = next(plain.epochs()), next(nhwc.epochs())
    assert b["loss_sparse"] == pytest.approx(a["loss_sparse"], rel=1e-2)


def test_bf16_keeps_selection_sizes_masks_and_exact_zeros():
    fp32, fp32_rows = train()
    bf16, bf16_rows = train(precision="bf16")
    # the pruning decisions and the parameter counts of every epoch are fp32's
    assert [r["nonzero_params"] for r in bf16_rows] == [r["nonzero_params"] for r in fp32_rows]
    kept = {run: sum(int(m.sum()) for m in run.masks["S"].values()) for run in (fp32, bf16)}
    assert kept[bf16] == kept[fp32]  # global magnitude pruning removed the same number
    for name, mask in bf16.masks["S"].items():
        weight = dict(bf16.sparse_model.named_parameters())[name]
        assert torch.equal(weight[~mask], torch.zeros_like(weight[~mask]))  # exact zeros
    # under autocast the per-sample losses that selection ranks are fp32, and Eq. 2 keeps
    # ceil((1 - r) B) of them
    x, y, _ = next(bf16.data.batches.epoch(0))
    with bf16.accel.autocast():
        ce = L.per_sample_ce(bf16.sparse_model(x), y)
    assert ce.dtype == torch.float32
    assert int(L.small_loss_mask(ce, 0.4).sum()) == math.ceil(0.6 * len(y))
    # and training follows fp32's closely
    for a, b in zip(fp32_rows, bf16_rows):
        assert b["loss_sparse"] == pytest.approx(a["loss_sparse"], rel=0.05, abs=0.02)


def test_compile_gives_the_first_epoch_losses_of_eager():
    """torch.compile (inductor, here on the CPU) computes the same epoch: stated tolerance
    1e-4 relative on the first epoch's losses of S and D (measured: equal)."""
    options = {"dataset": "synthetic", "epochs": 1, "e1": 1, "e2": 0, "rounds": 0}
    eager = next(LotteryRun(make_config(options)).epochs())
    compiled = next(LotteryRun(make_config({**options, "compile": "default"})).epochs())
    for key in ("loss_sparse", "loss_dense"):
        assert compiled[key] == pytest.approx(eager[key], rel=1e-4)
    assert compiled["acc_sparse"] == pytest.approx(eager["acc_sparse"], abs=1e-9)


def test_a_backward_that_fails_to_compile_falls_back_in_one_line(capfd, monkeypatch):
    """AOTAutograd lowers the backward lazily, at the first backward(), by default: a failure
    there would end the run outside the fallback. CompiledOrEager has it lowered with the
    forward, so a backward failure (injected into inductor) is one line, and the run trains
    eagerly from its first batch: eager's losses exactly."""
    import torch._dynamo
    import torch._inductor.compile_fx as inductor_fx
    import torch._inductor.config as inductor
    from torch._functorch import config as aot_config

    from ts3ray import accel

    real = inductor_fx._compile_fx_inner

    def fails_on_backward(gm, example_inputs, *args, **kwargs):
        if kwargs.get("is_backward"):
            raise RuntimeError("injected backward failure")
        return real(gm, example_inputs, *args, **kwargs)

    monkeypatch.setattr(inductor_fx, "_compile_fx_inner", fails_on_backward)
    accel._SAID.clear()
    torch._dynamo.reset()
    options = {"dataset": "synthetic", "epochs": 1, "e1": 1, "e2": 0, "rounds": 0}
    with inductor.patch(fx_graph_cache=False), aot_config.patch(enable_autograd_cache=False):
        compiled = next(LotteryRun(make_config({**options, "compile": "default"})).epochs())
    torch._dynamo.reset()
    eager = next(LotteryRun(make_config(options)).epochs())
    fallbacks = [line for line in capfd.readouterr().err.splitlines() if "runs uncompiled" in line]
    assert fallbacks and "injected backward failure" in fallbacks[0]
    assert fallbacks[0].startswith("ts3ray: warning: compile=default: the ")
    for key in ("loss_sparse", "loss_dense", "acc_sparse"):
        assert compiled[key] == eager[key]
