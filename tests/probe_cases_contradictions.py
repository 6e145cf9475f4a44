"""Probe cases of issue 22 items 5-6 (tests/probe_hardening.py loads them): numbers checked
after parsing, trial counts before materialising, contradictions refused. The cases are
tests/test_contradictions.py's tables, with outputs under the probe's world folder."""
from __future__ import annotations

from pathlib import Path

from test_contradictions import RUN, RUN_CASES, SWEEP_CASES

BAD_INPUTS = []
for i, (name, extra, text) in enumerate(RUN_CASES):
    keys = {item.partition("=")[0] for item in extra}
    base = [item for item in RUN if item.partition("=")[0] not in keys]
    BAD_INPUTS.append((f"contradiction: {name}", [*base, *extra, "--out", f"{{t}}/c-run-{i}",
                                                  "--quiet"], 2, text, "err"))
for i, (name, argv, text) in enumerate(SWEEP_CASES):
    BAD_INPUTS.append((f"contradiction: {name}", [*argv, "--storage", f"{{t}}/c-st-{i}"], 2,
                       text, "err"))


def build(world: Path) -> None:
    """Nothing to write: every case reads only the bundled digits data."""
