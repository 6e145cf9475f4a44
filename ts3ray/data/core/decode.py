"""Decode one image file and turn it into a network input of fixed size (uint8, C x S x S).

Decoding uses torchvision.io (libjpeg-turbo / libpng on the CPU; nvJPEG on a CUDA device for
a batch of JPEGs, :func:`decode_jpegs_on`). The geometric steps are plain tensor operations,
so the same function runs in a DataLoader worker on the CPU and in the main process on the
GPU. Normalisation is left to the batcher (on the device, in batch): a uint8 image is a
quarter of the float32 one to move.

Random choices are never drawn here: the caller passes each sample's crop offsets and flip,
drawn per epoch from the seeded generator (see :mod:`ts3ray.data.core.streaming`), so a sample's
pixels do not depend on which worker processed it.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_image, decode_jpeg
from torchvision.transforms.v2 import functional as TF

from ts3ray.data.core.files import ImageTransform
from ts3ray.errors import DataMissingError

JPEG_MAGIC = b"\xff\xd8\xff"


def read_bytes(path: Path) -> torch.Tensor:
    """The file's bytes as a uint8 tensor; DataMissingError naming the path if unreadable."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise DataMissingError(f"{path} cannot be read ({err.strerror or err})") from None
    if not data:
        raise DataMissingError(f"{path} is empty")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def is_jpeg(encoded: torch.Tensor) -> bool:
    return bytes(encoded[:3].tolist()) == JPEG_MAGIC


def decode(encoded: torch.Tensor, path: Path | str = "<bytes>") -> torch.Tensor:
    """JPEG/PNG (any format torchvision reads) -> uint8 RGB (3, H, W) on the CPU."""
    try:
        return decode_image(encoded, mode=ImageReadMode.RGB)
    except RuntimeError as err:
        raise DataMissingError(f"{path} is not a readable image ({' '.join(str(err).split())})") from None


def decode_jpegs_on(encoded: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """A batch of JPEG byte tensors decoded in one call on ``device`` (nvJPEG on CUDA)."""
    return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)


def resize_shorter(image: torch.Tensor, side: int) -> torch.Tensor:
    """Shorter side to ``side`` pixels, aspect kept (torchvision ``Resize(int)``, antialiased)."""
    if min(image.shape[-2:]) == side:
        return image
    return TF.resize(image, [side], antialias=True)


def _crop_offsets(height: int, width: int, size: int, where: tuple[float, float]) -> tuple[int, int]:
    """Top-left corner of a ``size`` crop; ``where`` = fractions in [0, 1) of the free range."""
    free_y, free_x = height - size, width - size
    return min(int(where[0] * (free_y + 1)), free_y), min(int(where[1] * (free_x + 1)), free_x)


def train_view(image: torch.Tensor, t: ImageTransform, offset: tuple[float, float], flip: bool) -> torch.Tensor:
    """The training input: resize, pad, crop at ``offset``, flip.

    With ``t.pads`` the offsets are the integers 0..2*pad of the padded image, as in
    :func:`ts3ray.data.core.batches.crop_and_flip` (same draws give the same pixels); otherwise
    they are fractions of the free range of the resized image.
    """
    if t.resize is not None:
        image = resize_shorter(image, t.resize)
    if t.pads:
        image = F.pad(image, (t.pad, t.pad, t.pad, t.pad))
        top, left = int(offset[0]), int(offset[1])
    else:
        _check_fits(image, t)
        top, left = _crop_offsets(image.shape[-2], image.shape[-1], t.size, offset)
    out = image[..., top:top + t.size, left:left + t.size]
    if out.shape[-2:] != (t.size, t.size):
        raise ValueError(f"the image has {tuple(image.shape[-2:])} pixels after padding, fewer than "
                         f"the {t.size}x{t.size} input needs")
    return out.flip(-1) if flip else out


def eval_view(image: torch.Tensor, t: ImageTransform) -> torch.Tensor:
    """The evaluation input: resize (if set), then the centre ``size`` crop."""
    if t.resize is not None:
        image = resize_shorter(image, t.resize)
    _check_fits(image, t)
    top, left = (image.shape[-2] - t.size) // 2, (image.shape[-1] - t.size) // 2
    return image[..., top:top + t.size, left:left + t.size]


def _check_fits(image: torch.Tensor, t: ImageTransform) -> None:
    if min(image.shape[-2:]) < t.size:
        raise ValueError(f"the image has {tuple(image.shape[-2:])} pixels, fewer than the "
                         f"{t.size}x{t.size} input needs")
