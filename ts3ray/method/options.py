"""`method_options`: a competitor's options as text, typed by its options dataclass.

`parse_options("lam=0.5,t_k=5", JocorOptions, "jocor")` -> {"lam": 0.5, "t_k": 5}; an unknown
key, a key given twice, a value of the wrong type or a non-finite number is one ConfigError
line. `canonical(options)` writes every field of a resolved options object back as
"key=value,..." sorted by key: the form a RunConfig keeps, so that `run_id` hashes the
resolved values (a changed default changes the id) and every Parquet row says what ran.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from ts3ray.errors import ConfigError
from ts3ray.method.base import option_fields
from ts3ray.values import format_value, parse_text


def split_options(text: str) -> list[str]:
    """Items of "a=1,b=2" (commas and/or spaces); an empty item (`a=1,,b=2`) is refused."""
    text = str(text).strip()
    if not text:
        return []
    items = re.split(r"\s*,\s*|\s+", text)
    if "" in items:
        raise ConfigError("method_options", text, "key=value items separated by single commas "
                          "(an empty item between two commas)")
    return items


def parse_options(text: str, cls: type | None, method: str) -> dict[str, Any]:
    """Typed overrides from `text` (see module docstring)."""
    types = option_fields(cls)
    out: dict[str, Any] = {}
    for item in split_options(text):
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise ConfigError("method_options", item, "key=value items separated by commas")
        if key not in types:
            known = ", ".join(types) or "none"
            raise ConfigError(key, raw, f"unknown option of {method}; known: {known}")
        if key in out:
            raise ConfigError("method_options", text, f"{key} given once (it is given twice)")
        out[key] = parse_text(key, raw, types[key], none_words=("", "none", "off"))
    return out


def canonical(options: Any) -> str:
    """Every field of a resolved options dataclass as "key=value,...", sorted by key."""
    if options is None:
        return ""
    items = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    return ",".join(f"{k}={format_value(items[k])}" for k in sorted(items))


def check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)
