"""Streaming mini-batches for datasets that do not fit in device memory (Clothing1M, WebVision).

``StreamingBatches`` has the interface of :class:`ts3ray.data.core.batches.DeviceBatches`:
``.epoch(key)`` yields ``Batch(x, y, idx)`` (x float32 normalised on the device, y the current
labels of those samples, idx their indices into the training set), ``.in_order()`` walks the
set in index order without augmentation, ``.labels`` is settable, ``.num_samples``, ``len()``.

How a batch is made
- The main process draws the whole epoch from a CPU generator seeded with
  ``epoch_seed(seed, key)``: first the permutation (``randperm``, exactly as DeviceBatches, so
  both paths visit the samples in the same order), then each sample's crop offsets and flip.
  Workers draw nothing, so the pixels do not depend on the worker count or timing.
- A torch DataLoader with ``workers`` processes reads the files; each worker decodes
  (torchvision.io), resizes, crops and flips its samples to uint8 ``S x S`` images
  (:mod:`ts3ray.data.core.decode`). With ``decode="device"`` (the default on CUDA) workers only
  read the bytes of JPEG files, and the main process decodes the whole batch in one nvJPEG call
  on the GPU before the same geometric steps run there.
- Batches come back in pinned memory (on CUDA), are copied without blocking and normalised on
  the device in batch, like DeviceBatches.

For the ``pad`` transform (random crop of the zero-padded image, ANIMAL-10N and CIFAR) the
offsets are drawn exactly as DeviceBatches draws them, so the streaming and device-resident
paths give the same augmented pixels for the same (seed, key).
"""
from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ts3ray.data.core.batches import Batch, LabelledBatches, _check_batch_size, _Normalizer, _to_device, epoch_seed
from ts3ray.data.core.decode import decode, decode_jpegs_on, eval_view, is_jpeg, read_bytes, train_view
from ts3ray.data.core.files import FileImageDataset, FileSplit, ImageTransform
from ts3ray.errors import ConfigError, DataMissingError

DECODE_MODES = ("auto", "worker", "device")  # auto: on the device when it is a CUDA GPU


def epoch_draws(seed: int, key: int, n: int, transform: ImageTransform, augment: bool):
    """The epoch's order, crop offsets (n, 2) and flips (n,), all from one seeded generator.

    Order first, then offsets, then flips: for a ``pads`` transform with the device path's
    padding this is DeviceBatches' exact sequence of draws.
    """
    generator = torch.Generator().manual_seed(epoch_seed(seed, operator.index(key)))
    order = torch.randperm(n, generator=generator)
    if not augment:
        return order, None, None
    if transform.pads:
        offsets = torch.randint(0, 2 * transform.pad + 1, (n, 2), generator=generator).double()
    else:
        offsets = torch.rand((n, 2), generator=generator, dtype=torch.float64)
    flips = torch.randint(0, 2, (n,), generator=generator).bool()
    if not transform.flip:
        flips = torch.zeros_like(flips)
    return order, offsets.numpy(), flips.numpy()


IMAGE, JPEG, ERROR = "image", "jpeg", "error"  # what a loaded item carries


class _Samples(Dataset):
    """Item i of an epoch: sample ``order[i]`` read, decoded and cropped (in a worker).

    Returns (payload, kind, sample index, position i); kind IMAGE: a uint8 (C, S, S) input,
    JPEG: the raw bytes (decoded later on the device), ERROR: a one-line message (raised in
    the main process, so the user sees one line rather than a worker traceback).
    """

    def __init__(self, root: Path, paths: np.ndarray, order: np.ndarray, transform: ImageTransform,
                 offsets: np.ndarray | None, flips: np.ndarray | None, decode_here: bool):
        self.root, self.paths, self.order, self.transform = str(root), paths, order, transform
        self.offsets, self.flips, self.decode_here = offsets, flips, decode_here

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, position: int):
        index = int(self.order[position])
        path = Path(self.root) / self.paths[index].decode()
        try:
            encoded = read_bytes(path)
            if not self.decode_here and is_jpeg(encoded):
                return encoded, JPEG, index, position
            return view(decode(encoded, path), self, position, path), IMAGE, index, position
        except DataMissingError as err:
            return str(err), ERROR, index, position


def view(image: torch.Tensor, samples: _Samples, position: int, path) -> torch.Tensor:
    """The sample's network input (training view if the epoch has draws, else evaluation view)."""
    try:
        if samples.offsets is None:
            return eval_view(image, samples.transform)
        offset = (float(samples.offsets[position, 0]), float(samples.offsets[position, 1]))
        return train_view(image, samples.transform, offset, bool(samples.flips[position]))
    except ValueError as err:
        raise DataMissingError(f"{path}: {err} (transform {samples.transform})") from None


def _collate(items):
    payloads, kinds, index, position = zip(*items)
    if ERROR in kinds:
        return payloads[kinds.index(ERROR)], ERROR, None, None
    index, position = torch.tensor(index, dtype=torch.int64), torch.tensor(position, dtype=torch.int64)
    if JPEG not in kinds:
        return torch.stack(payloads), IMAGE, index, position
    return list(payloads), list(kinds), index, position


def _load(samples: _Samples, batch_size: int, workers: int, pin: bool):
    """(images or payload list, kinds, index, position) per batch; DataMissingError on a bad file."""
    loader = DataLoader(samples, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_collate,
                        pin_memory=pin, prefetch_factor=2 if workers else None)
    for images, kinds, index, position in loader:
        if kinds == ERROR:
            raise DataMissingError(images)
        yield images, kinds, index, position


def _check_workers(workers) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError("workers", workers, "an integer >= 0 (0: load in the main process)")
    return workers


