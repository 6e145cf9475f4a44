"""Where a training set lives: on the device as one uint8 tensor, or streamed from files.

``choose_data_path(dataset, device, requested)`` is the rule:

- an in-memory :class:`ImageDataset` (MNIST, CIFAR, ...) is always device-resident;
- a :class:`FileImageDataset` is device-resident when (a) its augmentation is one the
  device-resident batches implement (no per-image resize; random crop of the 4-pixel
  zero-padded image + flip, or no augmentation) and (b) its decoded images (training,
  validation and test sets at the network's input size) take at most
  ``RESIDENT_FRACTION`` of the device's memory (host RAM for the CPU); otherwise it streams.
  ANIMAL-10N (0.7 GB) is resident; Clothing1M and WebVision (resize + random crop) stream.

``requested="device"`` or ``"stream"`` overrides the size test; a request the dataset cannot
honour is a ConfigError naming why.

:func:`materialise` decodes a file dataset once into tensors for the device-resident path.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ts3ray.data.core.batches import CROP_PADDING, _to_device
from ts3ray.data.core.dataset import ImageDataset
from ts3ray.data.core.files import FileImageDataset
from ts3ray.errors import ConfigError, UserError

DATA_PATHS = ("auto", "device", "stream")
RESIDENT_FRACTION = 0.25  # of device memory; the rest is for weights, activations and optimiser state


@dataclass(frozen=True)
class Materialised:
    """A file dataset decoded into tensors (evaluation view: no augmentation baked in)."""

    dataset: ImageDataset                            # training set + the primary test set
    tests: dict[str, tuple[torch.Tensor, torch.Tensor]]  # every test set: uint8 x, int64 y
    val: tuple[torch.Tensor, torch.Tensor] | None


def device_path_obstacle(dataset: FileImageDataset) -> str | None:
    """Why ``dataset``'s augmentation cannot run on the device-resident batches (None: it can)."""
    return transform_obstacle(dataset.transform)


def transform_obstacle(t) -> str | None:
    """The same for an ImageTransform (a source's, known before any file is read)."""
    if t.resize is not None:
        return f"its images are resized to {t.resize} px and cropped at random per image"
    if t.pad not in (0, CROP_PADDING) or bool(t.pad) != t.flip:
        return (f"its augmentation (pad {t.pad}, flip {t.flip}) is not the device batches' "
                f"(pad {CROP_PADDING} + flip, or none)")
    return None


def resident_bytes(dataset: FileImageDataset) -> int:
    """uint8 bytes of every split decoded at the network's input size."""
    per_image = dataset.in_channels * dataset.transform.size ** 2
    count = len(dataset.train) + sum(len(s) for s in dataset.tests.values())
    return (count + (len(dataset.val) if dataset.val is not None else 0)) * per_image


def memory_bytes(device: torch.device) -> int:
    """Total memory of ``device``: the GPU's, or the host's physical RAM for the CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def choose_data_path(dataset: ImageDataset | FileImageDataset, device, requested: str = "auto", *,
                     budget_bytes: int | None = None) -> str:
    """``"device"`` or ``"stream"`` for ``dataset`` on ``device`` (see the module docstring)."""
    if requested not in DATA_PATHS:
        raise ConfigError("data_path", requested, f"one of {', '.join(DATA_PATHS)}")
    if isinstance(dataset, ImageDataset):
        if requested == "stream":
            raise ConfigError("data_path", requested, f"auto or device: {dataset.name} is loaded as tensors, "
                                                      f"not read from image files")
        return "device"
    obstacle = device_path_obstacle(dataset)
    if requested == "device" and obstacle:
        raise ConfigError("data_path", requested, f"auto or stream: {dataset.name} cannot be device-resident, "
                                                  f"{obstacle}")
    if requested != "auto":
        return requested
    if obstacle:
        return "stream"
    budget = budget_bytes if budget_bytes is not None else int(RESIDENT_FRACTION * memory_bytes(_to_device(device)))
    return "device" if resident_bytes(dataset) <= budget else "stream"


def materialise(dataset: FileImageDataset, *, workers: int = 2) -> Materialised:
    """Decode every split of ``dataset`` into uint8 tensors (for the device-resident path).

    ``train_y`` of the result holds the labels training sees (for a real-world set, its
    published noisy labels). UserError if the dataset's augmentation needs the streaming path.
    """
    from ts3ray.data.core.streaming import decode_split

    obstacle = device_path_obstacle(dataset)
    if obstacle:
        raise UserError(f"{dataset.name} is read by the streaming path only: {obstacle} "
                        f"(use ts3ray.data.prepare_data, which chooses the path)")

    def decoded(split):
        return decode_split(dataset.root, split, dataset.transform, workers=workers), split.labels

    tests = {name: decoded(split) for name, split in dataset.tests.items()}
    train_x, train_y = decoded(dataset.train)
    test_x, test_y = next(iter(tests.values()))
    val = decoded(dataset.val) if dataset.val is not None else (None, None)
    image = ImageDataset(dataset.name, train_x, train_y, test_x, test_y, dataset.num_classes, dataset.mean,
                         dataset.std, augment=dataset.transform.flip, val_x=val[0], val_y=val[1])
    return Materialised(image, tests, None if val[0] is None else val)
