"""Backbone registry: exact parameter counts from the layer plans, shapes, seeding, init."""
import math

import pytest
import torch
from torch import nn

from ts3ray.errors import ConfigError, UserError
from ts3ray.models import MODEL_NAMES, build_model, output_name, prunable_names


def conv_bn(cin, cout, k=3, bias=True):
    """3x3 conv (+bias) followed by BatchNorm (weight + bias)."""
    return cin * cout * k * k + (cout if bias else 0) + 2 * cout


def linear(fan_in, fan_out):
    return fan_in * fan_out + fan_out


def plan_count(widths, in_channels, num_classes, head_in):
    total, cin = 0, in_channels
    for cout in widths:
        total += conv_bn(cin, cout)
        cin = cout
    return total + linear(head_in, num_classes)


VGG16_WIDTHS = [64] * 2 + [128] * 2 + [256] * 3 + [512] * 6
VGG19_WIDTHS = [64] * 2 + [128] * 2 + [256] * 4 + [512] * 8


def resnet18_count(in_channels, num_classes, stem_kernel):
    """Stem conv (no bias) + BN, four stages of two basic blocks, 1x1 downsample, fc."""
    total = in_channels * 64 * stem_kernel**2 + 2 * 64
    cin = 64
    for cout in (64, 128, 256, 512):
        for block in range(2):
            total += conv_bn(cin, cout, bias=False) + conv_bn(cout, cout, bias=False)
            if block == 0 and cin != cout:
                total += conv_bn(cin, cout, k=1, bias=False)
            cin = cout
    return total + linear(512, num_classes)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def build(arch, *, num_classes=10, in_channels=3, image_size=32, seed=0, **options):
    if arch == "inception_resnet_v2":  # optional timm extra; its stem needs >= 75 px
        pytest.importorskip("timm")
        image_size = max(image_size, 75)
    return build_model(
        arch, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
        seed=seed, **options,
    )


def test_registry_names():
    assert set(MODEL_NAMES) == {"lenet_300_100", "cifar_cnn", "vgg16", "vgg19", "resnet18", "inception_resnet_v2"}


def test_lenet_300_100_count_and_input_width():
    assert n_params(build("lenet_300_100", in_channels=1, image_size=28)) == 266_610
    assert n_params(build("lenet_300_100", in_channels=1, image_size=8)) == (
        linear(64, 300) + linear(300, 100) + linear(100, 10)
    )


def test_cifar_cnn_count_is_the_papers_518150():
    model = build("cifar_cnn")
    assert n_params(model) == 518_150
    widths = [64, 64, 128, 128, 196, 16]
    assert n_params(model) == plan_count(widths, 3, 10, 16 * 4 * 4)
    # 28x28 grey images: 28 -> 14 -> 7 -> 3 after the three pools
    assert n_params(build("cifar_cnn", in_channels=1, image_size=28)) == plan_count(
        widths, 1, 10, 16 * 3 * 3
    )


@pytest.mark.parametrize("arch, widths", [("vgg16", VGG16_WIDTHS), ("vgg19", VGG19_WIDTHS)])
def test_vgg_count_from_layer_plan(arch, widths):
    assert len(widths) + 3 == int(arch[3:])  # the name counts ImageNet VGG's three fc layers
    assert n_params(build(arch)) == plan_count(widths, 3, 10, 512)
    assert n_params(build(arch, num_classes=100)) == plan_count(widths, 3, 100, 512)


def test_resnet18_counts_small_and_imagenet_stem():
    assert n_params(build("resnet18")) == resnet18_count(3, 10, stem_kernel=3)
    assert n_params(build("resnet18", small_stem=False, num_classes=14)) == resnet18_count(3, 14, 7)
    assert n_params(build("resnet18", num_classes=1000, small_stem=False)) == 11_689_512


@pytest.mark.parametrize(
    "arch, in_channels, image_size",
    [
        ("lenet_300_100", 1, 28),
        ("lenet_300_100", 1, 8),
        ("cifar_cnn", 3, 32),
        ("cifar_cnn", 1, 28),
        ("vgg16", 3, 32),
        ("vgg19", 3, 32),
        ("resnet18", 3, 32),
        ("resnet18", 1, 28),
    ],
)
def test_output_shape_float32(arch, in_channels, image_size):
    model = build(arch, num_classes=7, in_channels=in_channels, image_size=image_size).eval()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, image_size, image_size))
    assert out.shape == (2, 7) and out.dtype == torch.float32