def decode_split(root, split: FileSplit, transform: ImageTransform, *, workers: int = 2,
                 batch_size: int = 256) -> torch.Tensor:
    """Every image of ``split`` in its evaluation view, as one uint8 (N, C, S, S) CPU tensor."""
    samples = _Samples(Path(root), split.paths, np.arange(len(split)), transform, None, None, decode_here=True)
    parts = [images for images, _, _, _ in _load(samples, batch_size, _check_workers(workers), pin=False)]
    if not parts:
        return torch.zeros((0, 3, transform.size, transform.size), dtype=torch.uint8)
    return torch.cat(parts)


class _Stream:
    """What StreamingBatches and the evaluation streams share: loader, decode place, normaliser."""

    def __init__(self, root, split: FileSplit, transform: ImageTransform, *, batch_size: int,
                 mean: Sequence[float], std: Sequence[float], device, workers: int, decode: str,
                 channels: int = 3):
        if not isinstance(split, FileSplit):
            raise ConfigError("split", type(split).__name__, "a FileSplit (paths + labels)")
        if decode not in DECODE_MODES:
            raise ConfigError("decode", decode, f"one of {', '.join(DECODE_MODES)}")
        self.root, self.split, self.transform = Path(root), split, transform
        self.device = _to_device(device)
        self.batch_size = _check_batch_size(batch_size)
        self.workers = _check_workers(workers)
        on_gpu = self.device.type == "cuda"
        self.decode_on_device = decode == "device" or (decode == "auto" and on_gpu)
        self.pin = on_gpu
        self._normalize = _Normalizer(mean, std, channels, self.device)

    def _batches(self, order: torch.Tensor, offsets, flips, stop: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x normalised on the device, idx on the device) for positions 0..stop-1 of ``order``."""
        samples = _Samples(self.root, self.split.paths, order[:stop].numpy(), self.transform, offsets, flips,
                           decode_here=not self.decode_on_device)
        for images, kinds, index, position in _load(samples, self.batch_size, self.workers, self.pin):
            if kinds != IMAGE:
                images = self._finish_on_device(images, kinds, position, samples)
            x = images.to(self.device, non_blocking=True)
            yield self._normalize(x), index.to(self.device, non_blocking=True)

    def _finish_on_device(self, images: list, kinds: list, position: torch.Tensor, samples: _Samples) -> torch.Tensor:
        """Decode the batch's raw JPEGs in one call on the device, then crop/flip each there."""
        encoded = [img for img, kind in zip(images, kinds) if kind == JPEG]
        decoded = iter(decode_jpegs_on(encoded, self.device))
        out = []
        for img, kind, pos in zip(images, kinds, position.tolist()):
            if kind == JPEG:
                path = self.root / self.split.paths[int(samples.order[pos])].decode()
                img = view(next(decoded), samples, pos, path)
            out.append(img.to(self.device, non_blocking=True))
        return torch.stack(out)

    def in_order(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.split)
        return self._batches(torch.arange(n), None, None, n)


class StreamingBatches(LabelledBatches):
    """DeviceBatches' interface over images read from files by DataLoader workers.

    ``drop_last`` as in DeviceBatches: every batch full, the epoch's last N mod B positions
    skipped. ``labels`` (e.g. noisy labels) live on the device; batches carry ``labels[idx]``.
    """

    def __init__(self, root, split: FileSplit, transform: ImageTransform, y: torch.Tensor | None = None, *,
                 batch_size: int, mean: Sequence[float], std: Sequence[float], augment: bool, device,
                 seed: int, drop_last: bool = False, workers: int = 2, decode: str = "auto"):
        self._stream = _Stream(root, split, transform, batch_size=batch_size, mean=mean, std=std,
                               device=device, workers=workers, decode=decode, channels=len(mean))
        self.device, self.batch_size = self._stream.device, self._stream.batch_size
        self.augment = bool(augment)
        self.seed = operator.index(seed)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.labels = split.labels if y is None else y

    @classmethod
    def of(cls, dataset: FileImageDataset, **options) -> "StreamingBatches":
        """The training split of ``dataset`` with its labels, mean/std and transform."""
        return cls(dataset.root, dataset.train, dataset.transform, mean=dataset.mean, std=dataset.std, **options)

    @property
    def num_samples(self) -> int:
        return len(self._stream.split)

    def epoch(self, key: int) -> Iterator[Batch]:
        """Batches of epoch ``key`` in the order of its seeded permutation (as DeviceBatches)."""
        order, offsets, flips = epoch_draws(self.seed, key, self.num_samples, self.transform, self.augment)
        stop = len(self) * self.batch_size if self.drop_last else self.num_samples
        for x, idx in self._stream._batches(order, offsets, flips, stop):
            yield Batch(x, self._labels[idx], idx)

    def in_order(self) -> Iterator[Batch]:
        """All samples in index order, evaluation view (no augmentation), never dropped."""
        for x, idx in self._stream.in_order():
            yield Batch(x, self._labels[idx], idx)


def stream_eval_batches(root, split: FileSplit, transform: ImageTransform, *, batch_size: int,
                        mean: Sequence[float], std: Sequence[float], device, workers: int = 2,
                        decode: str = "auto") -> Iterator[Batch]:
    """Evaluation batches of a file split (val/test): in order, evaluation view, with labels."""
    stream = _Stream(root, split, transform, batch_size=batch_size, mean=mean, std=std, device=device,
                     workers=workers, decode=decode, channels=len(mean))
    labels = split.labels.to(stream.device)
    for x, idx in stream.in_order():
        yield Batch(x, labels[idx], idx)
