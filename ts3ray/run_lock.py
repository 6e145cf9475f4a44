"""An exclusive lock on a run folder, held by one `ts3ray run` for its whole life.

The lock is ``<folder>/.ts3ray.lock``: a file holding the holder's pid, host and start
time, locked with ``flock``. The kernel (or the NFS lock manager) drops an flock when its
process dies however it dies, so a lock file whose flock is free is stale and is simply
taken over; a second run into a held folder gets :class:`FolderLocked`, one line naming the
holder. On release the file is removed, and a folder the lock itself created is removed
again when nothing else was written into it.
"""
from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import socket
import sys
from pathlib import Path

from ts3ray.errors import UserError

LOCK_NAME = ".ts3ray.lock"


class FolderLocked(UserError):
    """Another process holds the folder's lock."""


def _holder_text(raw: str) -> str:
    try:
        info = json.loads(raw)
        return (f"{info.get('command', 'ts3ray')} (pid {info['pid']} on host {info['host']}, "
                f"since {info.get('started', '?')})")
    except (ValueError, KeyError, TypeError):
        return "another process"


class RunFolderLock:
    """``with RunFolderLock(path, label="--out"):`` owns ``path`` or raises FolderLocked."""

    def __init__(self, path: str | os.PathLike, *, label: str = "--out",
                 command: str = "ts3ray run"):
        self.path, self.label, self.command = Path(path), label, command
        self.file = self.path / LOCK_NAME
        self.created_folder = False
        self.took_over: str | None = None  # the stale holder's description, if any
        self._fd: int | None = None

    def acquire(self) -> "RunFolderLock":
        try:
            self.path.mkdir(parents=True)
            self.created_folder = True
        except FileExistsError:
            pass
        except OSError as err:
            raise UserError(f"{self.label} {self.path}: cannot be created "
                            f"({err.strerror or err})") from None
        while True:
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                raw = os.read(fd, 4096).decode("utf-8", "replace")
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                self._cleanup_folder()
                raise FolderLocked(
                    f"{self.label} {self.path} is in use by {_holder_text(raw)}; wait for it to "
                    f"finish or choose another {self.label}") from None
            if self._still_linked(fd):
                break
            os.close(fd)  # the previous holder removed the file between our open and flock
        previous = os.read(fd, 4096).decode("utf-8", "replace").strip()
        if previous:
            self.took_over = _holder_text(previous)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd
        return self

    def _still_linked(self, fd: int) -> bool:
        try:
            return os.stat(self.file).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.file.unlink(missing_ok=True)  # unlink while still holding the flock
        finally:
            os.close(self._fd)
            self._fd = None
            self._cleanup_folder()

    def _cleanup_folder(self) -> None:
        if self.created_folder:
            try:
                self.path.rmdir()  # only if empty: nothing was written
            except OSError:
                pass

    def __enter__(self) -> "RunFolderLock":
        self.acquire()
        if self.took_over:
            print(f"ts3ray: note: {self.label} {self.path}: took over the stale lock of "
                  f"{self.took_over}, which ended without releasing it", file=sys.stderr)
        return self

    def __exit__(self, *exc) -> None:
        self.release()
