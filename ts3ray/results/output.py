"""Atomic output files: write a temporary file next to the target, then rename it.

The one place that knows how temporary files are named (``.<target name>.<random>.tmp``,
hidden, in the target's folder): :func:`write_atomic` removes its temporary file on every
exit path it sees (errors, Ctrl-C, SIGTERM turned into an exception by the CLI), and
:func:`remove_temp_files` clears those a SIGKILL left behind, under the run folder's lock.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable

TEMP_SUFFIX = ".tmp"


def temp_path_for(target: str) -> str:
    """A hidden, unique temporary name in ``target``'s folder (local path or URI path)."""
    parent, slash, name = str(target).rpartition("/")
    return f"{parent}{slash}.{name}.{uuid.uuid4().hex}{TEMP_SUFFIX}"


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def remove_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files :func:`write_atomic` left in ``directory`` (not below)."""
    removed = []
    for path in Path(directory).iterdir():
        if is_temp_name(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_atomic(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)`, then move the temporary file onto `path` (no half files)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(str(target))
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
