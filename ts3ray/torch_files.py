"""`torch.save` whose write failures surface as the OSError that caused them.

torch's zip writer turns a failed write (full disk, quota, file size limit) into a
``RuntimeError: [enforce fail at inline_container.cc] unexpected pos ...``, which says
nothing about the disk. Saving through a file object that remembers the OSError of its
last write lets the CLI print its usual one line (``No space left on device: PATH``).
"""
from __future__ import annotations

from typing import Any, BinaryIO


class _WriteErrorKeeper:
    """A binary file's `write`/`flush`, keeping the first OSError a write raised."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self.fh.write(data)
        except OSError as err:
            self.error = self.error or err
            raise

    def flush(self) -> None:
        self.fh.flush()


def save(obj: Any, stream: BinaryIO, name: str) -> None:
    """`torch.save(obj, stream)`; a failed write raises OSError naming `name` (the file)."""
    import torch

    sink = _WriteErrorKeeper(stream)
    try:
        torch.save(obj, sink)
    except RuntimeError:
        if sink.error is None:
            raise
        err = sink.error
        raise OSError(err.errno, err.strerror, name) from None
