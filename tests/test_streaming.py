"""The streaming batch path, the placement rule and top-k accuracy, on real image files."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.io import decode_image

import realworld_layouts as layouts
from ts3ray.data import (DeviceBatches, FileSplit, ImageTransform, StreamingBatches, choose_data_path,
                         load_file_dataset, make_synthetic, stream_eval_batches, topk_accuracy, topk_correct)
from ts3ray.data.core.batches import eval_batches
from ts3ray.data.core.metrics import evaluate_topk
from ts3ray.data.core.placement import materialise, resident_bytes
from ts3ray.errors import ConfigError, DataMissingError


def collect(batches):
    xs, ys, idxs = zip(*[(b.x, b.y, b.idx) for b in batches])
    return torch.cat(xs), torch.cat(ys), torch.cat(idxs)


@pytest.fixture()
def animal(tmp_path):
    layouts.animal10n(tmp_path, n_train=11, n_test=3)
    return load_file_dataset("animal10n", tmp_path)


@pytest.fixture()
def clothing(tmp_path):
    layouts.clothing1m(tmp_path)
    return load_file_dataset("clothing1m", tmp_path)


@pytest.mark.parametrize("augment", [False, True])
def test_streaming_and_device_paths_yield_the_same_epoch(animal, augment):
    """Same (seed, key): same order, indices, labels and, without augmentation, the same pixels;
    with the padded-crop augmentation of ANIMAL-10N the pixels agree as well."""
    decoded = materialise(animal, workers=0).dataset
    noisy = (animal.train.labels + 1) % 10
    common = dict(batch_size=4, mean=animal.mean, std=animal.std, augment=augment, device="cpu", seed=7)
    device = DeviceBatches(decoded.train_x, noisy, **common)
    stream = StreamingBatches.of(animal, y=noisy, workers=0, **{k: v for k, v in common.items() if k not in ("mean", "std")})
    assert (len(stream), stream.num_samples) == (len(device), device.num_samples) == (3, 11)
    for key in (0, 5):
        dx, dy, di = collect(device.epoch(key))
        sx, sy, si = collect(stream.epoch(key))
        assert torch.equal(si, di) and torch.equal(sy, dy) and torch.equal(sy, noisy[si])
        assert torch.equal(sx, dx)
    assert not torch.equal(collect(stream.epoch(0))[2], collect(stream.epoch(1))[2])  # a new order each epoch


def test_worker_processes_change_nothing(clothing):
    """Two DataLoader workers give the pixels of the in-process loader (draws happen in the parent)."""
    common = dict(batch_size=3, augment=True, device="cpu", seed=3)
    inline = collect(StreamingBatches.of(clothing, workers=0, **common).epoch(2))
    forked = collect(StreamingBatches.of(clothing, workers=2, **common).epoch(2))
    assert all(torch.equal(a, b) for a, b in zip(inline, forked))
    assert inline[0].shape == (7, 3, 224, 224) and inline[0].dtype == torch.float32


def test_decode_on_the_device_matches_decode_in_workers(clothing):
    """decode="device" (nvJPEG on a GPU) is exercised on the CPU: batch decode in the parent."""
    common = dict(batch_size=4, augment=True, device="cpu", seed=1, workers=0)
    in_workers = collect(StreamingBatches.of(clothing, decode="worker", **common).epoch(0))
    on_device = collect(StreamingBatches.of(clothing, decode="device", **common).epoch(0))
    assert all(torch.equal(a, b) for a, b in zip(in_workers, on_device))


def test_training_view_is_resize_random_crop_flip(clothing):
    """Check one sample by hand: shorter side to 256, the drawn 224 crop, the drawn flip."""
    from ts3ray.data.core.streaming import epoch_draws

    stream = StreamingBatches.of(clothing, batch_size=7, augment=True, device="cpu", seed=4, workers=0)
    batch = next(stream.epoch(9))
    order, offsets, flips = epoch_draws(4, 9, 7, clothing.transform, True)
    assert torch.equal(batch.idx, order)
    i = int(order[0])
    raw = decode_image(str(clothing.train.path(clothing.root, i)))
    h, w = raw.shape[-2:]
    size = (256, round(256 * w / h)) if h < w else (round(256 * h / w), 256)
    resized = F.interpolate(raw[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    top = min(int(offsets[0, 0] * (size[0] - 224 + 1)), size[0] - 224)
    left = min(int(offsets[0, 1] * (size[1] - 224 + 1)), size[1] - 224)
    crop = resized[0, :, top:top + 224, left:left + 224]
    crop = crop.flip(-1) if flips[0] else crop
    mean, std = torch.tensor(clothing.mean).view(3, 1, 1), torch.tensor(clothing.std).view(3, 1, 1)
    expected = (crop.round().clamp(0, 255) / 255 - mean) / std
    assert (batch.x[0] - expected).abs().max() < 2.5 / 255 / min(clothing.std)  # resize rounding only


def test_in_order_and_eval_streams_are_the_centre_view(clothing):
    stream = StreamingBatches.of(clothing, batch_size=4, augment=True, device="cpu", seed=0, workers=0)
    x, y, idx = collect(stream.in_order())
    assert idx.tolist() == list(range(7)) and torch.equal(y, clothing.train.labels)
    again = collect(stream_eval_batches(clothing.root, clothing.train, clothing.transform, batch_size=5,
                                        mean=clothing.mean, std=clothing.std, device="cpu", workers=0))
    assert torch.equal(again[0], x)
    stream.labels = torch.zeros(7, dtype=torch.int64)
    assert collect(stream.in_order())[1].tolist() == [0] * 7
    with pytest.raises(ConfigError, match=r"labels=.* an integer tensor of shape \(7,\)"):
        stream.labels = torch.zeros(6, dtype=torch.int64)


def test_drop_last_matches_device_batches(animal):
    decoded = materialise(animal, workers=0).dataset
    common = dict(batch_size=4, augment=False, device="cpu", seed=2, drop_last=True)
    device = collect(DeviceBatches(decoded.train_x, decoded.train_y, mean=animal.mean, std=animal.std, **common)
                     .epoch(3))
    stream = StreamingBatches.of(animal, workers=0, **common)
    assert len(stream) == 2 and torch.equal(collect(stream.epoch(3))[2], device[2])


def test_a_broken_image_is_one_line_naming_the_file(clothing):
    broken = clothing.train.path(clothing.root, 3)
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    for workers in (0, 2):
        stream = StreamingBatches.of(clothing, batch_size=4, augment=False, device="cpu", seed=0, workers=workers)
        with pytest.raises(DataMissingError) as err:
            list(stream.in_order())
        assert str(broken) in str(err.value) and "\n" not in str(err.value)


def test_bad_streaming_options_are_refused(clothing):
    for key, options in (("workers", dict(workers=-1)), ("decode", dict(decode="gpu")), ("batch_size", dict(batch_size=0))):
        with pytest.raises(ConfigError, match=f"^{key}="):
            StreamingBatches.of(clothing, **{"batch_size": 2, "augment": False, "device": "cpu", "seed": 0, **options})


# -- placement rule --------------------------------------------------------------------------------
def test_placement_by_augmentation_and_size(animal, clothing):
    assert resident_bytes(animal) == (11 + 3) * 3 * 64 * 64
    assert choose_data_path(animal, "cpu") == "device"
    assert choose_data_path(animal, "cpu", budget_bytes=resident_bytes(animal) - 1) == "stream"
    assert choose_data_path(animal, "cpu", "stream") == "stream"
    assert choose_data_path(clothing, "cpu", budget_bytes=10**15) == "stream"  # resize + random crop
    with pytest.raises(ConfigError, match="clothing1m cannot be device-resident, its images are resized to 256"):
        choose_data_path(clothing, "cpu", "device")
    synthetic = make_synthetic(n_train=10, n_test=4)
    assert choose_data_path(synthetic, "cpu") == "device"
    with pytest.raises(ConfigError, match="synthetic is loaded as tensors"):
        choose_data_path(synthetic, "cpu", "stream")
    with pytest.raises(ConfigError, match="^data_path='disk'"):
        choose_data_path(animal, "cpu", "disk")


def test_device_path_for_an_unpadded_transform_is_refused(tmp_path):
    layouts.animal10n(tmp_path, n_train=2, n_test=1)
    ds = load_file_dataset("animal10n", tmp_path)
    odd = type(ds)(**{**ds.__dict__, "transform": ImageTransform(size=64, pad=2)})
    with pytest.raises(ConfigError, match=r"pad 2, flip True\) is not the device batches'"):
        choose_data_path(odd, "cpu", "device")


# -- top-k -----------------------------------------------------------------------------------------
def test_topk_on_hand_made_logits():
    logits = torch.tensor([
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3],   # label 0 at rank 1
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],   # label 2: ranks 6 5 4 3 [2] -> 5th
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],   # label 1: 6th largest -> not in top 5
        [5.0, 4.0, 3.0, 2.0, 1.0, 0.0, 9.0],   # label 6 at rank 1
    ])
    labels = torch.tensor([0, 2, 1, 6])
    assert topk_correct(logits, labels, (1, 2, 5, 6)).tolist() == [2, 2, 3, 4]
    assert topk_accuracy(logits, labels, 5) == 0.75 and topk_accuracy(logits, labels, 1) == 0.5
    with pytest.raises(ConfigError, match="^k=8 is not allowed: an integer in 1..7"):
        topk_correct(logits, labels, (1, 8))


def test_evaluate_topk_over_named_test_sets():
    x = torch.zeros(5, 1, 2, 2, dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 3, 4])

    class Fixed(torch.nn.Module):  # logits favour class 0, then 1, 2, ...
        def forward(self, inputs):
            return torch.arange(6, 0, -1, dtype=torch.float32).expand(inputs.shape[0], 6)

    batches = eval_batches(x, y, batch_size=2, mean=(0.5,), std=(0.5,), device="cpu")
    assert evaluate_topk(Fixed(), batches, (1, 5)) == {1: 0.2, 5: 1.0}


def test_file_split_validates_paths_and_labels():
    split = FileSplit.of(["a.jpg", "b/c.png"], [1, 2])
    assert len(split) == 2 and split.paths.dtype.kind == "S"
    with pytest.raises(ValueError, match="labels must be int64"):
        FileSplit(split.paths, torch.tensor([1, 2, 3]))


def test_subset_and_a_clean_val_survive_materialising(animal):
    """FileSplit.subset serves a hold-out split; a file dataset's clean val becomes val_x/val_y."""
    part = animal.train.subset(torch.tensor([4, 0, 7]))
    assert [p.decode() for p in part.paths] == [animal.train.paths[i].decode() for i in (4, 0, 7)]
    assert part.labels.tolist() == [int(animal.train.labels[i]) for i in (4, 0, 7)]
    with_val = type(animal)(**{**animal.__dict__, "val": animal.tests["test"]})
    decoded = materialise(with_val, workers=0)
    assert decoded.dataset.has_clean_val and torch.equal(decoded.dataset.val_x, decoded.val[0])
    assert torch.equal(decoded.dataset.val_y, animal.tests["test"].labels)
