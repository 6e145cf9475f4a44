"""Where results came from: code version, library versions, machine, command line.

`collect(device)` is one dict of JSON values, recorded in a run's config.json, in the schema
metadata of every Parquet file (key `ts3ray.provenance`), in every trial's theta_0 ticket
file and in a sweep's manifest (ts3ray-sweep.json). Compacting files of different versions
keeps every distinct dict (a JSON list under the same key), so `ts3ray results info` can warn
that one results folder mixes code versions.

Torch-free: versions come from the installed distributions, the device's name and CUDA from
torch only when torch is already imported (the training process).
"""
from __future__ import annotations

import datetime
import functools
import json
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

KEY = "ts3ray.provenance"  # Parquet schema metadata key
PACKAGES = ("ts3ray", "torch", "torchvision", "ray", "optuna", "pyarrow")
# what must agree within one results folder ("mixes code versions")
VERSION_KEYS = ("git_commit", "git_dirty", *(f"{p}_version" for p in PACKAGES), "python_version")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def git_state() -> dict[str, Any]:
    """The commit and dirty flag of the checkout ts3ray is imported from (None outside one)."""
    here = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(here), *args], capture_output=True,
                                  text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None}


def device_state(device: str | None) -> dict[str, Any]:
    torch = sys.modules.get("torch")
    out: dict[str, Any] = {"device": device, "device_name": None, "cuda_version": None}
    if torch is None:
        return out
    out["cuda_version"] = torch.version.cuda
    if device and str(device).startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        out["device_name"] = torch.cuda.get_device_name(index)
    else:
        out["device_name"] = platform.processor() or platform.machine()
    return out


def collect(device: str | None = None, *, argv: list[str] | None = None,
            started_at: float | None = None) -> dict[str, Any]:
    """The provenance of this process (module docstring)."""
    when = datetime.datetime.fromtimestamp(started_at, datetime.timezone.utc) if started_at \
        else datetime.datetime.now(datetime.timezone.utc)
    return {
        **git_state(),
        **{f"{p}_version": _version(p) for p in PACKAGES},
        "python_version": platform.python_version(),
        **device_state(device),
        "hostname": socket.gethostname(),
        "argv": list(sys.argv if argv is None else argv),
        "started_at": when.isoformat(timespec="seconds"),
    }


def as_metadata(prov: dict[str, Any] | list[dict[str, Any]]) -> dict[bytes, bytes]:
    return {KEY.encode(): json.dumps(prov, sort_keys=True).encode()}


def from_metadata(meta: dict[bytes, bytes] | None) -> list[dict[str, Any]]:
    """The provenance dicts of one file's schema metadata ([] when it has none)."""
    raw = (meta or {}).get(KEY.encode())
    if raw is None:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    return value if isinstance(value, list) else [value]


def distinct(provs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for p in provs:
        key = json.dumps(p, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def merged_metadata(metas: list[dict[bytes, bytes] | None]) -> dict[bytes, bytes]:
    """Schema metadata for a file merged from files with `metas` (compaction)."""
    provs = distinct([p for m in metas for p in from_metadata(m)])
    if not provs:
        return {}
    return as_metadata(provs[0] if len(provs) == 1 else provs)


def version_mix(provs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Each version key with more than one value among `provs`: {key: [values]}."""
    out = {}
    for key in VERSION_KEYS:
        values = sorted({json.dumps(p.get(key)) for p in provs})
        if len(values) > 1:
            out[key] = [json.loads(v) for v in values]
    return out
