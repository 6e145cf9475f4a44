"""The one text parser of typed values: config keys (`key=value`), methods' options and
sweep grids all turn text into a field's type here (ConfigError, one line, otherwise)."""
from __future__ import annotations

import argparse
import math
from typing import Any

from ts3ray.errors import ConfigError

INT_LIMIT = 2**63  # integers are checked after parsing: |value| < 2**63 (int64)


def parse_text(key: str, raw: str, kind, *, none_words=("", "none")) -> Any:
    """`raw` as a value of type `kind` (bool, int, float, float | None, tuple[int, ...], str):
    the one text parser of config values and methods' options; ConfigError otherwise."""
    value = _parse(key, raw, kind, none_words)
    check_number(key, raw, value)
    return value


def check_number(key: str, raw: Any, value: Any) -> None:
    """The PARSED number is finite and an int64: `1e309` reads as inf and is refused here,
    not later as NaN (ConfigError naming the text and what it reads as)."""
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if isinstance(item, float) and not math.isfinite(item):
            raise ConfigError(key, raw, f"a finite number (it reads as {item})")
        if isinstance(item, int) and not isinstance(item, bool) and not -INT_LIMIT < item < INT_LIMIT:
            raise ConfigError(key, raw, "an integer below 2**63 in size")


def finite_float(text: str) -> float:
    """argparse type of every float flag: a finite number (`1e309`, `nan`, `inf` refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: a finite number "
                                         f"(it reads as {value})")
    return value


def _parse(key: str, raw: str, kind, none_words) -> Any:
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind == float | None:
            return None if raw.lower() in none_words else float(raw)
        if kind == tuple[int, ...]:
            return tuple(int(v) for v in raw.replace(",", " ").split())
    except ValueError:
        raise ConfigError(key, raw, f"expected {type_name(kind)}") from None
    return raw


def format_value(value: Any) -> str:
    """The text `parse_text` reads back as `value` (floats by repr, so they round-trip)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return " ".join(str(v) for v in value)
    return str(value)


def type_name(kind) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false"}
    if kind == tuple[int, ...]:
        return "a comma-separated list of integers"
    if kind == float | None:
        return "a number or 'auto'"
    return names.get(kind, "a string")
