"""A URI data_root is copied once per machine into a local cache, safely under concurrency."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ts3ray.config import make_config
from ts3ray.data import local_data_root
from ts3ray.data.core.cache import COMPLETE, cached_folder
from ts3ray.data.sources.idx import write_idx
from ts3ray.errors import DataMissingError

FILES = {"train-images-idx3-ubyte": (600, 28, 28), "train-labels-idx1-ubyte": (600,),
         "t10k-images-idx3-ubyte": (100, 28, 28), "t10k-labels-idx1-ubyte": (100,)}


@pytest.fixture
def shared_root(tmp_path, monkeypatch):
    """An MNIST-layout folder reached by URI (file:// here; s3://, gs:// the same way)."""
    monkeypatch.setenv("TS3RAY_DATA_CACHE", str(tmp_path / "cache"))
    raw = tmp_path / "shared" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, shape in FILES.items():
        high = 10 if "labels" in name else 256
        write_idx(raw / name, rng.integers(0, high, shape, dtype=np.uint8))
    return f"file://{tmp_path / 'shared'}"


def test_a_uri_root_is_copied_once_and_then_read_from_the_cache(shared_root, tmp_path):
    local = Path(local_data_root(shared_root))
    assert local == cached_folder(shared_root) and (local / COMPLETE).is_file()
    for name in FILES:
        source = tmp_path / "shared" / "MNIST" / "raw" / name
        assert (local / "MNIST" / "raw" / name).read_bytes() == source.read_bytes()
    stamp = (local / COMPLETE).stat().st_mtime_ns
    assert local_data_root(shared_root) == str(local)
    assert (local / COMPLETE).stat().st_mtime_ns == stamp  # not copied again
    assert local_data_root(str(tmp_path / "shared")) == str(tmp_path / "shared")  # plain path


def test_concurrent_trials_on_one_node_share_one_complete_copy(shared_root, tmp_path):
    code = ("import sys; from ts3ray.data import local_data_root; "
            "print(local_data_root(sys.argv[1]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, shared_root], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ)) for _ in range(3)]
    paths = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs) and len(paths) == 1
    cache = tmp_path / "cache"
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) == \
        [Path(paths.pop()).name]  # one copy, no temporary folder left
    assert not any(p.name.endswith(".tmp") for p in cache.iterdir())


def test_a_run_reads_a_uri_root_through_the_cache_and_a_missing_one_is_one_line(shared_root,
                                                                                 tmp_path):
    from ts3ray.run import LotteryRun

    config = make_config({"dataset": "mnist", "data_root": shared_root, "epochs": 1, "e1": 1,
                          "e2": 0, "rounds": 0})
    run = LotteryRun(config, device="cpu")
    # MNIST's default holds out 1/6 per noisy class (50,000 of 60,000): here about 500 of 600
    assert 495 <= run.data.batches.num_samples <= 505 and run.data.path == "device"
    next(run.epochs())
    with pytest.raises(DataMissingError, match="is not a folder of datasets"):
        make_config({"dataset": "mnist", "data_root": f"file://{tmp_path / 'nowhere'}"})
