"""Paths and labels read from a real-world dataset's own files stay inside its folder and its
classes (ts3ray/data/core/contained.py): `..`, absolute paths, NUL bytes and symlinks out of the
folder refused with the list file, its line and the entry; labels outside the classes refused
with the file, the line, the value and the range; a symlinked dataset folder accepted. Every
fixture is the dataset's exact on-disk layout (tests/realworld_layouts.py)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import realworld_layouts as layouts
from ts3ray.cli import main
from ts3ray.data import check_available, load_file_dataset
from ts3ray.errors import DataFileError, DataMissingError, UserError


def refused(name: str, root: Path, error=DataFileError) -> str:
    """The one line of the up-front check (what `ts3ray run` calls before anything starts)."""
    with pytest.raises(error) as err:
        check_available(name, root)
    text = str(err.value)
    assert "\n" not in text and issubclass(error, UserError) and err.value.exit_code == 2
    return text


def clothing_keys(base: Path, *extra: str) -> Path:
    """The training key list with ``extra`` as lines 8, 9, ... (line numbers 1-based)."""
    return layouts.write_lines(base / "noisy_train_key_list.txt", layouts.CLOTHING_TRAIN + list(extra))


@pytest.mark.parametrize("entry,why", [
    ("../../etc/passwd", "has a '..' component"),
    ("images/0/../../../x.jpg", "has a '..' component"),
    ("/etc/passwd", "is an absolute path"),
    ("images/0/a\0b.jpg", "holds a NUL byte"),
])
def test_clothing1m_key_outside_the_folder_is_refused_with_file_line_and_path(tmp_path, entry, why):
    base = layouts.clothing1m(tmp_path)
    keys = clothing_keys(base, entry)
    line = refused("clothing1m", tmp_path)
    assert line.startswith(f"clothing1m list {keys} line 8: {entry!r} {why}")
    assert str(base) in line


def test_a_label_file_entry_outside_the_folder_is_refused_too(tmp_path):
    base = layouts.clothing1m(tmp_path)
    kv = layouts.write_lines(base / "clean_label_kv.txt", ["images/5/50/val0.jpg 3", "../secret.jpg 4"])
    assert refused("clothing1m", tmp_path).startswith(f"clothing1m list {kv} line 2: '../secret.jpg' has a '..'")


def test_symlinks_out_of_the_folder_are_refused_folder_or_file(tmp_path):
    outside = tmp_path / "outside"
    layouts.write_image(outside / "x.jpg", layouts.image(1, 8, 8))
    base = layouts.clothing1m(tmp_path / "root")
    os.symlink(outside, base / "images/9")  # a folder that leaves
    keys = clothing_keys(base, "images/9/x.jpg")
    line = refused("clothing1m", tmp_path / "root")
    assert line.startswith(f"clothing1m list {keys} line 8: 'images/9/x.jpg' lies in images/9/, which "
                           f"resolves to {outside.resolve()}, outside the dataset folder {base}")
    (base / "images/9").unlink()
    os.symlink(outside / "x.jpg", base / "images/0/00/link.jpg")  # a file that leaves
    keys = clothing_keys(base, "images/0/00/link.jpg")
    line = refused("clothing1m", tmp_path / "root")
    assert line.startswith(f"clothing1m list {keys} line 8: 'images/0/00/link.jpg' is a symlink to "
                           f"{(outside / 'x.jpg').resolve()}, outside the dataset folder {base}")


def test_symlinks_that_stay_inside_and_a_symlinked_dataset_folder_are_accepted(tmp_path):
    real = layouts.clothing1m(tmp_path / "disk2")
    os.symlink(real / "images/0/00/train0.jpg", real / "images/0/00/alias.jpg")  # inside: fine
    os.symlink("../1", real / "images/7")  # a relative folder link that stays inside
    (tmp_path / "root").mkdir()
    os.symlink(real, tmp_path / "root" / "clothing1m")  # the dataset folder kept on another disk
    clothing_keys(real, "images/0/00/alias.jpg", "images/7/01/train1.jpg")
    layouts.write_lines(real / "noisy_label_kv.txt", [f"{p} {y}" for p, y in layouts.CLOTHING_NOISY.items()]
                        + ["images/0/00/alias.jpg 5", "images/7/01/train1.jpg 6"])
    check_available("clothing1m", tmp_path / "root")
    ds = load_file_dataset("clothing1m", tmp_path / "root")
    assert [p.decode() for p in ds.train.paths][-2:] == ["images/0/00/alias.jpg", "images/7/01/train1.jpg"]
    assert ds.train.labels.tolist()[-2:] == [5, 6]
    assert ds.train.path(ds.root, 7).read_bytes() == (real / "images/0/00/train0.jpg").read_bytes()


@pytest.mark.parametrize("label", ["14", "-1", "99999999999999999999"])
def test_clothing1m_label_outside_the_14_classes_is_one_line(tmp_path, label):
    base = layouts.clothing1m(tmp_path)
    lines = [f"{p} {y}" for p, y in layouts.CLOTHING_NOISY.items()]
    lines[2] = f"{layouts.CLOTHING_TRAIN[2]} {label}"
    kv = layouts.write_lines(base / "noisy_label_kv.txt", lines)
    assert refused("clothing1m", tmp_path) == (f"clothing1m list {kv} line 3: label {label} of "
                                               f"{layouts.CLOTHING_TRAIN[2]!r} is outside 0..13 "
                                               f"(clothing1m has 14 classes)")


def test_webvision_keeps_0_to_49_drops_50_to_999_refuses_the_rest(tmp_path):
    base = layouts.webvision(tmp_path, with_imagenet=False)
    assert load_file_dataset("webvision50", tmp_path).train.labels.tolist() == [0, 49, 7, 3]  # 50, 999 dropped
    train = base / "info/train_filelist_google.txt"
    for bad in ("1000", "-1"):
        layouts.write_lines(train, [f"{p} {y}" for p, y in layouts.WEB_TRAIN] + [f"google/q0001/z.jpg {bad}"])
        assert refused("webvision50", tmp_path) == (
            f"webvision50 list {train} line 7: label {bad} of 'google/q0001/z.jpg' is outside 0..999 (WebVision "
            f"has 1,000 classes, of which webvision50 keeps 0..49)")
    layouts.write_lines(train, ["google/q0001/a.jpg 0", "google/q0001/b.jpg ²"])  # isdigit() but not int()
    line = refused("webvision50", tmp_path, DataMissingError)
    assert f"{train}:2: expected '<image path> <integer label>'" in line


def test_webvision_paths_are_contained_kept_or_dropped(tmp_path):
    base = layouts.webvision(tmp_path, with_imagenet=False)
    train, val = base / "info/train_filelist_google.txt", base / "info/val_filelist.txt"
    layouts.write_lines(train, ["google/q0001/a.jpg 0", "/etc/passwd 700"])  # dropped class: never opened, still refused
    assert refused("webvision50", tmp_path).startswith(f"webvision50 list {train} line 2: '/etc/passwd' is an absolute")
    layouts.write_lines(train, [f"{p} {y}" for p, y in layouts.WEB_TRAIN])
    layouts.write_lines(val, ["val000001.jpg 2", "../../google/q0001/a.jpg 3"])
    assert refused("webvision50", tmp_path).startswith(f"webvision50 list {val} line 2: '../../google/q0001/a.jpg'")


def test_ilsvrc_synsets_are_bounded_by_imagenet_val_which_may_be_a_link(tmp_path):
    base = layouts.webvision(tmp_path / "root")
    imagenet = tmp_path / "imagenet-copy"
    (base / "imagenet/val").rename(imagenet)
    os.symlink(imagenet, base / "imagenet/val")  # a link to an ImageNet kept elsewhere: accepted
    assert load_file_dataset("webvision50", tmp_path / "root").tests["ilsvrc12_val"].labels.tolist() == [0, 0, 49]
    synsets = base / "info/synsets.txt"
    layouts.write_lines(synsets, ["../../../etc x"] + [f"{s} c" for s in layouts.SYNSETS[1:]])
    assert refused("webvision50", tmp_path / "root").startswith(f"webvision50 list {synsets} line 1: '../../../etc'")
    layouts.write_lines(synsets, [f"{s} c" for s in layouts.SYNSETS])
    os.symlink(tmp_path / "root", imagenet / layouts.SYNSETS[0] / "up.jpeg")
    assert "is a symlink to" in refused("webvision50", tmp_path / "root")


def test_animal10n_image_symlinked_out_of_the_folder_is_refused(tmp_path):
    base = layouts.animal10n(tmp_path / "root", n_train=3, n_test=2)
    secret = layouts.write_image(tmp_path / "secret.jpg", layouts.image(0, 8, 8))
    os.symlink(secret, base / "training/3_99999.jpg")
    assert refused("animal10n", tmp_path / "root") == (
        f"animal10n folder {base / 'training'}: '3_99999.jpg' is a symlink to {secret.resolve()}, "
        f"outside the dataset folder {base}")


def test_a_list_that_is_not_text_is_one_line(tmp_path):
    base = layouts.clothing1m(tmp_path)
    keys = base / "clean_test_key_list.txt"
    keys.write_bytes(b"images/6/60/test0.jpg\n\xff\xfe\n")
    assert refused("clothing1m", tmp_path).startswith(f"clothing1m list {keys} line 2: not UTF-8 text")


def test_ts3ray_run_refuses_before_anything_is_written(tmp_path, capsys):
    base = layouts.clothing1m(tmp_path / "root")
    keys = clothing_keys(base, "../../etc/passwd")
    out = tmp_path / "out"
    code = main(["run", "dataset=clothing1m", f"data_root={tmp_path / 'root'}", "epochs=2", "e1=1", "e2=1",
                 "rounds=1", "device=cpu", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and not out.exists()
    assert err == [f"ts3ray: error: clothing1m list {keys} line 8: '../../etc/passwd' has a '..' component "
                   f"and may leave the dataset folder {base}; list paths must stay inside it"]
