"""`ts3ray results info RESULTS`: where the results came from (provenance.py), read from a
sweep's manifest, a run's config.json and the schema metadata of every Parquet file (their
footers only), with a warning when one results folder mixes code versions."""
from __future__ import annotations

import json
from typing import Any

from ts3ray import provenance, storage
from ts3ray.errors import UserError
from ts3ray.results import scan
from ts3ray.results.load import TABLES, resolve_table

MANIFEST = "ts3ray-sweep.json"  # tune/runner.py RECORD


def _json(location: str) -> Any:
    raw = storage.read_bytes(location)
    try:
        return json.loads(raw) if raw is not None else None
    except ValueError:
        return None


def gather(results: str) -> dict[str, list[dict[str, Any]]]:
    """{source: [provenance dicts]} for the sources RESULTS has."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, where in ((MANIFEST, results), (MANIFEST, storage.parent(results)),
                        ("config.json", results)):
        value = _json(storage.join(where, name))
        if isinstance(value, dict) and isinstance(value.get("provenance"), dict):
            found[name] = [value["provenance"]]
    for table in TABLES:
        try:
            fs, files = resolve_table(results, table)
        except UserError:
            continue
        provs = [p for f in files for p in provenance.from_metadata(scan.schema(fs, f).metadata)]
        if provs:
            found[f"{table} Parquet ({len(files)} file(s))"] = provenance.distinct(provs)
    if not found:
        raise UserError(f"RESULTS '{results}' records no provenance (written before ts3ray kept "
                        "it, or not a ts3ray results folder)")
    return found


SHOWN = ("git_commit", "git_dirty", *(f"{p}_version" for p in provenance.PACKAGES),
         "python_version", "device", "device_name", "cuda_version", "hostname", "started_at", "argv")


def report(results: str) -> tuple[list[str], list[str]]:
    """(lines to print, warnings)."""
    found = gather(results)
    every = provenance.distinct([p for provs in found.values() for p in provs])
    lines = []
    for source, provs in found.items():
        lines.append(f"{source}: {len(provs)} distinct provenance record(s)")
    first = every[0]
    lines += [f"  {key}: {' '.join(first[key]) if key == 'argv' else first.get(key)}"
              for key in SHOWN if key in first]
    mixed = provenance.version_mix(every)
    warnings = [f"RESULTS mixes code versions: {key} = {', '.join(map(str, values))}"
                for key, values in mixed.items()]
    return lines, warnings
