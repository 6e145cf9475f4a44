"""Trust in a sweep folder before `--resume` hands it to Ray Tune, which unpickles it.

`Tuner.restore` unpickles `<storage>/<name>/tuner.pkl` and the cloudpickled parts of the
experiment state: whoever can write there can run code on the driver. ts3ray therefore:

1. signs, when it starts a sweep, the sweep record (`ts3ray-sweep.json`: plan and options)
   together with the SHA-256 of the `tuner.pkl` that Tune wrote, with an HMAC key that lives
   *outside* the storage: `$TS3RAY_SWEEP_KEY` (hex) if set, else `~/.ts3ray/sweep-key`
   (created with mode 600). A resume recomputes the signature before Ray reads anything:
   a planted or edited `tuner.pkl` or record is refused. To resume on another machine (a new
   head node), give it the same key (copy the file, or set the variable from a secret).
2. on local (or NFS) storage, refuses to resume when the files Tune unpickles, or the sweep
   folder, are not owned by this user or are writable by group or others: the state files
   change while a sweep runs and cannot be signed, so only their owner may write them.
3. on object stores (S3, GCS, ...), where ownership cannot be read, resumes only with
   `--trust-storage`: the user states that only they can write that prefix (bucket policy).
   It covers only what cannot be signed (the experiment state Tune rewrites while it runs):
   a signature that exists is checked all the same, and the resume says what it trusts.

`--trust-storage` is refused where it would only switch a check off: without `--resume`, on
local storage (ownership is checked there instead) and on a sweep without a valid signed
record (nothing ts3ray wrote is left to trust: a planted `tuner.pkl` would run).

What remains: a process of the same user, or an object-store principal with write access,
can still change the state between this check and Ray's read. Keep sweep storage writable
only by the people who run the sweeps.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from ts3ray import storage
from ts3ray.errors import UserError

KEY_ENV = "TS3RAY_SWEEP_KEY"
KEY_FILE = "~/.ts3ray/sweep-key"
TUNER_PKL = "tuner.pkl"
UNPICKLED = ("tuner.pkl", "experiment_state-", "searcher-state-", "basic-variant-state-")


def sweep_key() -> bytes:
    """The HMAC key: $TS3RAY_SWEEP_KEY (hex) or ~/.ts3ray/sweep-key, created once (mode 600)."""
    given = os.environ.get(KEY_ENV)
    if given:
        try:
            return bytes.fromhex(given.strip())
        except ValueError:
            raise UserError(f"{KEY_ENV} is not allowed: a hex string (e.g. from "
                            "`python -c 'import secrets; print(secrets.token_hex(32))'`)") from None
    path = Path(KEY_FILE).expanduser()
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another sweep created it meanwhile
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def signature(record_text: str, tuner_pkl: bytes) -> str:
    message = record_text.encode() + b"\0" + hashlib.sha256(tuner_pkl).hexdigest().encode()
    return hmac.new(sweep_key(), message, hashlib.sha256).hexdigest()


def tuner_pkl(experiment: str) -> bytes | None:
    return storage.read_bytes(storage.join(experiment, TUNER_PKL))


def check_signature(experiment: str, record_text: str, signed: str | None) -> None:
    """Raise UserError unless `signed` matches the record and the current tuner.pkl."""
    pickled = tuner_pkl(experiment)
    if pickled is None:
        raise UserError(f"--resume: {experiment} holds no {TUNER_PKL}; nothing to resume")
    if not signed or not hmac.compare_digest(signed, signature(record_text, pickled)):
        raise UserError(f"--resume: {experiment}/{TUNER_PKL} or its record does not carry this "
                        f"machine's signature ({KEY_ENV} or {KEY_FILE}): it was not written by "
                        "this ts3ray key or was changed since; refusing to unpickle it")


def local_problems(experiment: str) -> list[str]:
    """Files Tune unpickles (and the sweep folder) that are not this user's alone."""
    folder = Path(storage.resolve(experiment)[1])
    problems = []
    for path in [folder, *sorted(p for p in folder.iterdir() if p.name.startswith(UNPICKLED))]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            problems.append(f"{path} is a symbolic link")
        elif info.st_uid != os.getuid():
            problems.append(f"{path} is owned by uid {info.st_uid}, not you")
        elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            problems.append(f"{path} is writable by group or others")
    return problems


def check_trust_option(experiment: str, trust_storage: bool) -> None:
    """`--trust-storage` only where a check cannot be made (module docstring)."""
    if trust_storage and storage.is_local(experiment):
        raise UserError(f"--trust-storage is not allowed with local --storage ({experiment}): "
                        "ts3ray checks the signature and the ownership of a local sweep itself; "
                        "fix the ownership/permissions (chmod go-w) instead")


def trusted_statement(experiment: str) -> str:
    """What `--trust-storage` trusts, said once when it is accepted."""
    return (f"ts3ray: --trust-storage: trusting that only you can write {experiment}: Tune's "
            f"experiment state there ({', '.join(UNPICKLED[1:])}*) is unpickled unsigned; "
            f"{TUNER_PKL} and the sweep record were checked against their signature")


def check_folder(experiment: str, trust_storage: bool) -> str | None:
    """Points 2 and 3 of the module docstring; the statement of what is trusted, if any."""
    check_trust_option(experiment, trust_storage)
    if not storage.is_local(experiment):
        if not trust_storage:
            raise UserError(f"--resume: {experiment} is on an object store, where ts3ray cannot "
                            "check who may write Tune's pickled experiment state; pass "
                            "--trust-storage if only you can write that prefix")
        return trusted_statement(experiment)
    problems = local_problems(experiment)
    if problems:
        raise UserError(f"--resume: Tune unpickles this sweep's state, and {problems[0]}"
                        f"{f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''}; fix "
                        "the ownership/permissions (chmod go-w), then resume")
    return None
