"""The dataset registry: ``load_dataset(name)`` and cheap questions about a name.

Every entry ("source") provides ``num_classes``, ``check(root)`` (cheap, raises
DataMissingError), ``download(root)`` and ``load(root, seed) -> ImageDataset``. The real-world
sets read from image files (ANIMAL-10N, Clothing1M, WebVision-50) also provide
``load_files(root) -> FileImageDataset`` (:func:`load_file_dataset`); their ``load`` decodes
the images into tensors where the device-resident path can serve them (ANIMAL-10N) and
refuses otherwise.
"""
from __future__ import annotations

from pathlib import Path

from ts3ray.data.sources.animal10n import ANIMAL10N
from ts3ray.data.sources.clothing1m import CLOTHING1M
from ts3ray.data.core.dataset import ImageDataset
from ts3ray.data.sources.digits import DIGITS
from ts3ray.data.core.files import FileImageDataset
from ts3ray.data.sources.synthetic import SYNTHETIC, SYNTHETIC_CIFAR
from ts3ray.data.sources.torchvision_layout import CIFAR10, CIFAR100, FASHION_MNIST, MNIST
from ts3ray.data.sources.webvision import WEBVISION50
from ts3ray.errors import ConfigError, DataMissingError

SOURCES = {s.name: s for s in (DIGITS, MNIST, FASHION_MNIST, CIFAR10, CIFAR100, SYNTHETIC, SYNTHETIC_CIFAR,
                               ANIMAL10N, CLOTHING1M, WEBVISION50)}
DATASET_NAMES: tuple[str, ...] = tuple(SOURCES)
FILE_DATASET_NAMES: tuple[str, ...] = tuple(name for name, s in SOURCES.items() if hasattr(s, "load_files"))


def _source(name: str):
    try:
        return SOURCES[name]
    except (KeyError, TypeError):
        raise ConfigError("dataset", name, f"one of {', '.join(DATASET_NAMES)}") from None


def num_classes_of(name: str) -> int:
    """Number of classes of a registered dataset, without loading it."""
    return _source(name).num_classes


def ships_clean_val(name: str) -> bool:
    """Whether a dataset comes with its own clean validation set (e.g. Clothing1M)."""
    return bool(getattr(_source(name), "ships_clean_val", False))


def streams_only(name: str) -> str | None:
    """Why a registered dataset can never be device-resident (its source's augmentation:
    placement.transform_obstacle), without reading it; None where it can be."""
    from ts3ray.data.core.placement import transform_obstacle

    transform = getattr(_source(name), "transform", None)
    return transform_obstacle(transform) if transform is not None else None


def check_available(name: str, data_root: str | Path = "data") -> None:
    """Raise DataMissingError (one line: path + how to obtain it) unless ``name`` can load."""
    _source(name).check(Path(data_root))


def load_dataset(name: str, data_root: str | Path = "data", *, download: bool = False,
                 seed: int = 0) -> ImageDataset:
    """Load a registered dataset as whole uint8/int64 tensors.

    ``download=True`` fetches missing files with torchvision first (needs internet);
    without it nothing is ever downloaded and no other dataset is substituted.
    ``seed`` fixes the split of ``digits`` and the samples of the synthetic sets.
    """
    source, root = _source(name), Path(data_root)
    if download:
        try:
            source.check(root)
        except DataMissingError:
            source.download(root)
    dataset = source.load(root, seed)
    require_images(dataset.name, root, {"training": len(dataset.train_y), "test": len(dataset.test_y)})
    return dataset


def load_for_run(name: str, data_root: str | Path = "data", *, seed: int = 0
                 ) -> ImageDataset | FileImageDataset:
    """The dataset a run of ``name`` trains on: image files for FILE_DATASET_NAMES, whole
    tensors otherwise (``seed``: see load_dataset)."""
    if name in FILE_DATASET_NAMES:
        return load_file_dataset(name, data_root)
    return load_dataset(name, data_root, seed=seed)


def require_images(name: str, root: Path, counts: dict[str, int]) -> None:
    """DataMissingError for a split without images: training on it would record NaN
    accuracies (no test images) or nothing learnt (no training images) as results."""
    for split, count in counts.items():
        if count == 0:
            raise DataMissingError(
                f"dataset={name} under {root} has 0 {split} images; a run needs at least "
                f"one in each split: replace the files with complete ones")


def load_file_dataset(name: str, data_root: str | Path = "data") -> FileImageDataset:
    """A dataset read from image files, as paths + labels (see ts3ray.data.core.files)."""
    source = _source(name)
    if not hasattr(source, "load_files"):
        raise ConfigError("dataset", name, f"one read from image files: {', '.join(FILE_DATASET_NAMES)}")
    dataset = source.load_files(Path(data_root))
    require_images(name, Path(data_root), {"training": len(dataset.train),
                                           **{f"{t} test": len(s) for t, s in dataset.tests.items()}})
    return dataset
