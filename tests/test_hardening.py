"""Issue 11, hardening: hand-made bad and malicious inputs, faults, and what an attacker on
the network would see. Every bad input gives exactly one line, no traceback, the documented
exit status, and leaves the files it was given (and everything around them) untouched."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

import ts3ray
from processes import ctrl_c_as_from_a_terminal, process_tree
from ts3ray.cli import main
from ts3ray.config import make_config
from ts3ray.data.sources.idx import write_idx
from ts3ray.data.core.safe_pickle import RefusedContent, loads_restricted
from ts3ray.errors import UserError
from ts3ray.run_lock import LOCK_NAME, FolderLocked, RunFolderLock
from ts3ray.yaml_input import YamlInputError, expanded_size, parse_yaml

REPO = Path(ts3ray.__file__).resolve().parent.parent
BASE = ["dataset=digits", "noise=sym", "noise_rate=0.4", "epochs=3", "e1=1", "e2=1",
        "rounds=1", "seed=0", "device=cpu"]
IDX_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte"]
CIFAR10_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def cli_env(**extra) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ts3ray.cli", *args]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root; files with their size and modification time (links not
    followed). A folder's own mtime is left out: a lock file made and removed changes it."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            state[str((Path(folder) / name).relative_to(root))] = "dir"
        for name in files:
            path = Path(folder) / name
            info = path.lstat()
            state[str(path.relative_to(root))] = (info.st_mode >> 12, info.st_size, info.st_mtime_ns)
    return state


class Evil:
    """Pickles to a call of os.system: loading it with plain pickle runs a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ---------------------------------------------------------------------------- the world


def _mnist(root: Path, n_train: int, n_test: int, gz: bool = False) -> None:
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = [rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              np.arange(n_train, dtype=np.uint8) % 10,
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              np.arange(n_test, dtype=np.uint8) % 10]
    for name, array in zip(IDX_NAMES, arrays):
        write_idx(raw / (f"{name}.gz" if gz else name), array)


