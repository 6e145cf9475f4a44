"""Everything a run reads from its data, whichever dataset and data path: one call.

``prepare_data(...)`` loads the dataset, makes the training labels (synthetic noise drawn
from T, CIFAR-N human labels, or a real-world set's own labels), chooses the data path
(:func:`ts3ray.data.core.placement.choose_data_path`) and returns a :class:`PreparedData`:

- ``train``: ``DeviceBatches`` or ``StreamingBatches`` (same interface) over the training
  set, ``labels`` = the noisy labels training sees;
- ``true_y`` (device): the clean label of each training sample, -1 where unknown, and
  ``label_known`` / ``label_is_clean`` masks for label precision and relabel accuracy;
- ``val``: the dataset's clean validation set (Clothing1M) or None;
- ``holdout``: with ``val_fraction`` > 0, the seeded hold-out of the *noisy* training set
  (data/split.py) with its noisy labels; ``train``, ``true_y`` and ``noisy_train`` then cover
  only the rest (sample indices in the stages index those);
- ``tests``: named test sets in order (``test``; WebVision: ``webvision_val``, ``ilsvrc12_val``),
  each an :class:`EvalSet` whose ``batches()`` walks it in order without augmentation.

Validation of the setting (dataset, noise, noise_labels) happens before any file is read.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ts3ray.data.core.batches import Batch, DeviceBatches, _to_device, eval_batches
from ts3ray.data.core.dataset import ImageDataset
from ts3ray.data.core.files import UNKNOWN_LABEL, FileImageDataset
from ts3ray.data.sources.human import OWN_LABEL_DATASETS, check_noise, check_noise_files, given_labels, human_labels
from ts3ray.data.core.noise import NoisyLabels, apply_label_noise
from ts3ray.data.core.placement import choose_data_path, materialise
from ts3ray.data.sources import load_for_run
from ts3ray.data.core.split import holdout_split
from ts3ray.data.core.streaming import StreamingBatches, stream_eval_batches
from ts3ray.data.core.files import FileSplit


@dataclass(frozen=True)
class EvalSet:
    """A named evaluation set; ``batches()`` yields it in order, normalised, not augmented."""

    name: str
    num_samples: int
    make_batches: Callable[[], Iterator[Batch]] = field(repr=False)

    def batches(self) -> Iterator[Batch]:
        return self.make_batches()


@dataclass
class PreparedData:
    name: str
    path: str                                 # "device" or "stream"
    train: DeviceBatches | StreamingBatches   # labels: the noisy training labels
    noisy: NoisyLabels
    true_y: torch.Tensor                      # int64 on the device, -1 = clean label unknown
    val: EvalSet | None
    tests: dict[str, EvalSet]                 # the first one is the primary test set
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    notes: tuple[str, ...] = ()
    holdout: EvalSet | None = None  # the held-out part of the noisy training set

    @property
    def label_known(self) -> torch.Tensor:
        return self.true_y >= 0

    @property
    def label_is_clean(self) -> torch.Tensor:
        """Training label == clean label; False where the clean label is unknown."""
        return self.label_known & (self.train.labels == self.true_y)


def training_labels(dataset: str, true_y: torch.Tensor, num_classes: int, *, noise: str, noise_rate: float,
                    seed: int, convention: str = "sample", noise_labels: str = "",
                    data_root: str | Path = "data", given: torch.Tensor | None = None) -> NoisyLabels:
    """The labels training sees: drawn from T (sym/asym/pairflip/none), a CIFAR-N label set
    (``noise=human`` on cifar10/cifar100) or ``given`` (``noise=human`` on a real-world set)."""
    check_noise(dataset, noise, noise_labels)
    if noise != "human":
        return apply_label_noise(true_y, num_classes, noise, noise_rate, seed, dataset=dataset,
                                 convention=convention)
    if given is not None:
        return given_labels(given, true_y, num_classes)
    return human_labels(dataset, noise_labels, Path(data_root), true_y, num_classes)


def _device_eval(name: str, x: torch.Tensor, y: torch.Tensor, ds, batch_size: int, device) -> EvalSet:
    x, y = x.to(device), y.to(device)  # one upload; every evaluation reuses it
    return EvalSet(name, int(y.shape[0]),
                   lambda: eval_batches(x, y, batch_size=batch_size, mean=ds.mean, std=ds.std, device=device))


def _stream_eval(name: str, split, ds: FileImageDataset, batch_size: int, device, workers: int, decode: str) -> EvalSet:
    return EvalSet(name, len(split), lambda: stream_eval_batches(ds.root, split, ds.transform, batch_size=batch_size,
                                                                  mean=ds.mean, std=ds.std, device=device,
                                                                  workers=workers, decode=decode))


def prepare_data(name: str, data_root: str | Path = "data", *, noise: str, noise_rate: float, noise_seed: int,
                 batch_seed: int, batch_size: int, eval_batch_size: int, device, noise_labels: str = "",
                 convention: str = "sample", data_path: str = "auto", workers: int = 2, decode: str = "auto",
                 load_seed: int = 0, dataset: ImageDataset | FileImageDataset | None = None,
                 val_fraction: float = 0.0, val_seed: int = 0, drop_last: bool = False) -> PreparedData:
    """Load ``name`` and build its training batches, labels and evaluation sets (module docstring).

    ``noise_seed`` draws synthetic noise, ``batch_seed`` the epoch orders and augmentation,
    ``load_seed`` the split of datasets that have a seeded one (digits), ``val_seed`` the
    hold-out of ``val_fraction`` of the noisy training set. ``workers`` and ``decode`` only
    matter on the streaming path. ``dataset`` skips loading. ``drop_last``: every training
    batch full (static shapes).
    """
    check_noise(name, noise, noise_labels)
    check_noise_files(name, noise, noise_labels, Path(data_root))
    device = _to_device(device)
    if dataset is None:
        dataset = load_for_run(name, data_root, seed=load_seed)
    path = choose_data_path(dataset, device, data_path)
    common = dict(batch_size=batch_size, device=device, seed=batch_seed, drop_last=drop_last)
    if isinstance(dataset, ImageDataset):
        true_y, given = dataset.train_y, None
        if name in OWN_LABEL_DATASETS:  # e.g. ANIMAL-10N already decoded: train_y are its noisy labels
            true_y, given = torch.full_like(dataset.train_y, UNKNOWN_LABEL), dataset.train_y
        noisy = training_labels(name, true_y, dataset.num_classes, noise=noise, noise_rate=noise_rate,
                                seed=noise_seed, convention=convention, noise_labels=noise_labels,
                                data_root=data_root, given=given)
        return _on_device(name, path, dataset, noisy, true_y, {"test": (dataset.test_x, dataset.test_y)},
                          (dataset.val_x, dataset.val_y) if dataset.has_clean_val else None, common,
                          eval_batch_size, val_fraction, val_seed)
    noisy = training_labels(name, dataset.train_true, dataset.num_classes, noise=noise, noise_rate=noise_rate,
                            seed=noise_seed, noise_labels=noise_labels, given=dataset.train.labels)
    if path == "device":
        decoded = materialise(dataset, workers=workers)
        return _on_device(name, path, decoded.dataset, noisy, dataset.train_true, decoded.tests, decoded.val,
                          common, eval_batch_size, val_fraction, val_seed, dataset.notes)
    train_idx, held = holdout_split(noisy.labels, val_fraction, val_seed)
    train_split = FileSplit(dataset.train.paths[train_idx.numpy()], noisy.labels[train_idx])
    train = StreamingBatches(dataset.root, train_split, dataset.transform, mean=dataset.mean, std=dataset.std,
                             augment=True, workers=workers, decode=decode, **common)
    tests = {n: _stream_eval(n, split, dataset, eval_batch_size, device, workers, decode)
             for n, split in dataset.tests.items()}
    val = _stream_eval("val", dataset.val, dataset, eval_batch_size, device, workers, decode) \
        if dataset.val is not None else None
    holdout = None
    if held.numel():
        held_split = FileSplit(dataset.train.paths[held.numpy()], noisy.labels[held])
        holdout = _stream_eval("holdout", held_split, dataset, eval_batch_size, device, workers, decode)
    return PreparedData(name, path, train, noisy, dataset.train_true[train_idx].to(device), val, tests,
                        dataset.num_classes, dataset.in_channels, dataset.image_size, dataset.notes, holdout)


def _on_device(name: str, path: str, image: ImageDataset, noisy: NoisyLabels, true_y: torch.Tensor,
               tests: dict, val, common: dict, eval_batch_size: int, val_fraction: float, val_seed: int,
               notes: tuple[str, ...] = ()) -> PreparedData:
    """Device-resident batches over the training part, eval sets uploaded once."""
    device = common["device"]
    train_idx, held = holdout_split(noisy.labels, val_fraction, val_seed)
    train = DeviceBatches(image.train_x[train_idx], noisy.labels[train_idx], mean=image.mean, std=image.std,
                          augment=image.augment, **common)
    evals = {n: _device_eval(n, x, y, image, eval_batch_size, device) for n, (x, y) in tests.items()}
    clean_val = _device_eval("val", *val, image, eval_batch_size, device) if val is not None else None
    holdout = _device_eval("holdout", image.train_x[held], noisy.labels[held], image, eval_batch_size,
                           device) if held.numel() else None
    return PreparedData(name, path, train, noisy, true_y[train_idx].to(device), clean_val, evals,
                        image.num_classes, image.in_channels, image.image_size, notes, holdout)
