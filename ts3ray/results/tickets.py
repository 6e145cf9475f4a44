"""Lottery tickets as files: the masks of every IMP level and the initial weights they reset
to, in safetensors (no pickle: any program reads them with `safetensors`, numpy or torch).

A run or sweep keeps its tickets under `<results>/tickets/` (`<trial>` is the trial_id of
a sweep's trial, the run_id of a `ts3ray run`):

    theta0/<digest>.safetensors   initial weights theta_0 of every network, stored once per
                                  distinct content (sha256): the trials of a sweep that share
                                  a seed and an architecture share one file
    <trial>/trial.json            the trial's configuration, provenance and theta_0 digest
    <trial>/level-KKK.safetensors the masks of level K, bit-packed (numpy.packbits, 1 bit a
                                  weight), and with final weights on, the level's trained
                                  weights of the pruned networks

Per level only the masks are new (theta_0 is the same for every level), so a level costs
1 bit per prunable weight: LeNet-300-100 on digits (~50k prunable weights) 6.6 KB; theta_0
of S and D 408 KB, once per seed and architecture of the sweep.

`export()` makes one self-contained file of a trial and level: `mask/<net>/<param>` as
uint8 0/1 of the weight's shape, `theta0/<net>/<name>` the state each network starts that
level from (S: theta_0 with the mask applied, so pruned weights are exactly zero; a dense
peer: its own theta_0, or S's under dense_reset=from_sparse), `final/<net>/...` when the
level kept them, and the metadata (string values: config, level, sparsity, accuracies,
provenance). `ts3ray run ticket=FILE` retrains it. Torch-free: numpy and safetensors only.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ts3ray import storage
from ts3ray.errors import UserError, one_line

FORMAT = "ts3ray-ticket/1"
DIR = "tickets"
THETA0_DIR = "theta0"
TRIAL_FILE = "trial.json"
LEVEL_FILE = re.compile(r"^level-(\d{3,})\.safetensors$")
MASK, INIT, FINAL = "mask", "theta0", "final"


def level_name(level: int) -> str:
    return f"level-{level:03d}.safetensors"


def trial_location(tickets_root: str, trial: str) -> str:
    return storage.join(tickets_root, trial)


def _dumps(arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> bytes:
    from safetensors.numpy import save

    meta = {k: v if isinstance(v, str) else json.dumps(v, default=list)
            for k, v in metadata.items()}
    return save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=meta)


def _loads(data: bytes, where: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors.numpy import load

    try:
        arrays = load(data)
        size = int.from_bytes(data[:8], "little")  # the header: u64 length, then JSON
        meta = dict(json.loads(data[8:8 + size]).get("__metadata__") or {})
    except Exception as err:  # not safetensors, truncated header, ...
        raise UserError(f"{where} is not a ts3ray ticket ({one_line(f'{type(err).__name__}: {err}', 100)})") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{where} is not a ts3ray ticket (format {meta.get('format')!r}, "
                        f"expected {FORMAT})")
    return arrays, meta


def _flat(prefix: str, nets: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {f"{prefix}/{net}/{name}": value for net, values in nets.items()
            for name, value in values.items()}


def _nested(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        head, net, name = key.split("/", 2)
        if head == prefix:
            out.setdefault(net, {})[name] = value
    return out


# -- what the run core writes ---------------------------------------------------------
def encode_theta0(init: dict[str, dict[str, np.ndarray]]) -> tuple[str, bytes]:
    """(digest, bytes) of theta_0: the same weights give the same file and name."""
    import hashlib

    arrays = _flat(INIT, init)
    digest = hashlib.sha256()  # of the content: safetensors' header order is not fixed
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{value.dtype.str}:{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()[:20], _dumps(arrays, {"format": FORMAT, "kind": "theta0"})


def theta0_location(root: str, digest: str) -> str:
    return storage.join(root, THETA0_DIR, f"{digest}.safetensors")


def encode_level(masks: dict[str, dict[str, np.ndarray]], metadata: dict[str, Any],
                 final: dict[str, dict[str, np.ndarray]] | None = None) -> bytes:
    """Masks bit-packed (their shapes in the metadata), final weights as they are."""
    packed = {net: {name: np.packbits(np.asarray(m, dtype=bool).ravel()) for name, m in ms.items()}
              for net, ms in masks.items()}
    shapes = {net: {name: list(np.shape(m)) for name, m in ms.items()} for net, ms in masks.items()}
    arrays = {**_flat(MASK, packed), **_flat(FINAL, final or {})}
    return _dumps(arrays, {"format": FORMAT, "kind": "level", "mask_shapes": shapes, **metadata})


def unpack_masks(arrays: dict[str, np.ndarray], shapes: dict[str, dict[str, list[int]]]):
    out = {}
    for net, packed in _nested(MASK, arrays).items():
        out[net] = {}
        for name, bits in packed.items():
            shape = shapes[net][name]
            count = int(np.prod(shape)) if shape else 1
            out[net][name] = np.unpackbits(bits, count=count).reshape(shape).astype(bool)
    return out


# -- reading: stored tickets and exported ones -------------------------------------------
@dataclass
class Ticket:
    """A self-contained ticket (an exported file, or one assembled from a trial's files)."""

    level: int
    masks: dict[str, dict[str, np.ndarray]]  # bool, the weight's shape
    theta0: dict[str, dict[str, np.ndarray]]  # the state each network starts the level from
    config: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    final: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def sparsity(self) -> float:
        masks = self.masks.get("S", {})
        total = sum(m.size for m in masks.values())
        return 1.0 - sum(int(m.sum()) for m in masks.values()) / total if total else 0.0

    def encode(self) -> bytes:
        arrays = {**_flat(MASK, {n: {k: v.astype(np.uint8) for k, v in ms.items()}
                                 for n, ms in self.masks.items()}),
                  **_flat(INIT, self.theta0), **_flat(FINAL, self.final)}
        meta = {**self.metadata, "format": FORMAT, "kind": "ticket", "level": str(self.level),
                "sparsity": repr(self.sparsity), "config": self.config}
        return _dumps(arrays, meta)


def decode(data: bytes, where: str) -> Ticket:
    """An exported ticket (kind `ticket`)."""
    arrays, meta = _loads(data, where)
    if meta.get("kind") != "ticket":
        raise UserError(f"{where} is a stored {meta.get('kind')} file, not an exported ticket; "
                        "make one with `ts3ray ticket export`")
    masks = {n: {k: v.astype(bool) for k, v in ms.items()} for n, ms in _nested(MASK, arrays).items()}
    return Ticket(level=int(meta["level"]), masks=masks, theta0=_nested(INIT, arrays),
                  config=json.loads(meta["config"]), final=_nested(FINAL, arrays),
                  metadata={k: v for k, v in meta.items() if k not in ("config", "level")})


def read(location: str, what: str = "ticket") -> Ticket:
    named = f"{what}{location}" if what.endswith("=") else f"{what} {location}"  # ticket=FILE
    data = storage.read_bytes(location)
    if data is None:
        raise UserError(f"{named} does not exist (make one with `ts3ray ticket export`)")
    return decode(data, named)


def tickets_root(results: str) -> str:
    """`<x>/tickets` for a sweep folder, its results/ folder or a run folder."""
    for candidate in (storage.join(results, "results", DIR), storage.join(results, DIR)):
        if storage.exists(candidate):
            return candidate
    raise UserError(f"RESULTS '{results}' holds no tickets (expected results/{DIR}/ or {DIR}/; "
                    "runs and sweeps of ts3ray 0.1.0 before tickets kept none)")


def stored_levels(root: str) -> list[dict[str, Any]]:
    """One entry per stored level file: trial, level, bytes, location."""
    import pyarrow.fs as pafs

    fs, path = storage.resolve(root)
    out = []
    for info in fs.get_file_info(pafs.FileSelector(path, recursive=True)):
        match = LEVEL_FILE.match(info.base_name)
        if info.type == pafs.FileType.File and match:
            trial = info.path[len(path):].strip("/").split("/")[0]
            out.append({"trial": trial, "level": int(match.group(1)), "bytes": int(info.size)})
    digests = {}
    for trial in {r["trial"] for r in out}:
        digests[trial] = _trial_record(root, trial).get("theta0", "")
    sizes = {d: _size(fs, storage.resolve(theta0_location(root, d))[1]) for d in set(digests.values())}
    for r in out:
        r["theta0"] = digests[r["trial"]]
        r["theta0_bytes"] = sizes.get(r["theta0"], 0)
    return sorted(out, key=lambda r: (r["trial"], r["level"]))


def _size(fs, path: str) -> int:
    import pyarrow.fs as pafs

    info = fs.get_file_info(path)
    return int(info.size) if info.type == pafs.FileType.File else 0


def _trial_record(root: str, trial: str) -> dict[str, Any]:
    raw = storage.read_bytes(storage.join(trial_location(root, trial), TRIAL_FILE))
    try:
        return json.loads(raw) if raw is not None else {}
    except ValueError:
        return {}


def assemble(root: str, trial: str, level: int) -> Ticket:
    """The self-contained ticket of `trial` at `level` from its stored files."""
    where = trial_location(root, trial)
    level_data = storage.read_bytes(storage.join(where, level_name(level)))
    record = _trial_record(root, trial)
    init_data = (storage.read_bytes(theta0_location(root, record["theta0"]))
                 if record.get("theta0") else None)
    if level_data is None or init_data is None:
        known = sorted({r["trial"] for r in stored_levels(root)})
        levels = [r["level"] for r in stored_levels(root) if r["trial"] == trial]
        allowed = (f"levels of {trial}: {', '.join(map(str, levels))}" if levels else
                   f"trials: {', '.join(known[:8])}{' ...' if len(known) > 8 else ''}")
        raise UserError(f"no ticket of trial {trial!r} at level {level} ({allowed}; "
                        "see `ts3ray ticket list`)")
    arrays, meta = _loads(level_data, f"{where}/{level_name(level)}")
    init_arrays, _ = _loads(init_data, theta0_location(root, record["theta0"]))
    masks = unpack_masks(arrays, json.loads(meta["mask_shapes"]))
    init = _nested(INIT, init_arrays)
    config = record["config"]
    theta0 = {net: dict(state) for net, state in init.items()}
    if config.get("dense_reset") == "from_sparse" and level > 0 and "D" in theta0:
        theta0["D"] = dict(init["S"])  # Algorithm 2 as the official code: D = dense copy of S
    for net, ms in masks.items():  # pruned networks start from theta_0 * mask
        for name, m in ms.items():
            theta0[net][name] = (theta0[net][name] * m).astype(theta0[net][name].dtype)
    metadata = {k: v for k, v in meta.items() if k not in ("mask_shapes", "format", "kind", "level")}
    metadata.update({"trial": trial, "provenance": json.dumps(record.get("provenance", {}))})
    return Ticket(level=level, masks=masks, theta0=theta0, config=config, metadata=metadata,
                  final=_nested(FINAL, arrays))
