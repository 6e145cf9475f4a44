"""Probe cases (tests/probe_hardening.py loads them): cluster files whose worker counts are
negative or out of order, written under the probe's world folder from the shipped files."""
from __future__ import annotations

from pathlib import Path

import yaml

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"
FILLED = {"CHANGE-ME-registry": "ghcr.io/you", "CHANGE-ME-ts3ray-bucket": "your-bucket"}


def _group(config: dict) -> dict:
    return config["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]


CASES = {  # file name -> (shipped file, change, text of the one line)
    "neg-replicas.yaml": ("rayjob.yaml", lambda c: _group(c).update(replicas=-2),
                          "replicas: -2 is not allowed: a whole number >= 0"),
    "max-under-min.yaml": ("rayjob.yaml", lambda c: _group(c).update(minReplicas=9) or _group(c).pop("replicas"),
                           "maxReplicas: 8 is smaller than minReplicas=9"),
    "neg-min-workers.yaml": ("gpu.yaml", lambda c: c["available_node_types"]["gpu_worker"]
                             .update(min_workers=-1),
                             "min_workers: -1 is not allowed: a whole number >= 0"),
}
BAD_INPUTS = [(f"cluster {name}", ["cluster", "check", f"{{t}}/{name}"], 2, text, "out")
              for name, (_, _, text) in CASES.items()]


def build(world: Path) -> None:
    for name, (shipped, change, _) in CASES.items():
        text = (CLUSTER / shipped).read_text()
        for placeholder, value in FILLED.items():
            text = text.replace(placeholder, value)
        config = yaml.safe_load(text)
        change(config)
        (world / name).write_text(yaml.safe_dump(config, sort_keys=False))
