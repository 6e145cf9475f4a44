"""A dataset root given as a URI, synced once per machine into a local cache.

On a cluster, a `data_root` such as `s3://bucket/datasets` (or `gs://...`, or `file://` for a
shared mount) saves staging data on every node by hand: the first trial on a node copies the
whole prefix into `$TS3RAY_DATA_CACHE/<digest of the URI>` (default `~/.cache/ts3ray/data`),
and every later trial on that node reads the copy. Plain paths are used in place.

Concurrent trials on one node share one copy safely: an exclusive lock file per URI lets one
of them copy while the others wait; the copy goes to a temporary folder that is renamed into
place only when complete (a `.complete` marker inside), so no reader ever sees half a copy,
and a copy interrupted by a crash is discarded and redone. The dataset's own files are then
checked where the trial runs (sources.check_available), not only on the driver.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from pathlib import Path

import pyarrow.fs as pafs

from ts3ray import storage
from ts3ray.errors import DataMissingError

CACHE_ENV = "TS3RAY_DATA_CACHE"
DEFAULT_CACHE = "~/.cache/ts3ray/data"
COMPLETE = ".complete"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def cached_folder(uri: str) -> Path:
    return cache_root() / hashlib.sha256(uri.encode()).hexdigest()[:16]


def local_data_root(data_root: str) -> str:
    """`data_root` itself for a plain path; for a URI, its local copy (made once)."""
    if not storage.is_uri(data_root):
        return data_root
    target = cached_folder(data_root)
    if (target / COMPLETE).is_file():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one copier per node; the others wait here
        if not (target / COMPLETE).is_file():
            _copy(data_root, target)
    return str(target)


def check_remote_root(uri: str) -> None:
    """The cheap check a driver can make of a URI data_root: it names a folder it can see."""
    try:
        fs, path = storage.resolve(uri)
        kind = fs.get_file_info(path).type
    except ValueError as err:  # a malformed URI: bad input (exit 2)
        raise DataMissingError(f"data_root {uri} cannot be read: {str(err).splitlines()[0]}")
    except OSError as err:  # network, credentials, timeout: an operating-system failure (exit 1)
        from ts3ray.errors import RemoteStorageError

        raise RemoteStorageError(f"data_root={uri} cannot be reached: "
                                 f"{str(err).splitlines()[0]}") from None
    if kind != pafs.FileType.Directory:
        raise DataMissingError(f"data_root {uri} is not a folder of datasets; check the URI")


def _copy(uri: str, target: Path) -> None:
    fs, path = storage.resolve(uri)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        raise DataMissingError(f"data_root {uri} is not a folder of datasets; check the URI and "
                               "that this node may read it")
    staging = target.parent / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        pafs.copy_files(path, str(staging), source_filesystem=fs,
                        destination_filesystem=pafs.LocalFileSystem())
        (staging / COMPLETE).write_text(f"{uri}\n")
        shutil.rmtree(target, ignore_errors=True)  # an interrupted copy's leftovers
        os.rename(staging, target)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise DataMissingError(f"data_root {uri}: copying it into {target} failed: "
                               f"{str(err).splitlines()[0]}") from None
