"""A sweep on a real two-node Ray cluster: a head and a second raylet started here.

Both nodes are `ray start --block` subprocesses with one CPU each, in their own process
groups, ended by process group (SIGTERM, then SIGKILL) — never `ray stop`, which would end
every Ray on the machine. The sweep script attaches through RAY_ADDRESS, exactly as on a
cluster; the Parquet `node` column must show trials on both nodes. Mid-sweep the second node
is killed (its whole process group, as when a spot instance is taken back): its trial is
retried on the head, and every row is kept exactly once.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from processes import kill_tree
from ts3ray.results.load import read_table
import pytest

pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[1]
RAY_CLI = Path(sys.executable).parent / "ray"
START_TIMEOUT_S = 60
STOP_GRACE_S = 10

# The sweep: Table IX's lambda block (4 trials), 30 epochs x 2 IMP levels per trial (long
# enough that the second node is mid-trial when it is killed), a checkpoint every 10 epochs.
LAM_VALUES = [0.0, 0.5, 0.7, 1.0]
EPOCHS, ROUNDS = 30, 1
SWEEP_ARGS = ["--params", "lam", "--cpus-per-trial", "1", "--gpus-per-trial", "0", "--name", "mn",
              "--checkpoint-every", "10", f"epochs={EPOCHS}", "e1=5", "e2=10", f"rounds={ROUNDS}"]

# Prints the alive nodes as JSON once `want` of them have joined.
WAIT_FOR_NODES = """
import json, sys, time, ray
want, deadline = int(sys.argv[1]), time.time() + float(sys.argv[2])
ray.init(logging_level="ERROR", log_to_driver=False)
while True:
    alive = [n for n in ray.nodes() if n["Alive"]]
    if len(alive) >= want or time.time() > deadline:
        break
    time.sleep(0.5)
