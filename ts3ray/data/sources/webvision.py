"""Mini-WebVision: the first 50 classes of the Google subset of WebVision 1.0 (Li et al., 2017),
with the ILSVRC12 validation images of the same 50 classes as a second test set (paper Sec. IV-A,
Table VI, following DivideMix).

Layout read (``<data_root>/webvision/``)::

    info/train_filelist_google.txt   "<path> <label>" per line, path relative to the folder
                                     (e.g. google/q0001/xxx.jpg); lines with label < 50 are used
    info/val_filelist.txt            "<file name> <label>"; images in val_images_256/
    info/synsets.txt                 the WebVision class list, one "<wnid> <names>" per line,
                                     line c = class c (the ILSVRC12 class order)
    google/...                       training images (the resized 256 px release works)
    val_images_256/...               WebVision validation images
    imagenet/val/<wnid>/*.JPEG       ILSVRC12 validation images sorted into one folder per synset
                                     (the common ImageNet "val/<wnid>/" layout); the folders of
                                     the first 50 lines of synsets.txt are read, class = line index

(DivideMix's released loader instead expects ``imagenet/val/<class index>/`` folders that its
users sort by hand; the wnid folders + ``info/synsets.txt`` mapping read here is the form other
mini-WebVision loaders use and needs no re-sorting of a standard ILSVRC12 val folder.)

Test sets: ``webvision_val`` (always) and ``ilsvrc12_val`` (when ``imagenet/val/`` exists;
otherwise a note says it was left out). WebVision has no clean training labels: ``train_true``
is -1 everywhere.

Obtain WebVision 1.0 (Google resized images, validation images and info files) from
https://data.vision.ee.ethz.ch/cvl/webvision/dataset2017.html, and the ILSVRC12 validation set
from https://image-net.org (sorted into synset folders). Nothing is downloaded by ts3ray.

Preprocessing: Inception-ResNet-v2 takes 299 x 299 inputs (timm's default); the paper does
not state the augmentation. ts3ray resizes the shorter side to 320 and takes a random 299 crop
+ horizontal flip for training, resize 320 + centre 299 crop for evaluation, ImageNet channel
statistics.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ts3ray.data.core.contained import Contained
from ts3ray.data.core.dataset import ImageDataset
from ts3ray.data.core.files import (IMAGENET_MEAN, IMAGENET_STD, UNKNOWN_LABEL, FileImageDataset, FileSplit,
                               ImageTransform, read_label_list, read_text, require)
from ts3ray.errors import DataMissingError

TRAIN_LIST, VAL_LIST, SYNSETS = "info/train_filelist_google.txt", "info/val_filelist.txt", "info/synsets.txt"
VAL_FOLDER, IMAGENET_VAL = "val_images_256", "imagenet/val"
IMAGENET_SUFFIXES = (".jpeg", ".jpg", ".png")
WEBVISION_CLASSES = 1000  # WebVision 1.0 labels: 0..999 (the ILSVRC12 classes)


@dataclass(frozen=True)
class WebVision50Source:
    name: str = "webvision50"
    folder: str = "webvision"
    num_classes: int = 50
    transform: ImageTransform = ImageTransform(size=299, resize=320, flip=True)

    def hint(self, root: Path) -> str:
        return (f"get WebVision 1.0 (Google resized images, val images, info files) from "
                f"https://data.vision.ee.ethz.ch/cvl/webvision/dataset2017.html into {Path(root) / self.folder}/")

    def check(self, root: Path) -> None:
        """The files exist, every listed path stays in the folder and every label is one of
        WebVision's 1,000 classes (the lists read in full)."""
        self.load_files(root)

    def _require(self, root: Path) -> None:
        base = Path(root) / self.folder
        for name in (TRAIN_LIST, VAL_LIST):
            require(base / name, self.hint(root))
        for name in ("google", VAL_FOLDER):
            require(base / name, self.hint(root), directory=True)

    def download(self, root: Path) -> None:
        raise DataMissingError(f"WebVision cannot be downloaded automatically; {self.hint(root)}")

    def _listed(self, base: Path, list_file: str, prefix: str, hint: str, contain: Contained) -> FileSplit:
        """The lines of classes 0..49 (DivideMix's mini set); the other classes of WebVision's
        1,000 are left out, any other label refused."""
        kept = range(self.num_classes)
        entries = [(path, label) for path, label in read_label_list(
            base / list_file, hint, contain, range(WEBVISION_CLASSES), opened=kept, prefix=prefix,
            what=f"WebVision has {WEBVISION_CLASSES:,} classes, of which {self.name} keeps 0..{self.num_classes - 1}")
            if label in kept]
        return FileSplit.of([prefix + path for path, _ in entries], [label for _, label in entries])

    def _imagenet(self, base: Path, hint: str) -> FileSplit:
        """ILSVRC12 val, class = line of its synset in info/synsets.txt. Its own folder
        (imagenet/val/, often a link to an ImageNet copy) bounds the synset folders and images."""
        folder, synsets = base / IMAGENET_VAL, base / SYNSETS
        contain = Contained(self.name, folder)
        numbered = [(n, ln.split()) for n, ln in enumerate(
            read_text(require(synsets, f"ILSVRC12 val needs it; {hint}"), hint, contain).splitlines(), start=1) if ln.strip()]
        if len(numbered) < self.num_classes:
            raise DataMissingError(f"{synsets} lists {len(numbered)} synsets, fewer than {self.num_classes}; {hint}")
        paths, labels = [], []
        for label, (number, line) in enumerate(numbered[:self.num_classes]):
            wnid = contain.path(line[0], synsets, number)
            synset_dir = require(folder / wnid, f"expected the ILSVRC12 val images of {wnid} there "
                                                f"(imagenet/val/<wnid>/ layout)", directory=True)
            names = sorted(p.name for p in synset_dir.iterdir() if p.suffix.lower() in IMAGENET_SUFFIXES)
            paths += [f"{IMAGENET_VAL}/{contain.path(n, synsets, number, prefix=wnid + '/')}" for n in names]
            labels += [label] * len(names)
        return FileSplit.of(paths, labels)

    def load_files(self, root: Path) -> FileImageDataset:
        self._require(root)
        base, hint = Path(root) / self.folder, self.hint(root)
        contain = Contained(self.name, base)
        train = self._listed(base, TRAIN_LIST, "", hint, contain)
        tests = {"webvision_val": self._listed(base, VAL_LIST, f"{VAL_FOLDER}/", hint, contain)}
        notes = ()
        if (base / IMAGENET_VAL).is_dir():
            tests["ilsvrc12_val"] = self._imagenet(base, hint)
        else:
            notes = (f"{base / IMAGENET_VAL} is absent: the ILSVRC12 test set is left out",)
        return FileImageDataset(self.name, base, train, torch.full((len(train),), UNKNOWN_LABEL, dtype=torch.int64),
                                tests, self.num_classes, IMAGENET_MEAN, IMAGENET_STD, self.transform, notes=notes)

    def load(self, root: Path, seed: int = 0) -> ImageDataset:
        """Refused with the reason: WebVision is read by the streaming path only."""
        from ts3ray.data.core.placement import materialise

        return materialise(self.load_files(root)).dataset


WEBVISION50 = WebVision50Source()
