"""The in-memory image dataset every loader returns: whole splits as tensors."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageDataset:
    """uint8 images (N, C, H, W) and int64 clean labels for both splits.

    ``mean``/``std`` are per channel on the [0, 1] scale; ``augment`` asks the batcher for
    random crop (pad 4) + horizontal flip on training batches. ``val_x``/``val_y`` are a
    clean validation set for datasets that ship one (e.g. Clothing1M), else None.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None

    @property
    def has_clean_val(self) -> bool:
        return self.val_x is not None

    def __post_init__(self):
        if (self.val_x is None) != (self.val_y is None):
            raise ValueError(f"{self.name}: val_x and val_y come together")
        for split in ("train", "test") + (("val",) if self.has_clean_val else ()):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise ValueError(f"{self.name}: {split}_x must be uint8 (N, C, H, W), "
                                 f"got {x.dtype} {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise ValueError(f"{self.name}: {split}_y must be int64 ({x.shape[0]},), "
                                 f"got {y.dtype} {tuple(y.shape)}")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise ValueError(f"{self.name}: mean/std need one value per channel ({self.in_channels})")

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train_x.shape[2]), int(self.train_x.shape[3])


def channel_stats(x_uint8: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images on the [0, 1] scale."""
    x = x_uint8.to(torch.float64).div_(255.0).transpose(0, 1).reshape(x_uint8.shape[1], -1)
    return tuple(x.mean(1).tolist()), tuple(x.std(1).tolist())
