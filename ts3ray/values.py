"""The one text parser of typed values: config keys (`key=value`), methods' options and
sweep grids all turn text into a field's type here (ConfigError, one line, otherwise)."""
from __future__ import annotations

from typing import Any

from ts3ray.errors import ConfigError


def parse_text(key: str, raw: str, kind, *, none_words=("", "none")) -> Any:
    """`raw` as a value of type `kind` (bool, int, float, float | None, tuple[int, ...], str):
    the one text parser of config values and methods' options; ConfigError otherwise."""
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
