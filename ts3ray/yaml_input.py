"""Bounded reading of YAML/JSON files given by the user (`--config`, `cluster check`).

PyYAML's ``safe_load`` runs no code, but a 400-byte file of nested aliases ("billion
laughs") stands for 10**9 values: printing, validating or copying it exhausts memory or
never ends. Here a file is read only if it is at most ``MAX_BYTES`` bytes of UTF-8 text and
its node graph, with every alias expanded, holds at most ``MAX_VALUES`` values; the size is
counted on the graph (each shared node once), so the check itself is cheap. Every problem
is one :class:`YamlInputError` line.
"""
from __future__ import annotations

import os
import stat
from typing import Any

import yaml

from ts3ray.errors import UserError, one_line

MAX_BYTES = 1 << 20  # 1 MiB: a cluster file is a few KB, a run config a few hundred bytes
MAX_VALUES = 100_000  # scalars, lists and mappings after alias expansion


class YamlInputError(UserError):
    """The file cannot be read as a bounded YAML document; the message names the file."""


def read_text_file(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> str:
    """The file's UTF-8 text, at most ``max_bytes`` bytes; YamlInputError otherwise."""
    where = os.fspath(path)
    try:
        with open(where, "rb") as fh:
            if stat.S_ISDIR(os.fstat(fh.fileno()).st_mode):
                raise IsADirectoryError(21, "Is a directory", where)
            data = fh.read(max_bytes + 1)
    except IsADirectoryError:
        raise YamlInputError(f"{where}: is a directory, not a file") from None
    except OSError as err:
        raise YamlInputError(f"{where}: cannot read: {err.strerror or err}") from None
    if len(data) > max_bytes:
        raise YamlInputError(f"{where}: larger than {max_bytes} bytes; not read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise YamlInputError(f"{where}: not UTF-8 text (byte {err.start} is "
                             f"{data[err.start]:#04x}); is it a binary file?") from None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def expanded_size(root: yaml.Node, limit: int = MAX_VALUES) -> int:
    """Values in the document with every alias expanded (capped at limit + 1); ValueError
    if a node contains itself. Iterative, each distinct node visited once."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # the current path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = min(limit + 1, 1 + sum(sizes[id(c)] for c in _children(node)))
            continue
        if key in sizes:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise ValueError("an alias refers to a node that contains it")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    what = getattr(err, "problem", None) or str(err).splitlines()[0]
    return one_line(f"{where}{what}", 200)


def parse_yaml(text: str, where: str, *, max_values: int = MAX_VALUES) -> Any:
    """One YAML document (JSON included) as Python values, bounded; YamlInputError if not."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if expanded_size(node, max_values) > max_values:
            raise YamlInputError(f"{where}: expands to more than {max_values} values "
                                 "(YAML aliases); not read")
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise YamlInputError(f"{where}: YAML error: {_yaml_problem(err)}") from None
    except ValueError as err:
        raise YamlInputError(f"{where}: not read: {err}") from None
    except RecursionError:
        raise YamlInputError(f"{where}: nested too deeply; not read") from None
    finally:
        loader.dispose()


def read_yaml_file(path: str | os.PathLike) -> Any:
    """Read and parse a bounded YAML/JSON file; YamlInputError (one line) otherwise."""
    return parse_yaml(read_text_file(path), os.fspath(path))
