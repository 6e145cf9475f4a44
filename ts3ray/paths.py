"""Checks of the paths a command will read or write, done before anything starts.

Each problem is one UserError line naming the option, the path and what is wrong with it:
a file where a folder is needed (or the reverse), a folder that cannot be created because
something above it is a file or not writable, a folder that cannot be read. Writability is
tested by opening an anonymous temporary file in the folder (nothing visible is created),
so permissions, read-only mounts, ACLs and pseudo file systems all count as they will for
the real write; readability with ``os.access`` (effective ids).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ts3ray.errors import UserError

READ = os.R_OK | os.X_OK


def _access(path: Path, mode: int) -> bool:
    try:
        return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)
    except (OSError, ValueError):
        return False


def _writable(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):  # O_TMPFILE where available: no name
            return True
    except OSError:
        return False


def nearest_existing(path: Path) -> Path:
    """``path`` itself or its closest ancestor that exists (``.`` for a relative path)."""
    path = Path(path)
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def _check_creatable(path: Path, label: str) -> None:
    """``path`` does not exist: its nearest existing ancestor must be a writable folder."""
    above = nearest_existing(path.parent)
    if not above.is_dir():
        raise UserError(f"{label} {path}: cannot be created, {above} is a file, not a directory")
    if not _writable(above):
        raise UserError(f"{label} {path}: cannot be created, {above} is not writable")


def check_output_dir(path: str | os.PathLike, label: str) -> None:
    """A folder this command will write into (created if missing)."""
    path = Path(path)
    if "\0" in str(path):
        raise UserError(f"{label} {str(path)!r}: contains a NUL character")
    if os.path.lexists(path):
        if not path.is_dir():
            raise UserError(f"{label} {path} is a file, not a directory")
        if not _writable(path):
            raise UserError(f"{label} {path} is not writable")
        return
    _check_creatable(path, label)


def check_output_file(path: str | os.PathLike, label: str) -> None:
    """A file this command will write (atomically: its folder must be writable)."""
    path = Path(path)
    if "\0" in str(path):
        raise UserError(f"{label} {str(path)!r}: contains a NUL character")
    if path.is_dir():
        raise UserError(f"{label} {path} is a directory; give a file name")
    parent = path.parent
    if os.path.lexists(parent):
        if not parent.is_dir():
            raise UserError(f"{label} {path}: {parent} is a file, not a directory")
        if not _writable(parent):
            raise UserError(f"{label} {path}: {parent} is not writable")
        return
    _check_creatable(parent, label)


def check_input_dir(path: str | os.PathLike, label: str) -> None:
    """A folder this command reads from, when it exists (missing files are reported by the
    reader, with how to obtain them)."""
    path = Path(path)
    if "\0" in str(path):
        raise UserError(f"{label} {str(path)!r}: contains a NUL character")
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        raise UserError(f"{label} {path} is a file, not a directory")
    if not _access(path, READ):
        raise UserError(f"{label} {path} is not readable")
