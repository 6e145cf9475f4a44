"""Where runs and sweeps keep their files: one module for locations, atomic writes and the
sweep layout (pyarrow filesystems only; no torch, no Ray).

* A *location* is a local path or a URI. `resolve(location)` gives a pyarrow filesystem and
  a path on it, with the same rules everywhere: `~` is expanded and local paths are made
  absolute; `file://` URIs are local; other URIs (`s3://bucket/prefix?region=us-east-1`,
  `gs://...`, `hdfs://...`) go through `pyarrow.fs.FileSystem.from_uri`, whose query string
  configures the filesystem and is not part of the path.
* `join(location, *parts)` makes a child location and keeps a URI's scheme and query string
  (`s3://b/p?region=x` + `name` -> `s3://b/p/name?region=x`).
* `write_atomic(location, write)` calls `write(binary_stream)`; readers see the old file or
  the new one, never half of it: on a local disk through a hidden temporary file in the same
  folder and a rename; on an object store (S3, GCS, ...) through one upload, which the store
  makes visible only when it is complete (no temporary object, no copy, no delete).
* `SweepLayout` is the layout of a sweep: `<storage>/<name>/` holds Ray Tune's experiment and
  `results/<table>/...` the Parquet rows (tune/results.py names the files).
* `STORAGE_ENV` (`TS3RAY_STORAGE`) names the default storage of sweeps.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable
from urllib.parse import urlsplit, urlunsplit

import pyarrow.fs as pafs

STORAGE_ENV = "TS3RAY_STORAGE"
DEFAULT_STORAGE = "ray_results"
TABLES = ("epochs", "levels")


def is_uri(location: str) -> bool:
    return "://" in str(location)


def _local_path(location: str) -> str:
    if str(location).startswith("file://"):
        location = urlsplit(str(location)).path
    return str(Path(location).expanduser().resolve())


def is_local(location: str) -> bool:
    return not is_uri(location) or str(location).startswith("file://")


def absolute(location: str) -> str:
    """A location that means the same from every working directory (trials run elsewhere):
    local paths absolute with `~` expanded, URIs unchanged."""
    return _local_path(location) if not is_uri(location) else str(location)


def resolve(location: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path on it) for a local path or URI (module docstring for the rules)."""
    location = str(location)
    if is_local(location):
        return pafs.LocalFileSystem(), _local_path(location)
    return pafs.FileSystem.from_uri(with_retry_limit(location))


# GCS retries a failing call for 15 minutes by default (no network, no credentials: a hang);
# S3 calls are already bounded (the AWS SDK's connect and request timeouts, 3 attempts).
GCS_RETRY_LIMIT_S = 10


def with_retry_limit(location: str) -> str:
    """A `gs://` URI with `retry_limit_seconds` unless the URI sets its own."""
    split = urlsplit(location)
    if split.scheme not in ("gs", "gcs") or "retry_limit_seconds=" in split.query:
        return location
    query = "&".join(q for q in (split.query, f"retry_limit_seconds={GCS_RETRY_LIMIT_S}") if q)
    return urlunsplit((split.scheme, split.netloc, split.path, query, split.fragment))


def join(location: str, *parts: str) -> str:
    """`location/part/...`, keeping a URI's scheme and query string."""
    parts = tuple(str(p).strip("/") for p in parts if str(p).strip("/"))
    location = str(location)
    if not is_uri(location):
        return str(Path(location, *parts))
    split = urlsplit(location)
    path = "/".join([split.path.rstrip("/"), *parts])
    return urlunsplit((split.scheme, split.netloc, path, split.query, split.fragment))


def parent(location: str) -> str:
    if not is_uri(location):
        return str(Path(location).parent)
    split = urlsplit(location)
    return urlunsplit((split.scheme, split.netloc, split.path.rstrip("/").rsplit("/", 1)[0],
                       split.query, split.fragment))


def exists(location: str) -> bool:
    fs, path = resolve(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


TEMP_SUFFIX = ".tmp"


def temp_path(target: Path) -> Path:
    """The hidden temporary file `write_atomic` writes before renaming it onto `target`."""
    return target.parent / f".{target.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}"


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def remove_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files `write_atomic` left in local `directory` (not below): only
    a SIGKILL leaves them; call it where no other writer can be at work (a locked folder)."""
    removed = []
    for path in Path(directory).iterdir():
        if is_temp_name(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_atomic(location: str, write: Callable[[BinaryIO], None]) -> str:
    """Write a file through `write(stream)` so that no reader sees it half-written."""
    fs, path = resolve(location)
    if isinstance(fs, pafs.LocalFileSystem):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(target)  # hidden, same folder
        try:
            with open(tmp, "wb") as stream:
                write(stream)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return str(target)
    with fs.open_output_stream(path) as stream:  # one upload, visible when complete
        write(stream)
    return location


def write_text_atomic(location: str, text: str) -> str:
    return write_atomic(location, lambda stream: stream.write(text.encode("utf-8")))


def read_bytes(location: str) -> bytes | None:
    """The whole file, or None when there is none."""
    fs, path = resolve(location)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        return stream.read()


def default_storage() -> str:
    return os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


@dataclass(frozen=True)
class SweepLayout:
    """The files of sweep `name` under `storage` (a local path or URI)."""

    storage: str
    name: str

    @property
    def experiment(self) -> str:
        """Ray Tune's experiment folder (its state, trial folders, checkpoints)."""
        return join(self.storage, self.name)

    @property
    def results(self) -> str:
        return join(self.experiment, "results")

    def table(self, table: str) -> str:
        return join(self.results, table)
