"""File-backed image datasets: image paths + labels, read lazily, beside the in-memory ImageDataset.

Large real-world sets (Clothing1M: ~1M images) cannot be held as one uint8 tensor, so a
:class:`FileImageDataset` keeps only paths and labels; the streaming path
(:mod:`ts3ray.data.core.streaming`) decodes the images batch by batch, and a small set (ANIMAL-10N)
can still be decoded once into an :class:`~ts3ray.data.core.dataset.ImageDataset`
(:func:`ts3ray.data.core.placement.materialise`) for the device-resident path.

A dataset has
- ``train``: the training images with the labels training sees (the *noisy* labels of a
  real-world set), plus ``train_true``: their clean labels where known, -1 where unknown;
- ``val``: an optional clean validation split (Clothing1M), for choices (best epoch, search);
- ``tests``: one or more named test sets, e.g. ``webvision_val`` and ``ilsvrc12_val``; the
  first is the primary one;
- ``transform``: how an image becomes a network input (resize, crop, pad, flip).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ts3ray.data.core.contained import Contained
from ts3ray.errors import DataFileError, DataMissingError, shorten

UNKNOWN_LABEL = -1  # train_true where the clean label of a training image is not known
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # per channel, [0, 1] scale


@dataclass(frozen=True)
class ImageTransform:
    """Decode-side preprocessing: every output image is ``size`` x ``size`` pixels.

    Training: resize the shorter side to ``resize`` (if set), zero-pad by ``pad``, random
    ``size`` crop, random horizontal flip (if ``flip``). Evaluation: resize (if set), then the
    centre ``size`` crop. ``resize=None, pad=4`` is the CIFAR recipe of the device-resident
    batches (:data:`ts3ray.data.core.batches.CROP_PADDING`).
    """

    size: int
    resize: int | None = None
    pad: int = 0
    flip: bool = True

    def __post_init__(self):
        if self.size < 1 or self.pad < 0 or (self.resize is not None and self.resize < self.size):
            raise ValueError(f"bad transform {self}: need size >= 1, pad >= 0, resize >= size")

    @property
    def pads(self) -> bool:
        """Random crops are taken from the zero-padded image (integer offsets 0..2*pad)."""
        return self.resize is None and self.pad > 0


@dataclass(frozen=True)
class FileSplit:
    """Images named by path (relative to ``root``), with int64 labels."""

    paths: np.ndarray     # fixed-width bytes ('S'), so forked loader workers share it copy-free
    labels: torch.Tensor  # int64 (N,)

    def __post_init__(self):
        if self.paths.ndim != 1 or self.paths.dtype.kind != "S":
            raise ValueError(f"paths must be a 1-D bytes array, got {self.paths.dtype} {self.paths.shape}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (len(self.paths),):
            raise ValueError(f"labels must be int64 ({len(self.paths)},), got {self.labels.dtype} "
                             f"{tuple(self.labels.shape)}")

    @classmethod
    def of(cls, paths: list[str], labels) -> "FileSplit":
        array = np.array([p.encode() for p in paths], dtype="S") if paths else np.zeros(0, dtype="S1")
        return cls(array, torch.as_tensor(labels, dtype=torch.int64).reshape(len(paths)))

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: torch.Tensor) -> "FileSplit":
        """The samples at ``indices`` (e.g. the training part of a hold-out split), in that order."""
        index = torch.as_tensor(indices, dtype=torch.int64).cpu()
        return FileSplit(self.paths[index.numpy()], self.labels[index])

    def path(self, root: Path, i: int) -> Path:
        return Path(root) / self.paths[i].decode()


@dataclass(frozen=True)
class FileImageDataset:
    """A dataset whose images stay on disk; see the module docstring."""

    name: str
    root: Path
    train: FileSplit
    train_true: torch.Tensor            # int64 (N,), UNKNOWN_LABEL where not known
    tests: dict[str, FileSplit]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    transform: ImageTransform
    val: FileSplit | None = None
    in_channels: int = 3
    notes: tuple[str, ...] = field(default=())  # e.g. counts of skipped list entries

    def __post_init__(self):
        if self.train_true.dtype != torch.int64 or self.train_true.shape != (len(self.train),):
            raise ValueError(f"{self.name}: train_true must be int64 ({len(self.train)},)")
        if not self.tests:
            raise ValueError(f"{self.name}: at least one test set is needed")
        splits = {"train": self.train, "val": self.val, **self.tests}
        for split_name, split in splits.items():
            if split is not None and len(split) and (int(split.labels.min()) < 0
                                                     or int(split.labels.max()) >= self.num_classes):
                raise ValueError(f"{self.name}: {split_name} labels outside 0..{self.num_classes - 1}")

    @property
    def image_size(self) -> tuple[int, int]:
        return self.transform.size, self.transform.size

    @property
    def test_names(self) -> tuple[str, ...]:
        return tuple(self.tests)

    def decoded_bytes(self) -> int:
        """uint8 bytes of the training set decoded at the network's input size."""
        return len(self.train) * self.in_channels * self.transform.size ** 2


