"""Dataset loaders: digits, synthetic, and tiny fabricated files in torchvision's layout."""
import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from ts3ray.data import DATASET_NAMES, ImageDataset, check_available, load_dataset, make_synthetic, num_classes_of
from ts3ray.errors import ConfigError, DataMissingError

MNIST_NAMES = {
    "train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX written by hand: 0, 0, type 0x08, ndim, then big-endian int32 sizes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "i" * array.ndim, *array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_mnist(root, folder="MNIST", n_train=20, n_test=6, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": np.arange(n_train, dtype=np.uint8) % 10,
        "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_y": (np.arange(n_test, dtype=np.uint8) * 3) % 10,
    }
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for part, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (raw / f"{MNIST_NAMES[part]}.gz").write_bytes(gzip.compress(data))
        else:
            (raw / MNIST_NAMES[part]).write_bytes(data)
    return arrays


def fake_cifar(root, folder, train_files, test_files, label_key, num_classes, n_per_file=3, seed=0):
    rng = np.random.default_rng(seed)
    written = {}
    (root / folder).mkdir(parents=True)
    for i, name in enumerate(train_files + test_files):
        data = rng.integers(0, 256, (n_per_file, 3072), dtype=np.uint8)
        labels = [int(v) for v in (np.arange(n_per_file) + 7 * i) % num_classes]
        with open(root / folder / name, "wb") as f:
            pickle.dump({b"data": data, label_key: labels, b"batch_label": b"x"}, f)
        written[name] = (data, labels)
    return written


CIFAR10_FILES = ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"])


def test_digits_offline_shapes_dtypes_and_stratified_split():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits", seed=3)
    assert ds.train_x.shape == (1437, 1, 8, 8) and ds.test_x.shape == (360, 1, 8, 8)
    assert ds.train_x.dtype == torch.uint8 and ds.train_y.dtype == torch.int64
    assert (ds.num_classes, ds.in_channels, ds.image_size, ds.augment) == (10, 1, (8, 8), False)
    # pixel k in 0..16 becomes round(k * 255 / 16): 16 -> 255, 0 -> 0
    allowed = set(np.rint(np.arange(17) * 255 / 16).astype(int).tolist())
    assert set(ds.train_x.unique().tolist()) <= allowed and int(ds.train_x.max()) == 255
    # stratified 80/20: every class has floor or ceil of 20% in test, and the splits partition the set
    per_class = np.bincount(load_digits().target, minlength=10)
    test_counts = ds.test_y.bincount(minlength=10).numpy()
    assert np.all(np.abs(test_counts - 0.2 * per_class) < 1)
    assert np.array_equal(test_counts + ds.train_y.bincount(minlength=10).numpy(), per_class)
    # mean/std are those of the train split
    x = ds.train_x.double() / 255
    assert ds.mean[0] == pytest.approx(float(x.mean())) and ds.std[0] == pytest.approx(float(x.std()))


def test_digits_split_is_fixed_by_seed():
    a, b, c = load_dataset("digits", seed=0), load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_layout_loads_exact_pixels_and_labels(tmp_path, name, folder, gz):
    arrays = fake_mnist(tmp_path, folder, gz=gz)
    check_available(name, tmp_path)
    ds = load_dataset(name, tmp_path)
    assert ds.train_x.shape == (20, 1, 28, 28) and ds.test_x.shape == (6, 1, 28, 28)
    assert ds.train_x.dtype == torch.uint8 and ds.test_y.dtype == torch.int64
    assert np.array_equal(ds.train_x[:, 0].numpy(), arrays["train_x"])
    assert np.array_equal(ds.test_x[:, 0].numpy(), arrays["test_x"])
    assert ds.train_y.tolist() == arrays["train_y"].tolist()
    assert ds.test_y.tolist() == [0, 3, 6, 9, 2, 5]
    assert ds.augment is False and ds.num_classes == 10


def test_download_flag_uses_files_already_in_place(tmp_path):
    fake_mnist(tmp_path)
    assert load_dataset("mnist", tmp_path, download=True).train_x.shape[0] == 20


def test_truncated_idx_file_names_the_path(tmp_path):
    fake_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    for call in (lambda: load_dataset("mnist", tmp_path), lambda: check_available("mnist", tmp_path)):
        with pytest.raises(DataMissingError) as err:
            call()
        msg = str(err.value)
        assert str(path) in msg and "\n" not in msg and "ts3ray data fetch mnist" in msg


def test_truncated_gz_and_bad_header(tmp_path):
    fake_mnist(tmp_path, gz=True)
    gz = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:10])
    with pytest.raises(DataMissingError, match="t10k-labels-idx1-ubyte.gz is truncated"):
        load_dataset("mnist", tmp_path)
    gz.write_bytes(gzip.compress(b"\x00\x00\x0d\x01" + struct.pack(">i", 6) + bytes(24)))  # float type
    with pytest.raises(DataMissingError, match="not an unsigned-byte IDX"):
        load_dataset("mnist", tmp_path)


def test_image_and_label_counts_must_agree(tmp_path):
    fake_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(DataMissingError, match="do not form"):
        load_dataset("mnist", tmp_path)


