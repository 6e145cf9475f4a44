"""The storage module: one rule for locations, one atomic write, the sweep layout."""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from ts3ray import storage


def test_local_paths_home_and_file_uris_resolve_to_the_same_absolute_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for location in ("~/sweeps", "sweeps", str(tmp_path / "sweeps"), f"file://{tmp_path}/sweeps"):
        fs, path = storage.resolve(location)
        assert isinstance(fs, pafs.LocalFileSystem) and path == str(tmp_path / "sweeps")
    assert storage.absolute("sweeps") == str(tmp_path / "sweeps")
    assert storage.absolute("s3://b/p") == "s3://b/p"  # URIs are left as they are


def test_uri_query_strings_configure_the_filesystem_and_stay_out_of_the_path():
    location = "s3://my-bucket/ts3ray?region=eu-west-1"
    layout = storage.SweepLayout(location, "grid-1")
    assert layout.experiment == "s3://my-bucket/ts3ray/grid-1?region=eu-west-1"
    assert layout.table("levels") == "s3://my-bucket/ts3ray/grid-1/results/levels?region=eu-west-1"
    fs, path = storage.resolve(layout.results)  # pyarrow parses it; nothing is contacted
    assert fs.type_name == "s3" and fs.region == "eu-west-1"
    assert path == "my-bucket/ts3ray/grid-1/results"
    assert storage.parent(layout.results) == layout.experiment


def test_atomic_write_leaves_the_old_file_or_the_new_one_and_no_temporary(tmp_path):
    target = str(tmp_path / "a" / "b.txt")
    storage.write_text_atomic(target, "old")

    def broken(stream):
        stream.write(b"half of the new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        storage.write_atomic(target, broken)
    assert Path(target).read_text() == "old"
    assert os.listdir(tmp_path / "a") == ["b.txt"]  # the temporary file is gone
    storage.write_atomic(f"file://{target}", lambda stream: stream.write(b"new"))
    assert storage.read_bytes(target) == b"new" and storage.read_bytes(target + "x") is None


def test_default_storage_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(storage.STORAGE_ENV, raising=False)
    assert storage.default_storage() == "ray_results"
    monkeypatch.setenv(storage.STORAGE_ENV, "s3://bucket/x")
    assert storage.default_storage() == "s3://bucket/x"
