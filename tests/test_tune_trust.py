"""--resume never hands Tune a sweep folder it cannot trust: a planted tuner.pkl runs no code."""
from __future__ import annotations

import os
import pickle

from ts3ray.tune.cli import run_sweep

TINY = ["--grid", "lam=0", "epochs=1", "e1=0", "e2=1", "rounds=0"]


class _Planted:
    """Unpickling this creates the marker file: the proof that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_resume_refuses_shared_or_planted_state_and_resumes_its_own(local_ray, tmp_path, capsys):
    args = ["--storage", str(tmp_path), "--name", "g", *TINY]
    assert run_sweep("grid", args) == 0
    os.chmod(tmp_path / "g", 0o777)  # anyone could have written Tune's pickles
    assert run_sweep("grid", [*args, "--resume"]) == 2
    assert "writable by group or others" in capsys.readouterr().err
    os.chmod(tmp_path / "g", 0o755)
    assert run_sweep("grid", [*args, "--resume"]) == 0  # its own, intact folder resumes
    capsys.readouterr()

    marker = tmp_path / "code-ran"
    (tmp_path / "g" / "tuner.pkl").write_bytes(pickle.dumps(_Planted(str(marker))))
    assert run_sweep("grid", [*args, "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not carry this machine's signature" in err[0], err
    assert not marker.exists()  # nothing was unpickled
