"""Probe ts3ray as a new user and as an adversary would: bad inputs and faults, counted.

    PYTHONPATH=. python tests/probe_hardening.py [--no-ray] [--verbose]

Bad inputs: the table of tests/test_hardening.py plus a generated sweep of every config
field with non-finite, negative, huge and malformed values, run in this process through
``ts3ray.cli.main``. An input is handled cleanly when the exit status is 2 (1 for an
operating-system failure), exactly one line reports it (stderr; stdout for `cluster
check`), no traceback is printed and nothing under the probe's folder changed.

Faults, each in real subprocesses: SIGKILL, Ctrl-C and SIGTERM mid-run (then --resume), a
full disk (RLIMIT_FSIZE), a second run into a busy folder, a lock left by a killed run, a
killed `data fetch`, and (unless --no-ray) a local sweep's listening sockets (`ss -ltnp`)
and a driver killed while its local Ray runs. A fault is survived when the documented
outcome holds (listed with each).

More cases come from every tests/probe_cases_*.py: its ``BAD_INPUTS`` (same tuples),
``build(world)`` writing the files they need, and optional ``FAULTS`` (name -> callable(tmp)
returning (survived, detail)).

Prints one line per failure (all with --verbose) and the totals:
"N bad inputs tried, M handled cleanly; K faults tried, L survived".
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import pyarrow.parquet as pq  # noqa: E402

from test_hardening import (BAD_INPUTS, OPTS, OUT, RUN, _listening_sockets, last_wins,  # noqa: E402
                            _mnist, build_world, cli, cli_env, snapshot)
from processes import ctrl_c_as_from_a_terminal, process_tree  # noqa: E402
from ts3ray.cli import main  # noqa: E402

FLOATS = ("lam", "tau", "gamma", "noise_rate", "select_rate", "lr", "momentum", "weight_decay",
          "lr_decay_factor", "prune_fraction")
INTS = ("epochs", "e1", "e2", "batch_size", "rounds", "seed", "eval_batch_size")
CHOICES = ("dataset", "noise", "noise_convention", "arch", "variant", "selection", "order",
           "alternate")


def generated_inputs() -> list[tuple[str, list[str], int, str, str]]:
    """Every numeric field with values no run should accept, and other malformed argv."""
    cases = []
    for key in FLOATS:
        for value in ("nan", "inf", "-inf", "-1", "1e400", "abc"):
            cases.append((f"{key}={value}", [*RUN, f"{key}={value}", *OUT], 2, key, "err"))
    for key in INTS:
        for value in ("-1", "99999999999999", "1.5", "x", ""):
            if key in ("e1", "e2") and value == "-1":
                continue  # in the table already
            cases.append((f"{key}={value!r}", [*RUN, f"{key}={value}", *OUT], 2, key, "err"))
    for value in ("-5", "0", "a,b", "1,-2", "1e3"):
        cases.append((f"lr_decay_epochs={value}", [*RUN, f"lr_decay_epochs={value}", *OUT], 2,
                      "lr_decay_epochs", "err"))
    for value in ("cuda:abc", "cpu:0", "cuda:-1", "", "CUDA", "cuda:99999", "cuda:4095",
                  "mps", "cuda:0:0"):
        cases.append((f"device={value!r}", [*RUN, f"device={value}", *OUT], 2, "device", "err"))
    for key in CHOICES:
        cases.append((f"{key}=bogus", [*RUN, f"{key}=bogus", *OUT], 2, key, "err"))
    cases += [
        ("unknown key", [*RUN, "colour=red", *OUT], 2, "unknown key", "err"),
        ("no equals sign", [*RUN, "lam", *OUT], 2, "key=value", "err"),
        ("empty key", [*RUN, "=1", *OUT], 2, "key=value", "err"),
        ("checkpoint-every 0", [*RUN, *OUT, "--checkpoint-every", "0"], 2, "--checkpoint-every", "err"),
        ("checkpoint-every abc", [*RUN, *OUT, "--checkpoint-every", "x"], 2, "invalid int", "err"),
        ("out with NUL", [*RUN, *OPTS, "--out", "{t}/a\0b"], 2, "NUL", "err"),
        ("out in sysfs", [*RUN, *OPTS, "--out", "/sys/ts3ray-probe"], 2, "not writable", "err"),
        ("no --out", [*RUN], 2, "--out", "err"),
        ("resume without run", [*RUN, *OPTS, "--resume", "--out", "{t}/afile"], 2, "is a file", "err"),
        ("table unknown kind", ["table", "best", "{t}/good_run"], 2, "invalid choice", "err"),
        ("table missing results", ["table", "sparsity", "{t}/absent"], 2, "does not exist", "err"),
        ("table results a text file", ["table", "sparsity", "{t}/afile"], 2, "not a .parquet", "err"),
        ("table bad format", ["table", "sparsity", "{t}/good_run", "--format", "xls"], 2,
         "invalid choice", "err"),
        ("table bad metric", ["table", "sparsity", "{t}/good_run", "--metric", "x"], 2, "metric", "err"),
        ("plot bad suffix", ["plot", "sparsity", "{t}/good_run", "--out", "{t}/f.jpg"], 2,
         "--out", "err"),
        ("plot dpi abc", ["plot", "sparsity", "{t}/good_run", "--out", "{t}/f.png", "--dpi", "x"],
         2, "invalid int", "err"),
        ("plot dpi 5", ["plot", "sparsity", "{t}/good_run", "--out", "{t}/f.png", "--dpi", "5"],
         2, "--dpi", "err"),
        ("plot bad round", ["plot", "curves", "{t}/good_run", "--out", "{t}/f.png", "--round", "z"],
         2, "--round", "err"),
        ("plot sysfs out", ["plot", "sparsity", "{t}/good_run", "--out", "/sys/f.png"], 2,
         "not writable", "err"),
        ("data check unknown", ["data", "check", "imagenet"], 2, "invalid choice", "err"),
        ("data fetch unknown", ["data", "fetch", "cifar10"], 2, "invalid choice", "err"),
        ("data fetch --from a file", ["data", "fetch", "mnist", "--root", "{t}/new_root",
                                      "--from", "{t}/afile"], 2, "--from", "err"),
        ("cluster missing", ["cluster", "check", "{t}/absent.yaml"], 2, "cannot read", "out"),
        ("cluster recursive", ["cluster", "check", "{t}/recursive.yaml"], 2, "contains it", "out"),
        ("cluster deep", ["cluster", "check", "{t}/deep.yaml"], 2, "nested too deeply", "out"),
        ("cluster list", ["cluster", "check", "{t}/list.yaml"], 2, "not a mapping", "out"),
        ("cluster syntax", ["cluster", "check", "{t}/syntax.yaml"], 2, "YAML error", "out"),
        ("cluster over 1 MiB", ["cluster", "check", "{t}/big.yaml"], 2, "larger than", "out"),
        ("cluster no action", ["cluster"], 2, "required", "err"),
        ("no command", [], 2, "required", "err"),
    ]
    return [(i, last_wins(argv), *rest) for i, argv, *rest in cases]


def probe_modules() -> list:
    """Every tests/probe_cases_*.py: BAD_INPUTS, build(world) and optional FAULTS."""
    return [importlib.import_module(path.stem) for path in sorted(HERE.glob("probe_cases_*.py"))]


def run_input(world: Path, case) -> tuple[bool, str]:
    name, argv, code, text, stream = case
    argv = [a.replace("{t}", str(world)) for a in argv]
    before = snapshot(world)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            got = main(argv)
    except BaseException:  # noqa: BLE001 - a probe counts whatever escapes
        return False, f"escaped: {traceback.format_exc().splitlines()[-1]}"
    report = (err if stream == "err" else out).getvalue()
    lines = report.splitlines()
    problems = []
    if got != code:
        problems.append(f"exit {got} (want {code})")
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines")
    elif text.replace("{t}", str(world)) not in lines[0]:
        problems.append(f"line lacks {text!r}")
    if "Traceback" in out.getvalue() + err.getvalue():
        problems.append("traceback")
    if snapshot(world) != before:
        problems.append("files changed")
    if (world / "MARKER").exists():
        problems.append("CODE RAN")
    return not problems, "; ".join(problems) or (lines[0] if lines else "")


# ------------------------------------------------------------------------------ faults

RUN_ARGS = ["dataset=digits", "epochs=20", "e1=5", "e2=5", "rounds=2", "seed=3", "device=cpu"]


def _start(out: Path, *extra: str, **kw) -> subprocess.Popen:
    kw.setdefault("preexec_fn", ctrl_c_as_from_a_terminal)
    return subprocess.Popen(cli("run", *RUN_ARGS, "--out", str(out), "--quiet", "--threads", "1",
                                *extra),
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)


def _rows(path: Path):
    frame = pq.read_table(path).to_pandas().drop(columns=["seconds"])
    return frame.fillna(-1.0).to_dict("records")


def _resume(out: Path) -> int:
    return subprocess.run(cli("run", *RUN_ARGS, "--out", str(out), "--quiet", "--threads", "1",
                              "--resume"), env=cli_env(), capture_output=True).returncode


def _clean_folder(out: Path) -> bool:
    """The run's files (and its tickets/), no lock, no temporary file anywhere below."""
    names = sorted(p.name for p in out.iterdir() if p.name != "tickets")
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    return names == ["checkpoint.pt", "config.json", "epochs.parquet", "levels.parquet"] \
        and not leftovers


