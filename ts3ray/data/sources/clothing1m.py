"""Clothing1M (Xiao et al., CVPR 2015) read from its published annotation files.

Layout read (``<data_root>/clothing1m/``)::

    noisy_label_kv.txt         "<image path> <label>" per line: the noisy (web) labels
    clean_label_kv.txt         "<image path> <label>" per line: the clean (human) labels
    noisy_train_key_list.txt   one image path per line: the ~1M noisy training images
    clean_val_key_list.txt     the ~14k clean validation images
    clean_test_key_list.txt    the ~10.5k clean test images
    images/...                 the JPEG files; the paths in the files above are relative to
                               the dataset folder and begin with ``images/``

14 classes. Splits as in DivideMix's loader (facts, not code): training = the noisy training
keys with their noisy labels; ``val`` = the clean validation keys with their clean labels
(used for choices: best epoch, search objective; paper Table V "Best" = best validation
accuracy); test (``test``) = the clean test keys with their clean labels. Where a training image
also has a clean label, ``train_true`` holds it (label precision can be measured on those);
elsewhere it is -1. The paper samples no class-balanced subset per epoch (DivideMix does);
ts3ray trains on the whole noisy set.

Obtain the data by asking the authors (see https://github.com/Cysu/noisy_label) and unpack it
into ``<data_root>/clothing1m/``. Nothing is downloaded by ts3ray.

Preprocessing (DivideMix's Clothing1M numbers): resize the shorter side to 256, random
224 x 224 crop + horizontal flip for training; resize 256 + centre 224 crop for evaluation;
the dataset's channel statistics (0.6959, 0.6537, 0.6371) / (0.3113, 0.3192, 0.3214).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ts3ray.data.core.contained import Contained
from ts3ray.data.core.dataset import ImageDataset
from ts3ray.data.core.files import (UNKNOWN_LABEL, FileImageDataset, FileSplit, ImageTransform, read_key_list,
                               read_label_list, require)
from ts3ray.errors import DataMissingError

NOISY_KV, CLEAN_KV = "noisy_label_kv.txt", "clean_label_kv.txt"
TRAIN_KEYS, VAL_KEYS, TEST_KEYS = "noisy_train_key_list.txt", "clean_val_key_list.txt", "clean_test_key_list.txt"
MEAN, STD = (0.6959, 0.6537, 0.6371), (0.3113, 0.3192, 0.3214)


@dataclass(frozen=True)
class Clothing1MSource:
    name: str = "clothing1m"
    folder: str = "clothing1m"
    num_classes: int = 14
    transform: ImageTransform = ImageTransform(size=224, resize=256, flip=True)
    ships_clean_val: bool = True  # ts3ray.data.ships_clean_val: choices may use "clean_val"

    def hint(self, root: Path) -> str:
        return (f"obtain Clothing1M from its authors (https://github.com/Cysu/noisy_label) and unpack the "
                f"annotation files and images/ into {Path(root) / self.folder}/")

    def check(self, root: Path) -> None:
        """The files exist, every listed path stays in the folder and every label is one of the
        14 classes (the lists read in full: about 2 s for the 1M-line lists)."""
        self.load_files(root)

    def _require(self, root: Path) -> None:
        base = Path(root) / self.folder
        for name in (NOISY_KV, CLEAN_KV, TRAIN_KEYS, VAL_KEYS, TEST_KEYS):
            require(base / name, self.hint(root))
        require(base / "images", self.hint(root), directory=True)

    def download(self, root: Path) -> None:
        raise DataMissingError(f"Clothing1M cannot be downloaded automatically; {self.hint(root)}")

    def _labelled(self, base: Path, keys_file: str, labels: dict[str, int], kind: str, hint: str,
                  contain: Contained) -> tuple[FileSplit, list[str]]:
        keys = read_key_list(base / keys_file, hint, contain)
        missing = [k for k in keys if k not in labels]
        if missing:
            raise DataMissingError(f"{base / keys_file}: {len(missing):,} keys have no {kind} label, e.g. "
                                   f"{missing[0]!r}; {hint}")
        return FileSplit.of(keys, [labels[k] for k in keys]), keys

    def load_files(self, root: Path) -> FileImageDataset:
        self._require(root)
        base, hint = Path(root) / self.folder, self.hint(root)
        contain, classes = Contained(self.name, base), range(self.num_classes)
        noisy = dict(read_label_list(base / NOISY_KV, hint, contain, classes))  # label lookups: never opened
        clean = dict(read_label_list(base / CLEAN_KV, hint, contain, classes))
        train, keys = self._labelled(base, TRAIN_KEYS, noisy, "noisy", hint, contain)
        true = torch.tensor([clean.get(k, UNKNOWN_LABEL) for k in keys], dtype=torch.int64)
        val, _ = self._labelled(base, VAL_KEYS, clean, "clean", hint, contain)
        test, _ = self._labelled(base, TEST_KEYS, clean, "clean", hint, contain)
        return FileImageDataset(self.name, base, train, true, {"test": test}, self.num_classes, MEAN, STD,
                                self.transform, val=val)

    def load(self, root: Path, seed: int = 0) -> ImageDataset:
        """Refused with the reason: Clothing1M is read by the streaming path only."""
        from ts3ray.data.core.placement import materialise

        return materialise(self.load_files(root)).dataset


CLOTHING1M = Clothing1MSource()
