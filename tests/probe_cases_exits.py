"""Probe cases of issue 22 item 4 (exit codes of a sweep driver); the checks themselves are
tests/test_exit_codes.py's, run here as faults."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_exit_codes as cases  # noqa: E402

BAD_INPUTS = [
    ("sweep --storage with an unknown scheme",
     ["sweep", "sparsity", "--storage", "nosuchscheme://x/y", "epochs=2", "e1=1", "e2=1",
      "rounds=1"], 2, "is not usable: Unrecognized filesystem type", "err"),
]


def build(world: Path) -> None:
    """Nothing to build: the inputs above need no files."""


def _fault(test):
    def probe(tmp: Path) -> tuple[bool, str]:
        folder = tmp / f"exits-{test.__name__}"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            test(folder)
        except AssertionError as err:
            return False, f"{test.__name__}: {str(err).splitlines()[0] if str(err) else 'failed'}"
        return True, test.__name__
    return probe


FAULTS = {
    "Ctrl-C to a sweep driver: 130, then --resume, every row once":
        _fault(cases.test_ctrl_c_gives_130_and_resume_finishes_with_every_row_once),
    "SIGTERM to a sweep driver blocked in a gs:// call: 143 within 5 s":
        _fault(cases.test_sigterm_during_a_blocked_gcs_call_exits_143_within_5_s),
}
