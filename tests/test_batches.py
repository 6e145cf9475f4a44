"""Device-resident batches: order, reproducibility, labels, normalisation and augmentation."""
import pytest
import torch
import torch.nn.functional as F
from torchvision import transforms

from ts3ray.data.core.batches import Batch, DeviceBatches, crop_and_flip, eval_batches
from ts3ray.errors import ConfigError

MEAN, STD = (0.5, 0.25, 0.125), (0.25, 0.5, 2.0)


def images(n, c=3, h=8, w=8, seed=0):
    return torch.randint(0, 256, (n, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def make(n=23, batch_size=5, augment=False, seed=7, drop_last=False, x=None):
    x = images(n) if x is None else x
    y = torch.arange(x.shape[0]) % 4
    return DeviceBatches(x, y, batch_size=batch_size, mean=MEAN[:x.shape[1]], std=STD[:x.shape[1]],
                         augment=augment, device="cpu", seed=seed, drop_last=drop_last)


def normalize_reference(x_uint8):
    """torchvision's ToTensor + Normalize, one sample at a time."""
    norm = transforms.Normalize(MEAN[:x_uint8.shape[1]], STD[:x_uint8.shape[1]])
    return torch.stack([norm(img.float() / 255) for img in x_uint8])


@pytest.mark.parametrize("augment", [False, True])
def test_every_index_exactly_once_per_epoch(augment):
    batches = make(n=23, batch_size=5, augment=augment)
    got = list(batches.epoch(0))
    assert len(got) == len(batches) == 5
    assert [len(b.idx) for b in got] == [5, 5, 5, 5, 3]
    assert sorted(torch.cat([b.idx for b in got]).tolist()) == list(range(23))


def test_drop_last_gives_full_batches_of_distinct_indices():
    batches = make(n=23, batch_size=5, drop_last=True)
    assert len(batches) == 4
    seen = [torch.cat([b.idx for b in batches.epoch(key)]) for key in range(6)]
    for idx in seen:
        assert idx.numel() == 20 and idx.unique().numel() == 20
    # the 3 dropped samples depend on the epoch key
    dropped = {frozenset(set(range(23)) - set(idx.tolist())) for idx in seen}
    assert len(dropped) > 1


def test_batch_is_named_tuple_with_dtypes():
    batch = next(iter(make(augment=True).epoch(3)))
    assert isinstance(batch, Batch)
    assert batch.x.dtype == torch.float32 and batch.x.shape == (5, 3, 8, 8)
    assert batch.y.dtype == torch.int64 and batch.idx.dtype == torch.int64


def test_same_seed_and_key_reproduce_order_and_pixels():
    a = list(make(augment=True).epoch(4))
    b = list(make(augment=True).epoch(4))  # a fresh object: nothing carried over but (seed, key)
    for u, v in zip(a, b):
        assert torch.equal(u.idx, v.idx) and torch.equal(u.x, v.x)


def test_epochs_do_not_depend_on_previous_epochs_or_global_rng():
    batches = make(augment=True)
    first = [b.x for b in batches.epoch(9)]
    list(batches.epoch(1))
    torch.manual_seed(123)
    again = [b.x for b in batches.epoch(9)]
    assert all(torch.equal(u, v) for u, v in zip(first, again))


def test_different_keys_and_seeds_give_different_orders():
    orders = {tuple(torch.cat([b.idx for b in make(seed=s).epoch(k)]).tolist())
              for s in (0, 1) for k in range(5)}
    assert len(orders) == 10


def test_order_does_not_depend_on_augment():
    plain = torch.cat([b.idx for b in make(augment=False).epoch(2)])
    augmented = torch.cat([b.idx for b in make(augment=True).epoch(2)])
    assert torch.equal(plain, augmented)


def test_labels_follow_idx_and_can_be_replaced():
    batches = make(augment=True)
    for batch in batches.epoch(0):
        assert torch.equal(batch.y, batches.labels[batch.idx])
    noisy = (torch.arange(23) * 7) % 10
    batches.labels = noisy
    for batch in batches.epoch(0):
        assert torch.equal(batch.y, noisy[batch.idx])


@pytest.mark.parametrize("bad", [torch.zeros(22, dtype=torch.int64), torch.zeros(23), [0] * 23])
def test_bad_labels_are_rejected(bad):
    with pytest.raises(ConfigError, match="labels"):
        make().labels = bad


def test_normalisation_values_on_a_hand_made_image():
    # pixels 0, 255, 51 (= 0.2 on the [0, 1] scale) in a 1x2x2 image per channel
    x = torch.tensor([[[[0, 255], [51, 255]]]], dtype=torch.uint8)
    batches = DeviceBatches(x, torch.zeros(1, dtype=torch.int64), batch_size=4, mean=(0.5,), std=(0.25,),
                            augment=False, device="cpu", seed=0)
    (batch,) = list(batches.epoch(0))
    # (0 - 0.5) / 0.25 = -2, (1 - 0.5) / 0.25 = 2, (0.2 - 0.5) / 0.25 = -1.2
    assert torch.allclose(batch.x, torch.tensor([[[[-2.0, 2.0], [-1.2, 2.0]]]]), rtol=0, atol=1e-6)
    assert batch.x[0, 0, 0, 0].item() == -2.0 and batch.x[0, 0, 0, 1].item() == 2.0


def test_no_augmentation_matches_torchvision_bit_for_bit():
    x = images(23)
    batches = make(x=x, augment=False)
    for batch in batches.epoch(5):
        assert torch.equal(batch.x, normalize_reference(x[batch.idx]))


def reference_crop_and_flip(x, oy, ox, flip, pad=4):
    out = []
    for img, a, b, f in zip(x, oy.tolist(), ox.tolist(), flip.tolist()):
        window = F.pad(img, (pad, pad, pad, pad))[:, a:a + img.shape[1], b:b + img.shape[2]]
        out.append(window.flip(-1) if f else window)
    return torch.stack(out)


def test_crop_and_flip_matches_per_sample_reference():
    x = images(12, h=6, w=7)
    gen = torch.Generator().manual_seed(1)
    oy, ox = torch.randint(0, 9, (12,), generator=gen), torch.randint(0, 9, (12,), generator=gen)
    flip = torch.tensor([True, False] * 6)
    oy[:2], ox[:2] = torch.tensor([0, 8]), torch.tensor([8, 0])  # extreme corners
    assert torch.equal(crop_and_flip(x, oy, ox, flip), reference_crop_and_flip(x, oy, ox, flip))


def all_windows(img, pad=4):
    """{(oy, ox, flipped): normalised window} for all 81 crops x 2 flips of the zero-padded ``img``."""
    n = 2 * pad + 1
    grid = [(a, b, f) for a in range(n) for b in range(n) for f in (False, True)]
    oy, ox, flip = (torch.tensor(column) for column in zip(*grid))
    windows = normalize_reference(reference_crop_and_flip(img.expand(len(grid), -1, -1, -1), oy, ox, flip, pad))
    return dict(zip(grid, windows))


def test_augmented_outputs_are_shifted_windows_or_mirrors_of_the_padded_input():
    x = images(40)
    batches = make(n=40, batch_size=16, x=x, augment=True)
    found = []
    for batch in batches.epoch(0):
        for out, i in zip(batch.x, batch.idx.tolist()):
            matches = [k for k, window in all_windows(x[i:i + 1]).items() if torch.equal(out, window)]
            assert matches, f"sample {i} is no (mirrored) window of its padded image"
            found.append(matches[0])
    # the random draws really vary: many offsets, both flip states
    assert len({(a, b) for a, b, _ in found}) > 10
    assert {f for _, _, f in found} == {False, True}


def test_in_order_and_eval_batches_are_plain_and_ordered():
    x = images(11)
    y = torch.arange(11) % 3
    batches = DeviceBatches(x, y, batch_size=4, mean=MEAN, std=STD, augment=True, device="cpu", seed=0)
    for got in (list(batches.in_order()),
                list(eval_batches(x, y, batch_size=4, mean=MEAN, std=STD, device="cpu"))):
        assert torch.equal(torch.cat([b.idx for b in got]), torch.arange(11))
        assert torch.equal(torch.cat([b.y for b in got]), y)
        assert torch.equal(torch.cat([b.x for b in got]), normalize_reference(x))
    unlabelled = list(eval_batches(x, batch_size=4, mean=MEAN, std=STD, device="cpu"))
    assert [b.y for b in unlabelled] == [None] * 3


@pytest.mark.parametrize("kwargs, key", [
    (dict(batch_size=0), "batch_size"),
    (dict(mean=(0.5, 0.5)), "mean"),
    (dict(std=(0.2, 0.0, 0.2)), "std"),
    (dict(device="nonsense"), "device"),
    (dict(x_uint8=torch.zeros(4, 3, 8, 8)), "x_uint8"),
])
def test_bad_arguments_raise_one_line_config_errors(kwargs, key):
    args = dict(x_uint8=images(4), y=torch.zeros(4, dtype=torch.int64), batch_size=2, mean=MEAN, std=STD,
                augment=True, device="cpu", seed=0)
    args.update(kwargs)
    x, y = args.pop("x_uint8"), args.pop("y")
    with pytest.raises(ConfigError, match=key) as err:
        DeviceBatches(x, y, **args)
    assert "\n" not in str(err.value)