def fault_signal(tmp: Path, reference: Path, sig: int, code: int, line: str) -> tuple[bool, str]:
    out = tmp / f"sig{sig}"
    proc = _start(out)
    _wait_for(out / "epochs.parquet", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    checks = {f"exit {code}": proc.returncode == code,
              "one line": (err.splitlines() == [f"{line}; resume with: ts3ray run --out {out} "
                                                "--resume"] if line else True),
              # a SIGKILL cannot clean up: its lock and temp files go with the next run
              "no temp or lock file": _clean_folder(out) if sig != signal.SIGKILL else True,
              "resume exit 0": _resume(out) == 0,
              "same rows as an uninterrupted run": _rows(out / "epochs.parquet")
              == _rows(reference / "epochs.parquet"),
              "no temp or lock file after the resume": _clean_folder(out)}
    return all(checks.values()), ", ".join(k for k, v in checks.items() if not v)


def _limit_file_size():
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


def fault_full_disk(tmp: Path, reference: Path) -> tuple[bool, str]:
    out = tmp / "full"
    proc = _start(out, preexec_fn=_limit_file_size)
    _, err = proc.communicate(timeout=120)
    checks = {"exit 1": proc.returncode == 1,
              "one line naming the cause": err.count("\n") == 1 and "File too large" in err,
              "no half or temp files": sorted(p.name for p in out.iterdir()) == ["config.json"],
              "resume once space is back": _resume(out) == 0,
              "same rows": _rows(out / "epochs.parquet") == _rows(reference / "epochs.parquet")}
    return all(checks.values()), ", ".join(k for k, v in checks.items() if not v)


def fault_second_run(tmp: Path, reference: Path) -> tuple[bool, str]:
    out = tmp / "busy"
    first = _start(out)
    _wait_for(out / ".ts3ray.lock", first)
    second = subprocess.run(cli("run", *[a.replace("seed=3", "seed=4") for a in RUN_ARGS],
                                "--out", str(out), "--quiet"),
                            env=cli_env(), capture_output=True, text=True)
    first.communicate(timeout=120)
    checks = {"second refused with one line": second.returncode == 2
              and second.stderr.count("\n") == 1 and f"pid {first.pid}" in second.stderr,
              "first completes": first.returncode == 0,
              "first's rows only": _rows(out / "epochs.parquet") == _rows(reference / "epochs.parquet")}
    return all(checks.values()), ", ".join(k for k, v in checks.items() if not v)


def fault_stale_lock(tmp: Path, reference: Path) -> tuple[bool, str]:
    out = tmp / "stale"
    proc = _start(out)
    _wait_for(out / "epochs.parquet", proc)
    proc.kill()
    proc.wait()
    left = (out / ".ts3ray.lock").exists()
    code = _resume(out)
    checks = {"lock left by SIGKILL": left, "next run takes it over and completes": code == 0,
              "same rows": _rows(out / "epochs.parquet") == _rows(reference / "epochs.parquet"),
              "folder clean": _clean_folder(out)}
    return all(checks.values()), ", ".join(k for k, v in checks.items() if not v)


def fault_killed_fetch(tmp: Path) -> tuple[bool, str]:
    src, root = tmp / "fetch_src", tmp / "fetch_root"
    _mnist(src, n_train=60000, n_test=10000, gz=True)
    proc = subprocess.Popen(cli("data", "fetch", "mnist", "--root", str(root), "--from",
                                str(src / "MNIST" / "raw")),
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and not any(root.glob(".ts3ray-fetch-*/root")):
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    check = subprocess.run(cli("data", "check", "mnist", "--root", str(root)), env=cli_env(),
                           capture_output=True, text=True)
    checks = {"data check says missing": check.returncode == 2,
              "nothing in torchvision's layout": not (root / "MNIST").exists()}
    return all(checks.values()), ", ".join(k for k, v in checks.items() if not v)


def ss_listing(pids: set[int]) -> list[str]:
    done = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True)
    return [line for line in done.stdout.splitlines() if any(f"pid={p}," in line for p in pids)]


def fault_local_sweep(tmp: Path) -> tuple[bool, str, list[str]]:
    env = cli_env(HOME=str(tmp / "home"), RAY_TMPDIR=f"/tmp/rt-probe-{os.getpid()}")
    env.pop("RAY_ADDRESS", None)
    (tmp / "home").mkdir()
    proc = subprocess.Popen(cli("sweep", "sparsity", "--prune-fractions", "0.5", "--variants", "full",
                                "--num-cpus", "1", "--storage", str(tmp / "st"),
                                "epochs=4", "e1=1", "e2=1", "rounds=1"),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    listing: list[str] = []
    exposed = set()
    while proc.poll() is None:
        tree = process_tree(proc.pid)
        for address, port, pid in _listening_sockets(set(tree)):
            if not (address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1")):
                exposed.add((address, port, tree[pid]))
        lines = ss_listing(set(tree))
        if len(lines) > len(listing):
            listing = lines
        time.sleep(0.3)
    proc.communicate(timeout=60)
    shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    token = tmp / "home" / ".ray" / "auth_token"
    checks = {"sweep exit 0": proc.returncode == 0, "loopback only": not exposed,
              "token file private": token.exists() and token.stat().st_mode & 0o077 == 0}
    return all(checks.values()), ", ".join(k for k, v in checks.items() if not v), listing


DRIVER = """
import os, sys, time
from ts3ray.tune.resources import RaySettings, ray_session
with ray_session(RaySettings(num_cpus=1)):
    import ray
    ray.get(ray.remote(lambda: 1).remote())
    print("up", flush=True)
    time.sleep(3)
    os.kill(os.getpid(), 9)
"""


def _tagged(tag: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if f"TS3RAY_PROBE_TAG={tag}".encode() in Path(f"/proc/{entry}/environ").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


def fault_killed_driver(tmp: Path, grace_s: float = 20) -> tuple[bool, str]:
    """A driver killed while its local Ray runs: Ray's processes must be gone within
    `grace_s` seconds, and must never have listened beyond loopback."""
    tag = f"probe-{os.getpid()}"
    env = cli_env(HOME=str(tmp / "home"), RAY_TMPDIR=f"/tmp/rt-{tag}", TS3RAY_PROBE_TAG=tag)
    env.pop("RAY_ADDRESS", None)
    subprocess.run([sys.executable, "-c", DRIVER], env=env, capture_output=True, timeout=180)
    killed_at = time.monotonic()
    addresses: set[str] = set()
    orphans = _tagged(tag)
    while orphans and time.monotonic() - killed_at < grace_s:
        addresses |= {s[0] for s in _listening_sockets(set(orphans))}
        time.sleep(0.5)
        orphans = _tagged(tag)
    lasted = time.monotonic() - killed_at
    for pid in orphans:  # ours: started by this probe, found by our own tag
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    exposed = [a for a in addresses if not (a.startswith("127.") or a == "::ffff:127.0.0.1")]
    detail = (f"{len(orphans)} Ray process(es) still running after {grace_s:g} s" if orphans
              else f"orphans gone after {lasted:.0f} s") + \
        f", listened on {sorted(addresses) or 'nothing'} meanwhile"
    return not orphans and not exposed, detail


def main_probe() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-ray", action="store_true", help="skip the two Ray faults")
    parser.add_argument("--verbose", action="store_true", help="one line per input and fault")
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ts3ray-probe-"))
    try:
        world = tmp / "world"
        world.mkdir()
        modules = probe_modules()
        with contextlib.redirect_stdout(io.StringIO()):
            build_world(world)
            for module in modules:
                module.build(world)
        cases = list(BAD_INPUTS) + generated_inputs()
        for module in modules:
            cases += list(module.BAD_INPUTS)
        clean = 0
        for case in cases:
            ok, detail = run_input(world, case)
            clean += ok
            if opts.verbose or not ok:
                print(f"{'ok  ' if ok else 'FAIL'} input {case[0]}: {detail}")
        reference = tmp / "reference"
        subprocess.run(cli("run", *RUN_ARGS, "--out", str(reference), "--quiet", "--threads", "1"),
                       env=cli_env(), check=True, capture_output=True)
        faults = {
            "SIGKILL mid-run, then --resume": lambda: fault_signal(tmp, reference, signal.SIGKILL, -9, ""),
            "Ctrl-C mid-run, then --resume": lambda: fault_signal(
                tmp, reference, signal.SIGINT, 130, "ts3ray: interrupted (Ctrl-C)"),
            "SIGTERM mid-run, then --resume": lambda: fault_signal(
                tmp, reference, signal.SIGTERM, 143, "ts3ray: terminated (SIGTERM)"),
            "full disk (file size limit), then --resume": lambda: fault_full_disk(tmp, reference),
            "a second run into a busy --out": lambda: fault_second_run(tmp, reference),
            "a lock left by a SIGKILLed run": lambda: fault_stale_lock(tmp, reference),
            "data fetch killed mid-copy": lambda: fault_killed_fetch(tmp),
        }
        for module in modules:
            for name, probe in getattr(module, "FAULTS", {}).items():
                faults[name] = (lambda probe=probe: probe(tmp))
        listing: list[str] = []
        if not opts.no_ray:
            def sweep():
                ok, detail, lines = fault_local_sweep(tmp)
                listing.extend(lines)
                return ok, detail
            faults["a local sweep seen from the network (ss -ltnp)"] = sweep
            faults["driver SIGKILLed while its local Ray runs"] = lambda: fault_killed_driver(tmp)
        survived = 0
        for name, probe in faults.items():
            try:
                ok, detail = probe()
            except Exception as err:  # noqa: BLE001
                ok, detail = False, f"probe error: {err!r}"
            survived += ok
            if opts.verbose or not ok:
                print(f"{'ok  ' if ok else 'FAIL'} fault {name}{': ' + detail if detail else ''}")
        if listing:
            print("ss -ltnp during the local sweep:")
            print("\n".join(f"  {line}" for line in listing))
        print(f"{len(cases)} bad inputs tried, {clean} handled cleanly; "
              f"{len(faults)} faults tried, {survived} survived")
        return 0 if clean == len(cases) and survived == len(faults) else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main_probe())