def _cifar(root: Path, evil_first: Path | None = None) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in CIFAR10_FILES:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        if evil_first is not None and name == "data_batch_1":
            batch[b"data"] = Evil(evil_first)
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Hand-made bad inputs, and good ones to put them beside; built once per module."""
    return build_world(tmp_path_factory.mktemp("world"))


def build_world(t: Path) -> Path:
    """Write the bad inputs of BAD_INPUTS (and a finished run beside them) under `t`;
    tests/probe_hardening.py builds the same world."""
    (t / "afile").write_text("not a folder\n")
    (t / "adir").mkdir()
    (t / "figures.png").mkdir()
    # --config files
    (t / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    laughs = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        laughs.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    (t / "bomb.yaml").write_text("\n".join(laughs + ["lam: *i"]) + "\n")
    assert len((t / "bomb.yaml").read_bytes()) < 450  # ~10**9 values when expanded
    (t / "recursive.yaml").write_text("lam: &a [*a]\n")
    (t / "deep.yaml").write_text("[" * 50_000 + "]" * 50_000 + "\n")
    (t / "list.yaml").write_text("- lam\n- tau\n")
    (t / "syntax.yaml").write_text("lam: [0.5\ntau: 0.7\n")
    (t / "big.yaml").write_text("# padding\n" * 120_000)
    (t / "huge_value.yaml").write_text("lam: [" + ", ".join(["1.5"] * 50_000) + "]\n")
    os.symlink("loop.yaml", t / "loop.yaml")  # unreadable: a symlink to itself
    # a finished run, and run folders whose checkpoint is damaged, foreign or malicious
    good = t / "good_run"
    assert main(["run", *BASE, "--out", str(good), "--quiet", "--threads", "1"]) == 0
    real = (good / "checkpoint.pt").read_bytes()
    other = torch.load(good / "checkpoint.pt", weights_only=True)
    other["run_id"] = "0123456789ab"
    checkpoints = {
        "truncated": lambda p: p.write_bytes(real[: len(real) // 2]),
        "random": lambda p: p.write_bytes(np.random.default_rng(1).bytes(4096)),
        "empty": lambda p: p.write_bytes(b""),
        "foreign": lambda p: torch.save({"weights": torch.zeros(3)}, p),
        "other_run": lambda p: torch.save(other, p),
        "evil": lambda p: p.write_bytes(pickle.dumps(Evil(t / "MARKER"))),
    }
    for kind, write in checkpoints.items():
        folder = t / f"resume_{kind}"
        folder.mkdir()
        shutil.copy(good / "config.json", folder / "config.json")
        write(folder / "checkpoint.pt")
    # results folders holding a foreign or a corrupt Parquet file beside a good one
    for kind in ("foreign", "corrupt"):
        levels = t / f"results_{kind}" / "results" / "levels"
        levels.mkdir(parents=True)
        shutil.copy(good / "levels.parquet", levels / "trial_a.parquet")
    pd.DataFrame({"x": [1.0], "note": ["mine"]}).to_parquet(
        t / "results_foreign" / "results" / "levels" / "zz_notes.parquet")
    (t / "results_corrupt" / "results" / "levels" / "trial_b.parquet").write_bytes(b"PAR1" + b"\0" * 64)
    # data roots
    _mnist(t / "mnist_empty_train", n_train=0, n_test=5)
    _mnist(t / "mnist_empty_test", n_train=5, n_test=0)
    _cifar(t / "cifar_evil", evil_first=t / "MARKER")
    bad_gz = t / "src_bad_gz"
    bad_gz.mkdir()
    for name in IDX_NAMES:
        write_idx(bad_gz / f"{name}.gz", np.zeros((20, 28, 28) if "images" in name else (20,), np.uint8))
    whole = (bad_gz / f"{IDX_NAMES[0]}.gz").read_bytes()
    (bad_gz / f"{IDX_NAMES[0]}.gz").write_bytes(whole[: len(whole) // 2] + b"garbage" * 8)
    # cluster files
    local = (REPO / "cluster" / "local.yaml").read_text()
    assert "--dashboard-host=127.0.0.1" in local
    (t / "local_open.yaml").write_text(local.replace("--dashboard-host=127.0.0.1",
                                                     "--dashboard-host=0.0.0.0"))
    (t / "gpu_bomb.yaml").write_text((t / "bomb.yaml").read_text().replace("lam: *i", "setup_commands: *i"))
    return t


# -------------------------------------------------------- bad inputs, one line each

RUN = ["run", *BASE]


def last_wins(argv: list[str]) -> list[str]:
    """`argv` with a config key=value item dropped where the same key comes again later: a
    key given twice is refused (issue 22), so a case that changes a BASE key replaces it."""
    from ts3ray.config import FIELD_NAMES

    def key(i: int) -> str | None:
        item = argv[i]
        name = item.partition("=")[0]
        flagged = i > 0 and argv[i - 1].startswith("--") and "=" not in argv[i - 1]
        return name if "=" in item and name in FIELD_NAMES and not flagged else None

    keys = [key(i) for i in range(len(argv))]
    return [item for i, item in enumerate(argv) if keys[i] is None or keys[i] not in keys[i + 1:]]
OPTS = ["--quiet", "--threads", "1"]  # after every key=value (argparse ends positionals there)
OUT = [*OPTS, "--out", "{t}/new_out"]

# (id, argv, exit status, text the line contains, stream the line is on)
BAD_INPUTS = [
    # values that were accepted and saved as results, or reached torch
    ("weight_decay=inf", [*RUN, "weight_decay=inf", *OUT], 2, "weight_decay='inf' is not allowed: a finite number (it reads as inf)", "err"),
    ("weight_decay=-1", [*RUN, "weight_decay=-1", *OUT], 2, "weight_decay=-1.0 is not allowed", "err"),
    ("lr_decay_factor=inf", [*RUN, "lr_decay_factor=inf", *OUT], 2, "lr_decay_factor='inf' is not allowed", "err"),
    ("lr_decay_factor=nan", [*RUN, "lr_decay_factor=nan", *OUT], 2, "lr_decay_factor='nan' is not allowed", "err"),
    ("lr_decay_epochs=-5", [*RUN, "lr_decay_epochs=-5", *OUT], 2, "lr_decay_epochs=(-5,)", "err"),
    ("lr=inf", [*RUN, "lr=inf", *OUT], 2, "lr='inf' is not allowed", "err"),
    ("tau=nan", [*RUN, "tau=nan", *OUT], 2, "tau='nan' is not allowed", "err"),
    ("momentum=nan", [*RUN, "momentum=nan", *OUT], 2, "momentum='nan' is not allowed", "err"),
    ("lam=1e400", [*RUN, "lam=1e400", *OUT], 2, "lam='1e400' is not allowed: a finite number (it reads as inf)", "err"),
    ("epochs=10**11", [*RUN, "epochs=99999999999", *OUT], 2, "epochs=99999999999", "err"),
    ("batch_size=2**40", [*RUN, "batch_size=1099511627776", *OUT], 2, "batch_size=1099511627776", "err"),
    ("device=cuda:abc", [*RUN, "device=cuda:abc", *OUT], 2, "device='cuda:abc' is not allowed", "err"),
    ("device=cpu:0", [*RUN, "device=cpu:0", *OUT], 2, "device='cpu:0' is not allowed", "err"),
    ("device=cuda:4095", [*RUN, "device=cuda:4095", *OUT], 2, "device='cuda:4095' is not allowed", "err"),
    ("data_root with NUL", [*RUN, "data_root=a\0b", *OUT], 2, "data_root=", "err"),
    ("--threads 0", [*RUN, "--out", "{t}/new_out", "--threads", "0"], 2, "--threads=0 is not allowed", "err"),
    ("--threads abc", [*RUN, "--out", "{t}/new_out", "--threads", "abc"], 2, "invalid int value: 'abc'", "err"),
    # --config files
    ("config directory", [*RUN, *OUT, "--config", "{t}/adir", *OUT], 2, "is a directory", "err"),
    ("config binary", [*RUN, *OUT, "--config", "{t}/binary.yaml", *OUT], 2, "not UTF-8 text", "err"),
    ("config unreadable", [*RUN, *OUT, "--config", "{t}/loop.yaml", *OUT], 2, "cannot read", "err"),
    ("config missing", [*RUN, *OUT, "--config", "{t}/absent.yaml", *OUT], 2, "cannot read", "err"),
    ("config billion laughs", [*RUN, *OUT, "--config", "{t}/bomb.yaml", *OUT], 2, "expands to more than", "err"),
    ("config recursive alias", [*RUN, *OUT, "--config", "{t}/recursive.yaml", *OUT], 2, "contains it", "err"),
    ("config nested too deep", [*RUN, *OUT, "--config", "{t}/deep.yaml", *OUT], 2, "nested too deeply", "err"),
    ("config not a mapping", [*RUN, *OUT, "--config", "{t}/list.yaml", *OUT], 2, "found a list", "err"),
    ("config syntax", [*RUN, *OUT, "--config", "{t}/syntax.yaml", *OUT], 2, "YAML error: line", "err"),
    ("config over 1 MiB", [*RUN, *OUT, "--config", "{t}/big.yaml", *OUT], 2, "larger than", "err"),
    ("config huge value", [*RUN, *OUT, "--config", "{t}/huge_value.yaml", *OUT], 2, "more characters)", "err"),
    # --out
    ("out is a file", [*RUN, *OPTS, "--out", "{t}/afile"], 2, "is a file, not a directory", "err"),
    ("out under a file", [*RUN, *OPTS, "--out", "{t}/afile/run"], 2, "afile is a file", "err"),
    # --resume with a damaged, foreign or malicious checkpoint
    *[(f"resume {kind} checkpoint", [*RUN, *OPTS, "--resume", "--out", f"{{t}}/resume_{kind}"], 2,
       f"resume_{kind}/checkpoint.pt", "err")
      for kind in ("truncated", "random", "empty", "foreign", "other_run", "evil")],
    # data
    ("data_root is a file", [*RUN, "dataset=mnist", "data_root={t}/afile", *OUT], 2,
     "data_root {t}/afile is a file", "err"),
    ("zero training images", [*RUN, "dataset=mnist", "data_root={t}/mnist_empty_train", *OUT], 2,
     "has 0 training images", "err"),
    ("zero test images", [*RUN, "dataset=mnist", "data_root={t}/mnist_empty_test", *OUT], 2,
     "has 0 test images", "err"),
    ("malicious CIFAR batch", [*RUN, "dataset=cifar10", "data_root={t}/cifar_evil", *OUT], 2,
     "refused global", "err"),
    ("data fetch --root file", ["data", "fetch", "mnist", "--root", "{t}/afile", "--from",
                                "{t}/src_bad_gz"], 2, "--root {t}/afile is a file", "err"),
    ("data fetch corrupt .gz", ["data", "fetch", "mnist", "--root", "{t}/new_root", "--from",
                                "{t}/src_bad_gz"], 2, "is not a complete gzip file", "err"),
    ("data fetch --from missing", ["data", "fetch", "mnist", "--root", "{t}/new_root", "--from",
                                   "{t}/absent"], 2, "--from {t}/absent does not exist", "err"),
    ("data check --root file", ["data", "check", "mnist", "--root", "{t}/afile"], 2,
     "is a file, not a directory", "err"),
    # tables and figures
    ("table --out directory", ["table", "sparsity", "{t}/good_run", "--out", "{t}/adir"], 2,
     "is a directory; give a file name", "err"),
    ("table --out under a file", ["table", "sparsity", "{t}/good_run", "--out", "{t}/afile/t.md"],
     2, "afile is a file", "err"),
    ("plot --out directory", ["plot", "sparsity", "{t}/good_run", "--out", "{t}/figures.png"], 2,
     "figures.png is a directory; give a file name", "err"),
    ("plot --out under a file", ["plot", "sparsity", "{t}/good_run", "--out", "{t}/afile/f.png"],
     2, "afile is a file", "err"),
    *[(f"plot --dpi {dpi}", ["plot", "sparsity", "{t}/good_run", "--out", "{t}/f.png", "--dpi", dpi],
       2, f"--dpi={dpi} is not allowed", "err") for dpi in ("0", "-5", "100000")],
    ("table foreign Parquet", ["table", "sparsity", "{t}/results_foreign"], 2,
     "zz_notes.parquet is not a ts3ray levels file", "err"),
    ("plot corrupt Parquet", ["plot", "sparsity", "{t}/results_corrupt", "--out", "{t}/f.png"], 2,
     "trial_b.parquet is not a readable Parquet file", "err"),
    # cluster files: the report is on stdout, one line per problem
    ("cluster binary", ["cluster", "check", "{t}/binary.yaml"], 2, "not UTF-8 text", "out"),
    ("cluster billion laughs", ["cluster", "check", "{t}/gpu_bomb.yaml"], 2, "expands to more than", "out"),
    ("cluster directory", ["cluster", "check", "{t}/adir"], 2, "is a directory", "out"),
    ("cluster local dashboard 0.0.0.0", ["cluster", "check", "{t}/local_open.yaml"], 2,
     "head_start_ray_commands: binds the dashboard to 0.0.0.0", "out"),
    # the command line itself
    ("unknown command", ["explode"], 2, "invalid choice: 'explode'", "err"),
]
BAD_INPUTS = [(i, last_wins(argv), *rest) for i, argv, *rest in BAD_INPUTS]


@pytest.mark.parametrize("argv, code, text, stream", [c[1:] for c in BAD_INPUTS],
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_and_writes_nothing(world, capsys, argv, code, text, stream):
    argv = [a.replace("{t}", str(world)) for a in argv]
    before = snapshot(world)
    assert main(argv) == code
    out, err = capsys.readouterr()
    report, other = (err, out) if stream == "err" else (out, err)
    lines = report.splitlines()
    assert len(lines) == 1, report
    assert text.replace("{t}", str(world)) in lines[0], lines[0]
    assert "Traceback" not in out + err
    if stream == "err":  # stdout may hold progress (`data fetch: copying ...`)
        assert lines[0].startswith("ts3ray: error: ")
    else:
        assert other == ""
    assert snapshot(world) == before  # nothing written, nothing half-written, no temp files
    assert not (world / "MARKER").exists()  # no code from a data file or checkpoint ran


def test_the_table_covers_forty_bad_inputs():
    assert len(BAD_INPUTS) >= 40


def test_out_under_a_folder_that_refuses_writes(tmp_path, capsys):
    if os.geteuid() == 0:  # root writes through mode bits; sysfs refuses even root
        if not Path("/sys").is_dir():
            pytest.skip("no read-only place for root here")
        out = "/sys/ts3ray-run"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        out = str(locked / "run")
    assert main([*RUN, *OPTS, "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not writable" in err
    assert not os.path.exists(out)


# ------------------------------------------------------- no code from data or files


def test_a_malicious_cifar_batch_runs_no_code_in_a_real_process(world, tmp_path):
    marker = tmp_path / "pwned"
    root = tmp_path / "data"
    _cifar(root, evil_first=marker)
    done = subprocess.run(cli("run", "dataset=cifar10", f"data_root={root}", "--quiet",
                              "--out", str(tmp_path / "run")),
                          env=cli_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "refused global posix.system" in done.stderr
    assert "data_batch_1" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_restricted_unpickler_reads_python2_and_python3_cifar_batches():
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    batch = {b"data": data, b"labels": [3, 9], b"batch_label": b"training batch 1 of 5",
             b"filenames": [b"a.png", b"b.png"]}
    written = [pickle.dumps(batch, protocol=p) for p in range(2, 6)]
    # CIFAR's own files: Python 2 cPickle, numpy 1 module names
    written.append(written[0].replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    for raw in written:
        back = loads_restricted(raw)
        assert np.array_equal(back[b"data"], data) and back[b"data"].dtype == np.uint8
        assert back[b"labels"] == [3, 9] and back[b"filenames"] == [b"a.png", b"b.png"]


@pytest.mark.parametrize("payload", [
    pickle.dumps(Evil(Path("/tmp/never")), protocol=2),
    b"cbuiltins\neval\n(S'1+1'\ntR.",
    b"cnumpy\nload\n(S'/etc/passwd'\ntR.",
    b"cnumpy\nndarray\n((I10000000000\ntS'b'\ntR.",  # ndarray called directly: a huge allocation
    b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I999999999\ntS'b'\ntR.",
    pickle.dumps(np.array([1, "x"], dtype=object), protocol=2),
    pickle.dumps(np.array([1, "x"], dtype=object), protocol=5),
    b"c_codecs\nencode\n(S'x'\nS'rot13'\ntR.",
], ids=["os.system", "builtins.eval", "numpy.load", "ndarray call", "huge reconstruct",
        "object dtype p2", "object dtype p5", "codec"])
def test_restricted_unpickler_refuses_everything_else(payload):
    with pytest.raises(RefusedContent):
        loads_restricted(payload)


# -------------------------------------------------------------------- YAML bounds


def test_alias_expansion_counts_shared_nodes_with_their_multiplicity():
    loader_text = "a: &a [1, 2, 3]\nb: [*a, *a, *a]\n"
    assert parse_yaml(loader_text, "x") == {"a": [1, 2, 3], "b": [[1, 2, 3]] * 3}
    import yaml

    node = yaml.compose(loader_text, Loader=yaml.SafeLoader)
    # root + 2 keys + a (1 + 3) + b (1 + 3 * 4)
    assert expanded_size(node) == 1 + 2 + 4 + 13
    with pytest.raises(YamlInputError, match="expands to more than 10 values"):
        parse_yaml(loader_text, "x", max_values=10)


# ------------------------------------------------------------- run folders and locks


def test_two_runs_into_one_out_the_second_is_refused_and_the_first_keeps_its_rows(tmp_path, capsys):
    out = tmp_path / "shared"
    first = ["dataset=digits", "epochs=20", "e1=5", "e2=5", "rounds=2", "seed=0", "device=cpu"]
    proc = subprocess.Popen(cli("run", *first, "--out", str(out), "--quiet", "--threads", "1"),
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (out / LOCK_NAME).exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        second = [a.replace("seed=0", "seed=1") for a in first]
        assert main(["run", *second, "--out", str(out), "--quiet", "--threads", "1"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert f"is in use by ts3ray run (pid {proc.pid} on host {socket.gethostname()}" in err
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    run_id = make_config(dict(a.split("=") for a in first)).run_id
    for table, rows in (("epochs", 60), ("levels", 3)):
        frame = pq.read_table(out / f"{table}.parquet").to_pandas()
        assert len(frame) == rows and set(frame["run_id"]) == {run_id} and set(frame["seed"]) == {0}
    assert json.loads((out / "config.json").read_text())["seed"] == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt", "config.json", "epochs.parquet", "levels.parquet",
        "tickets"]  # lock released


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_NAME).write_text(json.dumps({"pid": 999999, "host": "elsewhere",
                                                "command": "ts3ray run"}))
    with RunFolderLock(folder) as lock:
        assert "pid 999999 on host elsewhere" in lock.took_over
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (folder / LOCK_NAME).exists() and folder.exists()


def test_a_live_lock_in_another_process_refuses_and_leaves_no_folder_behind(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from ts3ray.run_lock import RunFolderLock\n"
                               f"lock = RunFolderLock({str(folder)!r}).acquire()\n"
                               "print('held', flush=True); time.sleep(60)"],
                              env=cli_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderLocked, match=f"pid {holder.pid}"):
            RunFolderLock(folder).acquire()
    finally:
        holder.kill()
        holder.wait()
    with RunFolderLock(folder) as lock:  # the kernel dropped the dead holder's flock
        assert lock.took_over is not None


# ------------------------------------------------------------------------- faults


@pytest.mark.parametrize("sig, code, line", [(signal.SIGINT, 130, "ts3ray: interrupted (Ctrl-C)"),
                                             (signal.SIGTERM, 143, "ts3ray: terminated (SIGTERM)")])
def test_ctrl_c_and_sigterm_end_with_one_line_and_no_temp_files(tmp_path, sig, code, line):
    out = tmp_path / "run"
    args = ["dataset=digits", "epochs=40", "e1=5", "e2=5", "rounds=3", "seed=0", "device=cpu"]
    proc = subprocess.Popen(cli("run", *args, "--out", str(out), "--quiet", "--threads", "1"),
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_as_from_a_terminal)
    deadline = time.time() + 90
    while not (out / "epochs.parquet").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(sig)  # often lands inside a checkpoint's writes: they finish first
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.splitlines() == [f"{line}; resume with: ts3ray run --out {out} --resume"]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["checkpoint.pt", "config.json", "epochs.parquet", "levels.parquet"], names


def _small_file_limit():  # runs in the child: files above 256 KiB fail with EFBIG
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


def test_a_full_disk_is_one_line_exit_1_and_leaves_no_half_files(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(cli("run", *BASE, "--out", str(out), "--quiet", "--threads", "1"),
                          env=cli_env(), capture_output=True, text=True, timeout=120,
                          preexec_fn=_small_file_limit)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "File too large" in done.stderr
    assert "Traceback" not in done.stderr and "--debug" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]  # complete, and alone


def test_debug_shows_the_traceback_and_keeps_the_exit_status(tmp_path, capsys):
    assert main([*RUN, "weight_decay=inf", "--out", str(tmp_path / "o"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)") and "ConfigError" in err
    assert err.strip().splitlines()[-1].startswith("ts3ray: error: weight_decay='inf'")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------ identity


def test_minus_zero_and_zero_are_the_same_run():
    assert make_config({"tau": "-0"}).run_id == make_config({"tau": "0"}).run_id
    assert make_config({"lam": "-0.0"}).run_id == make_config({"lam": "0"}).run_id


# ------------------------------------------------------------------------ data fetch


def test_a_fetch_that_fails_verification_moves_nothing_into_the_root(tmp_path, capsys):
    src = tmp_path / "src"
    _mnist(src, n_train=20, n_test=10)
    root = tmp_path / "data"
    root.mkdir()
    code = main(["data", "fetch", "mnist", "--root", str(root), "--from", str(src / "MNIST" / "raw")])
    assert code == 2 and "expected (60000, 10000)" in capsys.readouterr().err
    assert list(root.iterdir()) == []  # staging folder gone, nothing placed
    assert main(["data", "check", "mnist", "--root", str(root)]) == 2


# --------------------------------------------------------------------------- Ray


def _listening_sockets(pids: set[int]) -> list[tuple[str, int, int]]:
    """(address, port, pid) of every listening TCP socket the processes hold."""
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        except OSError:
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            hex_addr, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_addr)
            if len(raw) == 4:
                address = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:  # four little-endian 32-bit words
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                address = socket.inet_ntop(socket.AF_INET6, words)
            found.append((address, int(hex_port, 16), inodes[fields[9]]))
    return found


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1")


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_a_local_sweep_listens_on_loopback_only_with_a_private_token(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = cli_env(HOME=str(home), RAY_TMPDIR=f"/tmp/rt-h11-{os.getpid()}")
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(cli("sweep", "sparsity", "--prune-fractions", "0.5", "--variants",
                                "full", "--num-cpus", "1", "--storage", str(tmp_path / "st"),
                                "epochs=2", "e1=1", "e2=1", "rounds=1"),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[tuple[str, int], str] = {}
    try:
        while proc.poll() is None:  # poll while Ray starts, runs the trial and stops
            tree = process_tree(proc.pid)
            for address, port, pid in _listening_sockets(set(tree)):
                seen[(address, port)] = tree[pid]
            time.sleep(0.2)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    assert proc.returncode == 0, err
    programs = set(seen.values())
    assert {"gcs_server", "raylet"} <= programs, seen
    assert any(p.startswith("ray::") for p in programs), seen  # a worker or an agent
    exposed = {k: v for k, v in seen.items() if not _is_loopback(k[0])}
    assert not exposed, f"listening beyond loopback: {exposed}"
    assert "local Ray listens on 127.0.0.1 only (token authentication on)" in err
    token = home / ".ray" / "auth_token"
    assert token.stat().st_size > 0 and token.stat().st_mode & 0o077 == 0


def test_an_unreachable_address_is_one_line_within_seconds():
    from ts3ray.tune.resources import check_reachable, cluster_endpoint

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused at once
    started = time.monotonic()
    with pytest.raises(UserError, match=f"--address=127.0.0.1:{port}: cannot reach") as err:
        check_reachable(f"127.0.0.1:{port}", "--address", timeout=2)
    assert err.value.exit_code == 1  # a network failure (README's exit table), not bad input
    assert time.monotonic() - started < 3
    assert cluster_endpoint("auto") is None and cluster_endpoint("ray://head") == ("head", 10001)
    with pytest.raises(UserError, match="HOST:PORT"):
        cluster_endpoint("head:port")


def test_the_token_file_is_made_private(tmp_path, monkeypatch):
    from ts3ray.tune.resources import private_token_file

    token = tmp_path / "token"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    assert private_token_file() is True and token.stat().st_mode & 0o777 == 0o600
    token.write_text("x" * 64)
    token.chmod(0o644)
    assert private_token_file() is False and token.stat().st_mode & 0o777 == 0o600
