"""The `device` value: its syntax (checked with the config) and whether it exists here.

Allowed: ``auto``, ``cpu``, ``cuda`` and ``cuda:N``. Syntax is checked everywhere a config
is validated; existence only where the run happens (``ts3ray run``, a sweep's trial), since
a sweep's driver may have no GPU while its workers do.
"""
from __future__ import annotations

import re

from ts3ray.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")  # no mps: the epoch statistics are float64

DEVICE_SYNTAX = re.compile(rf"({'|'.join(DEVICES)})(?::(0|[1-9][0-9]{{0,3}}))?")
ALLOWED = "auto, cpu, cuda or cuda:N (N a GPU index)"


def parse_device(text) -> tuple[str, int | None]:
    """('cuda', 1) for 'cuda:1', ('cpu', None) for 'cpu'; ConfigError if malformed."""
    match = DEVICE_SYNTAX.fullmatch(text) if isinstance(text, str) else None
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise ConfigError("device", text, ALLOWED)
    index = match.group(2)
    return match.group(1), None if index is None else int(index)


def check_device_exists(text: str) -> None:
    """ConfigError unless the device can be used in this process (cuda needs a GPU)."""
    kind, index = parse_device(text)
    if kind != "cuda":
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ConfigError("device", text, "no CUDA GPU is available here; use device=cpu "
                          "or device=auto")
    if index is not None and index >= count:
        raise ConfigError("device", text, f"this machine has {count} CUDA GPU(s): "
                          f"cuda:0..cuda:{count - 1}")
