"""Tiny real-world datasets written in each dataset's exact on-disk layout (real JPEG/PNG files).

Pixels come from a seeded generator: smooth colour gradients plus noise, so JPEG round trips
are meaningful and every image differs.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch
from torchvision.io import encode_jpeg, encode_png


def image(seed: int, height: int, width: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(3, 1, 1, generator=gen) * 200
    ramp = torch.linspace(0, 50, width).view(1, 1, width) + torch.linspace(0, 30, height).view(1, height, 1)
    noise = torch.rand(3, height, width, generator=gen) * 20
    return (base + ramp + noise).clamp(0, 255).to(torch.uint8)


def write_image(path: Path, pixels: torch.Tensor) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = encode_png(pixels) if path.suffix == ".png" else encode_jpeg(pixels, quality=90)
    path.write_bytes(bytes(encoded.numpy()))
    return path


def write_lines(path: Path, lines) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


# -- ANIMAL-10N: training/ and testing/, "<label>_<id>.jpg", 64 x 64 -------------------------
def animal10n(root: Path, n_train: int = 12, n_test: int = 5, size: int = 64) -> Path:
    base = root / "ANIMAL-10N"
    for split, n, offset in (("training", n_train, 0), ("testing", n_test, 1000)):
        for i in range(n):
            label = (3 * i + 1) % 10
            write_image(base / split / f"{label}_{offset + i:05d}.jpg", image(offset + i, size, size))
    return base


# -- Clothing1M: kv annotation files, key lists, images/ --------------------------------------
CLOTHING_TRAIN = [f"images/{i % 3}/{i:02d}/train{i}.jpg" for i in range(7)]
CLOTHING_VAL = [f"images/5/50/val{i}.jpg" for i in range(3)]
CLOTHING_TEST = [f"images/6/60/test{i}.jpg" for i in range(4)]
CLOTHING_NOISY = {p: (2 * i + 1) % 14 for i, p in enumerate(CLOTHING_TRAIN)}
CLOTHING_CLEAN = {**{p: (i + 3) % 14 for i, p in enumerate(CLOTHING_VAL + CLOTHING_TEST)},
                  CLOTHING_TRAIN[1]: CLOTHING_NOISY[CLOTHING_TRAIN[1]],        # known, label right
                  CLOTHING_TRAIN[4]: (CLOTHING_NOISY[CLOTHING_TRAIN[4]] + 1) % 14}  # known, label wrong


def clothing1m(root: Path) -> Path:
    base = root / "clothing1m"
    for i, path in enumerate(CLOTHING_TRAIN + CLOTHING_VAL + CLOTHING_TEST):
        write_image(base / path, image(100 + i, 40 + 3 * i, 56 - 2 * i))  # portrait and landscape
    write_lines(base / "noisy_label_kv.txt", [f"{p} {y}" for p, y in CLOTHING_NOISY.items()]
                + [f"{CLOTHING_VAL[0]} 13"])  # the real file also labels images outside the train keys
    write_lines(base / "clean_label_kv.txt", [f"{p} {y}" for p, y in CLOTHING_CLEAN.items()])
    write_lines(base / "noisy_train_key_list.txt", CLOTHING_TRAIN)
    write_lines(base / "clean_val_key_list.txt", CLOTHING_VAL)
    write_lines(base / "clean_test_key_list.txt", CLOTHING_TEST)
    return base


# -- WebVision 1.0 + ILSVRC12 val --------------------------------------------------------------
SYNSETS = [f"n{1440764 + 17 * c:08d}" for c in range(60)]
WEB_TRAIN = [("google/q0001/a.jpg", 0), ("google/q0001/b.jpg", 49), ("google/q0077/c.jpg", 50),
             ("google/q0002/d.png", 7), ("google/q0999/e.jpg", 999), ("google/q0003/f.jpg", 3)]
WEB_VAL = [("val000001.jpg", 2), ("val000002.jpg", 51), ("val000003.jpg", 49)]
IMAGENET = {0: ["ILSVRC2012_val_00000293.JPEG", "ILSVRC2012_val_00002138.JPEG"], 49: ["ILSVRC2012_val_00000001.JPEG"]}


def webvision(root: Path, with_imagenet: bool = True) -> Path:
    base = root / "webvision"
    write_lines(base / "info/train_filelist_google.txt", [f"{p} {y}" for p, y in WEB_TRAIN])
    write_lines(base / "info/val_filelist.txt", [f"{p} {y}" for p, y in WEB_VAL])
    write_lines(base / "info/synsets.txt", [f"{s} class number {c}" for c, s in enumerate(SYNSETS)])
    for i, (path, _) in enumerate(WEB_TRAIN):
        write_image(base / path, image(200 + i, 30, 36))
    for i, (name, _) in enumerate(WEB_VAL):
        write_image(base / "val_images_256" / name, image(300 + i, 34, 30))
    if with_imagenet:
        for c, synset in enumerate(SYNSETS[:50]):
            (base / "imagenet/val" / synset).mkdir(parents=True, exist_ok=True)
            for j, name in enumerate(IMAGENET.get(c, [])):
                write_image(base / "imagenet/val" / synset / name, image(400 + 10 * c + j, 40, 32))
        write_image(base / "imagenet/val" / SYNSETS[55] / "ILSVRC2012_val_00009999.JPEG", image(999, 40, 40))
    return base


# -- CIFAR-N: a torch zip archive holding a pickled dict of numpy int64 arrays ------------------
def legacy_numpy_names(pt_bytes: bytes) -> bytes:
    """Rewrite the archive's pickle to the numpy 1.x module name, as in the released files.

    Protocol 2 spells each global as text ("c<module>\\n<name>\\n"), so the rename is safe.
    """
    src = zipfile.ZipFile(io.BytesIO(pt_bytes))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
            dst.writestr(info, data)
    return out.getvalue()


def cifar_n_file(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """``torch.save`` of a dict of numpy arrays (pickle protocol 2), numpy names as released."""
    buffer = io.BytesIO()
    torch.save(arrays, buffer, pickle_protocol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(legacy_numpy_names(buffer.getvalue()))
    return path


def hostile_pt(path: Path, marker: Path) -> Path:
    """A torch archive whose pickle would create ``marker`` if it were ever executed."""
    class Hostile:
        def __reduce__(self):
            return (Path.touch, (marker,))

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"clean_label": Hostile()}, protocol=2))
        archive.writestr("archive/version", "3\n")
    path.write_bytes(buffer.getvalue())
    return path
