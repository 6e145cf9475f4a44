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


def test_trust_storage_never_unpickles_a_planted_payload(local_ray, tmp_path, capsys):
    """A local sweep with a signature: --trust-storage switches no check off; the planted
    tuner.pkl is refused with and without it, and --trust-storage is refused itself."""
    args = ["--storage", str(tmp_path), "--name", "g", *TINY]
    assert run_sweep("grid", args) == 0
    capsys.readouterr()
    marker = tmp_path / "code-ran"
    (tmp_path / "g" / "tuner.pkl").write_bytes(pickle.dumps(_Planted(str(marker))))
    for extra in ([], ["--trust-storage"]):
        assert run_sweep("grid", [*args, "--resume", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        wanted = "not allowed with local --storage" if extra else "does not carry this machine"
        assert wanted in err[0], err
    # no record at all (deleted to pass for a foreign sweep): refused even with --trust-storage
    (tmp_path / "g" / "ts3ray-sweep.json").unlink()
    assert run_sweep("grid", [*args, "--resume"]) == 2
    assert "no valid signed ts3ray record" in capsys.readouterr().err
    assert not marker.exists()  # nothing was unpickled


def test_trust_storage_without_resume_is_refused(tmp_path, capsys):
    assert run_sweep("grid", ["--storage", str(tmp_path), "--name", "g", *TINY,
                              "--trust-storage"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--trust-storage applies only with --resume" in err[0], err
    assert not (tmp_path / "g").exists()


def test_object_store_resume_checks_the_signature_and_says_what_it_trusts(tmp_path):
    """On storage that cannot hold ownership (an object store) --trust-storage is needed and
    covers only the unsignable experiment state; the signature is still checked."""
    from ts3ray.tune import trust

    remote = "s3://bucket/sweeps/g"
    try:
        trust.check_folder(remote, trust_storage=False)
    except trust.UserError as err:
        assert "pass --trust-storage" in str(err)
    else:
        raise AssertionError("an object store resumed without --trust-storage")
    said = trust.check_folder(remote, trust_storage=True)
    assert "trusting that only you can write s3://bucket/sweeps/g" in said
    assert "experiment_state-" in said and "checked against their signature" in said
