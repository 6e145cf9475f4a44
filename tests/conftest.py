"""Shared fixtures: one local Ray instance for the Tune tests of a session.

Started with its own short temporary directory and shut down at the end; tests never stop
Ray processes they did not start (no `ray stop`).
"""
from __future__ import annotations

import os
import secrets
import shutil

import pytest

# Sweeps sign their records with this key (ts3ray/tune/trust.py): tests never create or read
# ~/.ts3ray/sweep-key. Subprocesses inherit it, so a resume in a subprocess verifies.
os.environ.setdefault("TS3RAY_SWEEP_KEY", secrets.token_hex(32))
# `ts3ray run` (in-process or a subprocess) takes its default thread count from here: tiny
# nets on a shared 2-core machine run 10-100x slower with two spinning threads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "1", "RAY_AIR_NEW_OUTPUT": "0"}


def ray_tmpdir() -> str:
    """A short per-process directory (Ray's socket paths must stay under ~107 bytes)."""
    path = f"/tmp/rt-ts3ray-{os.getpid()}"
    os.makedirs(path, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def local_ray():
    """A local Ray with 2 CPUs and 1 logical GPU (fractional GPU packing works on CPU)."""
    ray = pytest.importorskip("ray")
    saved = {k: os.environ.get(k) for k in [*RAY_ENV, "RAY_TMPDIR"]}
    os.environ.update(RAY_ENV)
    os.environ["RAY_TMPDIR"] = ray_tmpdir()
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False,
             _temp_dir=os.environ["RAY_TMPDIR"])
    try:
        yield ray
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(ray_tmpdir(), ignore_errors=True)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests train tiny networks in-process: one thread is faster than two for them, and two
    threads on a shared 2-core machine spin against other processes (measured on digits
    LeNet: 15 ms per epoch with 1 thread, up to 1.8 s with 2 while other work runs)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