def test_rectangular_image_size_tuple():
    model = build("cifar_cnn", image_size=(32, 16)).eval()
    assert model(torch.randn(1, 3, 32, 16)).shape == (1, 10)


def test_resnet18_stem_choice():
    small = build("resnet18", in_channels=1, image_size=28)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert small.conv1.in_channels == 1 and isinstance(small.maxpool, nn.Identity)
    large = build("resnet18", in_channels=1, image_size=96)
    assert large.conv1.kernel_size == (7, 7) and large.conv1.in_channels == 1
    assert isinstance(large.maxpool, nn.MaxPool2d)
    assert large.eval()(torch.randn(1, 1, 96, 96)).shape == (1, 10)


def test_bad_arch_and_too_small_images_are_user_errors():
    with pytest.raises(ConfigError, match="arch='lenet5'"):
        build("lenet5")
    with pytest.raises(ConfigError, match="16x16"):
        build("vgg16", in_channels=1, image_size=8)


def test_same_seed_same_weights_different_seed_differs_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = build("cifar_cnn", seed=5).state_dict()
    b = build("cifar_cnn", seed=5).state_dict()
    c = build("cifar_cnn", seed=6).state_dict()
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.0.conv.weight"], c["features.0.conv.weight"])
    assert not torch.equal(a["features.0.bn.weight"], c["features.0.bn.weight"])


def test_resnet_seeding_reproducible():
    a, b = build("resnet18", seed=1), build("resnet18", seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_initialisation_kaiming_normal_zero_bias_uniform_bn():
    model = build("vgg16")
    w = model.features[-1].conv.weight  # 512 -> 512, fan_in 4608, 2.36M draws
    assert w.std().item() == pytest.approx(math.sqrt(2 / (512 * 9)), rel=0.01)
    assert abs(w.mean().item()) < 0.01 * w.std().item()
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert torch.count_nonzero(module.bias) == 0
        if isinstance(module, nn.BatchNorm2d):
            assert torch.count_nonzero(module.bias) == 0
            assert 0 <= module.weight.min() and module.weight.max() <= 1
            assert module.weight.std() > 0.2  # U(0,1) has std 0.289, not the default 1s


@pytest.mark.parametrize("arch", MODEL_NAMES)
def test_prunable_names_are_conv_and_linear_weights(arch):
    model = build(arch, in_channels=1, image_size=28) if arch == "lenet_300_100" else build(arch)
    names = prunable_names(model)
    params = dict(model.named_parameters())
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(names) == len(layers) == len(set(names))
    assert {id(params[n]) for n in names} == {id(m.weight) for m in layers}
    assert all(n.endswith(".weight") and params[n].dim() in (2, 4) for n in names)
    last_linear = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert params[output_name(model)] is last_linear.weight
    assert params[output_name(model)].shape[0] == 10


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("arch", MODEL_NAMES)
def test_forward_backward_on_gpu_without_host_sync(arch):
    shape = (1, 28) if arch == "lenet_300_100" else (3, 75 if arch == "inception_resnet_v2" else 32)
    model = build(arch, in_channels=shape[0], image_size=shape[1]).cuda()
    x = torch.randn(4, shape[0], shape[1], shape[1], device="cuda")
    y = torch.randint(0, 10, (4,), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        nn.functional.cross_entropy(model(x), y).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert model(x).device.type == "cuda"


def test_inception_resnet_v2_is_the_papers_54_38m_and_prunable():
    """Table VI: 54.38M parameters for the 50-class WebVision head (timm's implementation)."""
    model = build("inception_resnet_v2", num_classes=50, image_size=299)
    assert n_params(model) == 54_383_314
    assert output_name(model) == "classif.weight"
    assert len(prunable_names(model)) == 245
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 75, 75)).shape == (1, 50)


def test_inception_resnet_v2_refuses_small_images():
    pytest.importorskip("timm")
    with pytest.raises(UserError, match="at least 75x75"):
        build_model("inception_resnet_v2", num_classes=10, in_channels=3, image_size=32, seed=0)
