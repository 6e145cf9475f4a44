"""scikit-learn's bundled 8x8 handwritten digits: always available offline."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ts3ray.data.core.dataset import ImageDataset, channel_stats

TEST_FRACTION = 0.2
PIXEL_MAX = 16  # load_digits pixels are integers 0..16


@dataclass(frozen=True)
class DigitsSource:
    """1797 digits, a stratified 80/20 train/test split fixed by ``seed``.

    Pixels 0..16 are scaled to uint8 0..255. mean/std are computed from the train split
    (one channel), so they depend slightly on ``seed``.
    """

    name: str = "digits"
    num_classes: int = 10

    def check(self, root: Path) -> None:
        """Bundled with scikit-learn: nothing to check."""

    def download(self, root: Path) -> None:
        """Bundled with scikit-learn: nothing to download."""

    def load(self, root: Path, seed: int = 0) -> ImageDataset:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        pixels = np.rint(bunch.data * (255.0 / PIXEL_MAX)).astype(np.uint8).reshape(-1, 1, 8, 8)
        labels = bunch.target.astype(np.int64)
        train_idx, test_idx = train_test_split(
            np.arange(len(labels)), test_size=TEST_FRACTION, stratify=labels, random_state=seed
        )
        x, y = torch.from_numpy(pixels), torch.from_numpy(labels)
        train_x = x[torch.from_numpy(train_idx)]
        mean, std = channel_stats(train_x)
        return ImageDataset(self.name, train_x, y[torch.from_numpy(train_idx)],
                            x[torch.from_numpy(test_idx)], y[torch.from_numpy(test_idx)],
                            self.num_classes, mean, std, augment=False)


DIGITS = DigitsSource()