@pytest.mark.parametrize("name,expected", [
    ("mnist", "MNIST/raw/train-images-idx3-ubyte is missing; run `ts3ray data fetch mnist --root "),
    ("fashion-mnist", "FashionMNIST/raw/train-images-idx3-ubyte is missing; run `ts3ray data fetch fashion-mnist"),
    ("cifar10", "cifar-10-batches-py/data_batch_1 is missing"),
    ("cifar100", "cifar-100-python/train is missing"),
])
def test_missing_directory_fails_with_one_clear_line(tmp_path, name, expected):
    root = tmp_path / "nowhere"
    for call in (lambda: load_dataset(name, root), lambda: check_available(name, root)):
        with pytest.raises(DataMissingError) as err:
            call()
        assert expected in str(err.value) and str(root) in str(err.value) and "\n" not in str(err.value)


def test_cifar10_layout_loads_exact_pixels_and_labels(tmp_path):
    written = fake_cifar(tmp_path, "cifar-10-batches-py", *CIFAR10_FILES, b"labels", 10)
    check_available("cifar10", tmp_path)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.train_x.shape == (15, 3, 32, 32) and ds.test_x.shape == (3, 3, 32, 32)
    assert ds.augment is True and ds.mean == (0.4914, 0.4822, 0.4465)
    first, _ = written["data_batch_1"]
    assert torch.equal(ds.train_x[0, 0].flatten(), torch.from_numpy(first[0, :1024]))  # red plane
    assert torch.equal(ds.train_x[1, 2, 31], torch.from_numpy(first[1, 3072 - 32:]))   # last blue row
    assert torch.equal(ds.train_x[12:].reshape(3, -1), torch.from_numpy(written["data_batch_5"][0]))
    assert ds.train_y.tolist() == sum((written[f][1] for f in CIFAR10_FILES[0]), [])
    assert ds.test_y.tolist() == written["test_batch"][1] == [5, 6, 7]
    assert torch.equal(ds.test_x.reshape(3, -1), torch.from_numpy(written["test_batch"][0]))


def test_cifar100_uses_fine_labels(tmp_path):
    written = fake_cifar(tmp_path, "cifar-100-python", ["train"], ["test"], b"fine_labels", 100, n_per_file=4)
    ds = load_dataset("cifar100", tmp_path)
    assert ds.num_classes == 100 and ds.train_y.tolist() == [0, 1, 2, 3] and ds.test_y.tolist() == [7, 8, 9, 10]
    assert torch.equal(ds.train_x.reshape(4, -1), torch.from_numpy(written["train"][0]))


def test_truncated_or_wrong_size_cifar_pickle(tmp_path):
    fake_cifar(tmp_path, "cifar-10-batches-py", *CIFAR10_FILES, b"labels", 10)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataMissingError) as err:
        load_dataset("cifar10", tmp_path)
    assert f"{path} is truncated" in str(err.value) and "--download" in str(err.value)
    assert "\n" not in str(err.value)
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((3, 3000), np.uint8), b"labels": [0, 1, 2]}, f)
    with pytest.raises(DataMissingError, match=f"{path} has data uint8\\(3, 3000\\)"):
        load_dataset("cifar10", tmp_path)


def test_registry_names_classes_and_unknown_name():
    assert set(DATASET_NAMES) >= {"digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "synthetic",
                                  "synthetic-cifar"}
    assert [num_classes_of(n) for n in ("digits", "mnist", "cifar10", "cifar100")] == [10, 10, 10, 100]
    check_available("digits", "/nonexistent")
    check_available("synthetic", "/nonexistent")
    with pytest.raises(ConfigError, match="dataset='svhn'"):
        load_dataset("svhn")
    with pytest.raises(ConfigError, match="dataset="):
        num_classes_of("svhn")


def test_image_dataset_rejects_wrong_dtypes():
    x, y = torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ValueError, match="train_x must be uint8"):
        ImageDataset("t", x.float(), y, x, y, 2, (0.5,), (0.2,), False)
    with pytest.raises(ValueError, match="test_y must be int64"):
        ImageDataset("t", x, y, x, y.int(), 2, (0.5,), (0.2,), False)


def test_synthetic_is_seeded_and_shaped():
    a, b, c = (make_synthetic(num_classes=5, shape=(2, 6, 7), n_train=50, n_test=20, seed=s) for s in (4, 4, 5))
    assert a.train_x.shape == (50, 2, 6, 7) and a.test_x.shape == (20, 2, 6, 7) and a.num_classes == 5
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.train_y, b.train_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert a.train_y.bincount().tolist() == [10] * 5  # balanced
    cifar_like = load_dataset("synthetic-cifar")
    assert cifar_like.train_x.shape[1:] == (3, 32, 32) and cifar_like.augment and len(cifar_like.mean) == 3


def test_synthetic_is_learnable_by_logistic_regression():
    ds = load_dataset("synthetic", seed=0)

    def features(x):
        return ((x.float() / 255 - ds.mean[0]) / ds.std[0]).flatten(1)

    torch.manual_seed(0)
    model = torch.nn.Linear(64, ds.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = features(ds.train_x), ds.train_y
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    accuracy = (model(features(ds.test_x)).argmax(1) == ds.test_y).float().mean().item()
    assert accuracy > 0.8  # chance is 0.1