print(json.dumps([{"id": n["NodeID"], "head": "node:__internal_head__" in n["Resources"],
                   "cpus": n["Resources"].get("CPU", 0)} for n in alive]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_env(temp_dir: str, address: str) -> dict[str, str]:
    """One environment for every process of the test cluster and its drivers.

    Ray 2.60 enables token authentication; a fresh token passed by environment keeps the
    test independent of ~/.ray/auth_token and of any other Ray on the machine.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update({
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TMPDIR": temp_dir,
        "RAY_ADDRESS": address,
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # SIGTERM: stop now, no 30 s drain
        "RAY_AIR_NEW_OUTPUT": "0",
        "PYTHONPATH": str(REPO),
    })
    return env


def end_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group we started, wait, then SIGKILL what is left."""
    for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; its children may linger briefly in the group
        deadline = time.time() + wait_s
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


@dataclass
class TwoNodeCluster:
    address: str
    env: dict[str, str]
    head_id: str
    worker_id: str
    worker: subprocess.Popen  # the second raylet's `ray start --block` (its group leader)


def start_node(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([str(RAY_CLI), "start", "--block", "--num-gpus=0",
                                 "--disable-usage-stats", *args],
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=REPO)


@pytest.fixture
def two_node_cluster(tmp_path):
    if not RAY_CLI.exists():
        pytest.skip(f"no ray CLI next to {sys.executable}")
    temp_dir = f"/tmp/rt-mn-{os.getpid()}"  # short: Ray's socket paths must stay < 108 bytes
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = cluster_env(temp_dir, address)
    nodes: list[subprocess.Popen] = []
    try:
        nodes.append(start_node(["--head", f"--port={port}", "--num-cpus=1",
                                 "--include-dashboard=false", f"--temp-dir={temp_dir}"],
                                env, tmp_path / "head.log"))
        nodes.append(start_node([f"--address={address}", "--num-cpus=1",
                                 f"--temp-dir={temp_dir}"], env, tmp_path / "worker.log"))
        waited = subprocess.run([sys.executable, "-c", WAIT_FOR_NODES, "2", str(START_TIMEOUT_S)],
                                env=env, capture_output=True, text=True,
                                timeout=START_TIMEOUT_S + 30)
        logs = "".join(p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("*.log"))
        assert waited.returncode == 0, waited.stderr[-3000:] + logs
        alive = json.loads(waited.stdout.strip().splitlines()[-1])
        assert len(alive) == 2 and all(n["cpus"] == 1 for n in alive), (alive, logs)
        head = [n["id"] for n in alive if n["head"]]
        worker = [n["id"] for n in alive if not n["head"]]
        assert len(head) == len(worker) == 1, alive
        yield TwoNodeCluster(address, env, head[0], worker[0], nodes[1])
    finally:
        for proc in reversed(nodes):  # the extra raylet first, then the head
            end_group(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)


def read_results(results: Path, table: str):
    return read_table(str(results), table)


class NodesThatWrote:
    """The nodes named in the epoch files trials appended so far (each file read once)."""

    def __init__(self, results: Path):
        self.results, self.seen, self.nodes = results, set(), set()

    def __call__(self) -> set[str]:
        import pyarrow.parquet as pq

        for path in (self.results / "epochs").rglob("[!.]*.parquet"):
            if path not in self.seen:
                self.seen.add(path)
                self.nodes |= set(pq.read_table(path, columns=["node"]).column("node").to_pylist())
        return self.nodes


def test_sweep_runs_on_both_nodes_and_survives_losing_one(two_node_cluster, tmp_path):
    storage = tmp_path / "storage"
    results = storage / "mn" / "results"
    started = time.perf_counter()
    driver = subprocess.Popen([sys.executable, str(REPO / "sweeps" / "sensitivity.py"),
                               *SWEEP_ARGS, "--storage", str(storage)],
                              env=two_node_cluster.env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    deadline, wrote = time.time() + 180, NodesThatWrote(results)
    while (two_node_cluster.worker_id not in wrote() and time.time() < deadline
           and driver.poll() is None):
        time.sleep(0.05)
    assert driver.poll() is None, "the sweep ended before the second node could be killed"
    time.sleep(0.3)  # the report carrying that trial's checkpoint follows its rows' write
    kill_tree(two_node_cluster.worker.pid)  # as when the machine is taken back
    lost_at = time.time()
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, out + err[-4000:]

    epochs, levels = read_results(results, "epochs"), read_results(results, "levels")
    trial_ids = set(epochs["trial_id"])
    assert len(trial_ids) == len(LAM_VALUES) and set(levels["trial_id"]) == trial_ids
    assert sorted(levels.drop_duplicates("trial_id")["lam"]) == LAM_VALUES
    # no row lost or duplicated: each (round, epoch) and each IMP level exactly once
    per_epoch = epochs.groupby(["trial_id", "round", "epoch"]).size()
    assert (per_epoch == 1).all() and len(per_epoch) == len(LAM_VALUES) * (ROUNDS + 1) * EPOCHS
    per_level = levels.groupby(["trial_id", "round"]).size()
    assert (per_level == 1).all() and len(per_level) == len(LAM_VALUES) * (ROUNDS + 1)
    assert not epochs["stopped_early"].any()  # every trial ran its full budget

    head, worker = two_node_cluster.head_id, two_node_cluster.worker_id
    assert set(epochs["node"]) == {head, worker}  # trials ran on both nodes
    assert (epochs.loc[epochs["node"] == worker, "written_at"] < lost_at).all()  # none after
    moved = epochs.groupby("trial_id")["node"].nunique()
    assert (moved == 2).any()  # the trial running there at the loss continued on the head...
    retried = epochs[epochs["trial_id"].isin(moved[moved == 2].index)].sort_values("global_epoch")
    assert (retried.groupby("trial_id")["node"].last() == head).all()
    assert (retried.loc[retried["node"] == head, "attempt"] >= 2).all()  # ...as a retry
    print(f"sweep on 2 nodes, one lost: {time.perf_counter() - started:.1f} s")
