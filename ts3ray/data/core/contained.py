"""The one place where a path read from a dataset's own files becomes a file to open.

A list file shipped with a dataset (Clothing1M's key and label lists, WebVision's file lists,
the ILSVRC12 synset list) or a file name found in a dataset folder (ANIMAL-10N) passes through
a :class:`Contained` of that dataset's folder before anything is read:

- :meth:`Contained.name` — lexical checks, no file system access: no NUL byte, not absolute,
  no ``..`` component. For entries that only name a label and are never opened (Clothing1M's
  ``*_label_kv.txt``, WebVision lines of the classes mini-WebVision leaves out);
- :meth:`Contained.path` — the same, then through the file system: the entry's folder
  resolved (symlinks followed) must lie inside the dataset folder, and so must the file
  itself where it is a symlink.

A refusal is one :class:`~ts3ray.errors.DataFileError` line (exit 2) naming the list file,
its line and the entry, e.g. ``clothing1m list /d/clothing1m/noisy_train_key_list.txt line 3:
'../../etc/passwd' has a '..' component ...``. The dataset folder itself may be a symlink (a
set kept on another disk): it is resolved first and containment is judged against the
resolved folder.

Cost: the string checks per entry, and once per distinct folder one ``resolve`` and one
``scandir`` (whose entries say whether they are symlinks without a ``stat`` per file); only
the symlinks found are resolved one by one. ``benchmarks/bench_lists.py`` times a 1M-line
Clothing1M list.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ts3ray.errors import DataFileError, shorten

_ABSOLUTE = re.compile(r"^\s*/", re.MULTILINE)  # a line whose path would be absolute


class Contained:
    """Paths relative to one dataset folder, refused unless they stay inside it."""

    def __init__(self, dataset: str, folder: Path):
        self.dataset, self.folder = dataset, Path(folder)
        self.root = self.folder.resolve()
        self._links: dict[str, frozenset[str]] = {}  # folder checked (relative) -> its symlinked entries

    def refuse(self, source: Path, line: int | None, entry: str, why: str) -> DataFileError:
        where = f"list {source} line {line}" if line is not None else f"folder {source}"
        return DataFileError(f"{self.dataset} {where}: {shorten(repr(entry), 160)} {why}")

    def name(self, entry: str, source: Path, line: int | None) -> str:
        """``entry``, refused if it holds a NUL byte, is absolute or has a ``..`` component."""
        if "\0" in entry:
            raise self.refuse(source, line, entry, "holds a NUL byte; a path in a list file cannot")
        if entry.startswith("/"):
            raise self.refuse(source, line, entry, f"is an absolute path; list paths are relative to the "
                                                   f"dataset folder {self.folder}")
        if ".." in entry and ".." in entry.split("/"):
            raise self.refuse(source, line, entry, f"has a '..' component and may leave the dataset folder "
                                                   f"{self.folder}; list paths must stay inside it")
        return entry

    @staticmethod
    def lexically_clean(text: str) -> bool:
        """Whether no line of ``text`` can fail :meth:`name` (no NUL byte, no ``..``, no line
        starting with ``/``): one scan of the whole file instead of one check per line."""
        return "\0" not in text and ".." not in text and _ABSOLUTE.search(text) is None

    def path(self, entry: str, source: Path, line: int | None, prefix: str = "", *, lexical: bool = True) -> str:
        """``prefix + entry`` (relative to the dataset folder) once :meth:`name` accepts
        ``entry`` (skipped with ``lexical=False``, where :meth:`lexically_clean` has passed the
        whole file) and the path resolves inside the dataset folder."""
        if lexical:
            self.name(entry, source, line)
        relative = prefix + entry
        folder, _, base = relative.rpartition("/")
        links = self._links.get(folder)
        if links is None:
            links = self._links[folder] = self._folder(folder, entry, source, line)
        if base in links:
            target = self._resolve(relative, entry, source, line)
            if not self._inside(target):
                raise self.refuse(source, line, entry, f"is a symlink to {target}, outside the dataset folder "
                                                       f"{self.folder}")
        return relative

    def _folder(self, folder: str, entry: str, source: Path, line: int | None) -> frozenset[str]:
        """The names of the symlinks in ``folder`` once it resolves inside the dataset folder."""
        target = self._resolve(folder, entry, source, line)
        if not self._inside(target):
            raise self.refuse(source, line, entry, f"lies in {folder}/, which resolves to {target}, outside the "
                                                   f"dataset folder {self.folder}")
        try:
            with os.scandir(target) as entries:
                return frozenset(e.name for e in entries if e.is_symlink())
        except OSError:  # missing or unreadable: nothing in it to follow (reading it says why)
            return frozenset()

    def _resolve(self, relative: str, entry: str, source: Path, line: int | None) -> Path:
        try:
            return (self.root / relative).resolve()
        except (OSError, RuntimeError) as err:  # a symlink loop
            raise self.refuse(source, line, entry, f"cannot be resolved ({type(err).__name__}: "
                                                   f"{shorten(str(err), 80)})") from None

    def _inside(self, target: Path) -> bool:
        return target == self.root or target.is_relative_to(self.root)
