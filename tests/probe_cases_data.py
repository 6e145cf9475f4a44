"""Probe cases (tests/probe_hardening.py): real-world dataset list files that name paths outside
the dataset folder or labels outside its classes. Each is refused by `ts3ray run` with one
line naming the list file, the line and the entry, before anything is written."""
from __future__ import annotations

import os
from pathlib import Path

import realworld_layouts as layouts

OUT = ["--quiet", "--threads", "1", "--out", "{t}/new_out"]
TINY = ["epochs=2", "e1=1", "e2=1", "rounds=1", "device=cpu"]
KEYS = "clothing1m/noisy_train_key_list.txt"
NOISY = "clothing1m/noisy_label_kv.txt"
WEB_TRAIN = "webvision/info/train_filelist_google.txt"


def run(dataset: str, folder: str) -> list[str]:
    return ["run", f"dataset={dataset}", f"data_root={{t}}/paths/{folder}", *TINY, *OUT]


BAD_INPUTS = [
    ("clothing1m key '../../etc/passwd'", run("clothing1m", "up"), 2,
     f"clothing1m list {{t}}/paths/up/{KEYS} line 8: '../../etc/passwd' has a '..' component", "err"),
    ("clothing1m key '/etc/passwd'", run("clothing1m", "absolute"), 2,
     f"clothing1m list {{t}}/paths/absolute/{KEYS} line 8: '/etc/passwd' is an absolute path", "err"),
    ("clothing1m key with a NUL byte", run("clothing1m", "nul"), 2,
     f"clothing1m list {{t}}/paths/nul/{KEYS} line 8: 'images/0/a\\x00b.jpg' holds a NUL byte", "err"),
    ("clothing1m folder symlinked out", run("clothing1m", "link_folder"), 2,
     f"clothing1m list {{t}}/paths/link_folder/{KEYS} line 8: 'images/9/x.jpg' lies in images/9/, which "
     f"resolves to", "err"),
    ("clothing1m image symlinked out", run("clothing1m", "link_file"), 2,
     f"clothing1m list {{t}}/paths/link_file/{KEYS} line 8: 'images/0/00/link.jpg' is a symlink to", "err"),
    ("clothing1m label 14", run("clothing1m", "label14"), 2,
     f"clothing1m list {{t}}/paths/label14/{NOISY} line 3: label 14 of 'images/2/02/train2.jpg' is outside "
     f"0..13", "err"),
    ("clothing1m list not UTF-8", run("clothing1m", "binary"), 2,
     "clothing1m list {t}/paths/binary/clothing1m/clean_test_key_list.txt line 2: not UTF-8 text", "err"),
    ("webvision label 1000", run("webvision50", "label1000"), 2,
     f"webvision50 list {{t}}/paths/label1000/{WEB_TRAIN} line 7: label 1000 of 'google/q0001/z.jpg' is "
     f"outside 0..999", "err"),
    ("webvision label '²'", run("webvision50", "superscript"), 2,
     f"{{t}}/paths/superscript/{WEB_TRAIN}:2: expected '<image path> <integer label>'", "err"),
    ("webvision synset '../../../etc'", run("webvision50", "synset_up"), 2,
     "webvision50 list {t}/paths/synset_up/webvision/info/synsets.txt line 1: '../../../etc' has a '..'", "err"),
    ("animal10n image symlinked out", run("animal10n", "animal_link"), 2,
     "animal10n folder {t}/paths/animal_link/ANIMAL-10N/training: '3_99999.jpg' is a symlink to", "err"),
]


def _clothing(world: Path, folder: str, *extra_keys: str) -> Path:
    base = layouts.clothing1m(world / "paths" / folder)
    if extra_keys:
        layouts.write_lines(base / "noisy_train_key_list.txt", layouts.CLOTHING_TRAIN + list(extra_keys))
    return base


def build(world: Path) -> None:
    outside = world / "paths" / "outside"
    layouts.write_image(outside / "x.jpg", layouts.image(1, 8, 8))
    _clothing(world, "up", "../../etc/passwd")
    _clothing(world, "absolute", "/etc/passwd")
    _clothing(world, "nul", "images/0/a\0b.jpg")
    base = _clothing(world, "link_folder", "images/9/x.jpg")
    os.symlink(outside, base / "images/9")
    base = _clothing(world, "link_file", "images/0/00/link.jpg")
    os.symlink(outside / "x.jpg", base / "images/0/00/link.jpg")
    base = _clothing(world, "label14")
    lines = [f"{p} {y}" for p, y in layouts.CLOTHING_NOISY.items()]
    lines[2] = f"{layouts.CLOTHING_TRAIN[2]} 14"
    layouts.write_lines(base / "noisy_label_kv.txt", lines)
    base = _clothing(world, "binary")
    (base / "clean_test_key_list.txt").write_bytes(b"images/6/60/test0.jpg\n\xff\xfe\n")
    base = layouts.webvision(world / "paths" / "label1000", with_imagenet=False)
    layouts.write_lines(base / "info/train_filelist_google.txt",
                        [f"{p} {y}" for p, y in layouts.WEB_TRAIN] + ["google/q0001/z.jpg 1000"])
    base = layouts.webvision(world / "paths" / "superscript", with_imagenet=False)
    layouts.write_lines(base / "info/train_filelist_google.txt", ["google/q0001/a.jpg 0", "google/q0001/b.jpg ²"])
    base = layouts.webvision(world / "paths" / "synset_up")
    layouts.write_lines(base / "info/synsets.txt", ["../../../etc x"] + [f"{s} c" for s in layouts.SYNSETS[1:]])
    base = layouts.animal10n(world / "paths" / "animal_link", n_train=3, n_test=2)
    os.symlink(outside / "x.jpg", base / "training/3_99999.jpg")
