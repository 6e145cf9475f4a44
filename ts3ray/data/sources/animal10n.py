"""ANIMAL-10N (Song et al., SELFIE, ICML 2019) read from its published image layout.

Layout read (``<data_root>/ANIMAL-10N/``)::

    training/<label>_<id>.jpg    50,000 images, 64 x 64 RGB
    testing/<label>_<id>.jpg      5,000 images

The label is the integer before the first underscore of the file name (0..9: five pairs of
confusing animals). The training labels are the human labels as published, with an estimated
noise rate of about 8% (paper Sec. IV-A); their clean labels are unknown. The test labels are
clean. Files are listed in sorted name order, so indices are stable.

Obtain the data from the ANIMAL-10N page of KAIST's Data Mining Lab
(https://dm.kaist.ac.kr/datasets/animal-10n/, request form) and unpack the image version so
that ``training/`` and ``testing/`` lie directly in ``<data_root>/ANIMAL-10N/``. Nothing is
downloaded by ts3ray.

Preprocessing: the paper does not state it; ts3ray uses the CIFAR recipe of the official code
(random crop of the 4-pixel zero-padded 64 x 64 image + horizontal flip) and ImageNet channel
statistics. At 614 MB of uint8 pixels the training set fits on a GPU, so by default it is
decoded once and served by the device-resident batches (see ts3ray.data.core.placement).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ts3ray.data.core.contained import Contained
from ts3ray.data.core.contained import Contained
from ts3ray.data.core.dataset import ImageDataset
from ts3ray.data.core.files import (IMAGENET_MEAN, IMAGENET_STD, UNKNOWN_LABEL, FileImageDataset, FileSplit,
                               ImageTransform, require)
from ts3ray.errors import DataMissingError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Animal10NSource:
    name: str = "animal10n"
    folder: str = "ANIMAL-10N"
    num_classes: int = 10
    published_sizes: tuple[int, int] = (50_000, 5_000)
    transform: ImageTransform = ImageTransform(size=64, pad=4, flip=True)

    def hint(self, root: Path) -> str:
        return (f"request ANIMAL-10N from https://dm.kaist.ac.kr/datasets/animal-10n/ and unpack it so that "
                f"training/ and testing/ lie in {Path(root) / self.folder}/")

    def check(self, root: Path) -> None:
        """Both folders hold images named by label, none a symlink out of the dataset folder."""
        self.load_files(root)

    def _require(self, root: Path) -> None:
        for split in ("training", "testing"):
            folder = require(Path(root) / self.folder / split, self.hint(root), directory=True)
            if next(folder.iterdir(), None) is None:
                raise DataMissingError(f"{folder} is empty; {self.hint(root)}")

    def download(self, root: Path) -> None:
        raise DataMissingError(f"ANIMAL-10N cannot be downloaded automatically; {self.hint(root)}")

    def _split(self, root: Path, split: str, contain: Contained) -> FileSplit:
        folder = Path(root) / self.folder / split
        names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        labels = []
        for name in names:
            head = name.split("_", 1)[0]
            if "_" not in name or not (head.isascii() and head.isdigit()) or int(head) >= self.num_classes:
                raise DataMissingError(f"{folder / name}: expected a name '<label 0..{self.num_classes - 1}>_<id>"
                                       f".jpg'; {self.hint(root)}")
            labels.append(int(head))
        if not names:
            raise DataMissingError(f"{folder} holds no .jpg/.png images; {self.hint(root)}")
        return FileSplit.of([contain.path(name, folder, None, prefix=f"{split}/") for name in names], labels)

    def load_files(self, root: Path) -> FileImageDataset:
        self._require(root)
        contain = Contained(self.name, Path(root) / self.folder)
        train, test = self._split(root, "training", contain), self._split(root, "testing", contain)
        notes = tuple(f"{split} holds {n:,} images; the published set has {want:,}"
                      for split, n, want in zip(("training/", "testing/"), (len(train), len(test)),
                                                self.published_sizes) if n != want)
        return FileImageDataset(self.name, Path(root) / self.folder, train,
                                torch.full((len(train),), UNKNOWN_LABEL, dtype=torch.int64),
                                {"test": test}, self.num_classes, IMAGENET_MEAN, IMAGENET_STD,
                                self.transform, notes=notes)

    def load(self, root: Path, seed: int = 0) -> ImageDataset:
        """Decoded into tensors; ``train_y`` holds the published (noisy) training labels."""
        from ts3ray.data.core.placement import materialise

        return materialise(self.load_files(root)).dataset


ANIMAL10N = Animal10NSource()