# -- reading the list files of a published layout ---------------------------------------------

def require(path: Path, hint: str, *, directory: bool = False) -> Path:
    """``path`` if it exists (a non-empty file, or a directory); DataMissingError otherwise."""
    ok = path.is_dir() if directory else (path.is_file() and path.stat().st_size > 0)
    if not ok:
        kind = "folder" if directory else "file"
        raise DataMissingError(f"{path} ({kind}) is missing{'' if directory else ' or empty'}; {hint}")
    return path


def read_text(path: Path, hint: str, contain: Contained) -> str:
    """A list file's text (a non-empty UTF-8 file); one DataFileError line if it is not text."""
    data = require(path, hint).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataFileError(f"{contain.dataset} list {path} line {line}: not UTF-8 text ({err.reason} at byte "
                            f"{err.start:,}); {hint}") from None


def read_label_list(path: Path, hint: str, contain: Contained, classes: range, *, opened: range | None = None,
                    prefix: str = "", what: str = "") -> list[tuple[str, int]]:
    """Lines ``<path> <integer label>`` (blank lines skipped), every label in ``classes`` and
    every path contained (:mod:`ts3ray.data.core.contained`): :meth:`~Contained.path` (``prefix``
    + path) where the label is in ``opened`` (the images the dataset reads), else only
    :meth:`~Contained.name`. A malformed line is a DataMissingError (a damaged download), a
    label or path out of bounds a DataFileError; both name the file and the line."""
    text = read_text(path, hint, contain)
    lexical = not contain.lexically_clean(text)
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not (parts[1].isascii() and parts[1].lstrip("-").isdigit()):
            raise DataMissingError(f"{path}:{number}: expected '<image path> <integer label>', "
                                   f"got {shorten(repr(line.strip()), 160)}; {hint}")
        entry, label = parts[0], int(parts[1])
        if label not in classes:
            raise DataFileError(f"{contain.dataset} list {path} line {number}: label {shorten(parts[1], 40)} of "
                                f"{shorten(repr(entry), 120)} is outside {classes.start}..{classes.stop - 1} "
                                f"({what or f'{contain.dataset} has {len(classes)} classes'})")
        if opened is not None and label in opened:
            contain.path(entry, path, number, prefix, lexical=lexical)
        elif lexical:
            contain.name(entry, path, number)
        entries.append((entry, label))
    return entries


def read_key_list(path: Path, hint: str, contain: Contained) -> list[str]:
    """One image path per line (blank lines skipped), each contained (:meth:`Contained.path`)."""
    text = read_text(path, hint, contain)
    lexical = not contain.lexically_clean(text)
    return [contain.path(line.strip(), path, number, lexical=lexical)
            for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
