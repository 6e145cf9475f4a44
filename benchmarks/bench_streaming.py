"""Images/s of the streaming path against a naive per-sample PIL DataLoader, on the same JPEGs.

Writes ``--n`` synthetic JPEGs of Clothing1M-like sizes (shorter side ~250-330 px, portrait
and landscape) to a temporary folder, then times one training epoch of each, with the same
number of DataLoader workers, in alternating repeats (best of ``--repeats``):

- streaming: ``StreamingBatches`` (torchvision.io decode, resize shorter side 256, random
  224 crop + flip on uint8 in the workers, pinned uint8 batches, normalisation on the device);
- naive: a Dataset that opens each file with PIL and runs torchvision's Resize(256),
  RandomCrop(224), RandomHorizontalFlip, ToTensor, Normalize per sample (DivideMix's
  Clothing1M loader), collated float32 and moved to the device.

Both deliver normalised float32 (B, 3, 224, 224) batches with labels on ``--device``.

    python benchmarks/bench_streaming.py [--n 512] [--batch-size 32] [--workers 2] [--threads 1] [--repeats 3]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.io import encode_jpeg

from bench_batches import one_pass  # this folder: timing shared with the device-batch bench
from ts3ray.data.core.files import FileSplit, ImageTransform
from ts3ray.data.core.streaming import StreamingBatches

MEAN, STD = (0.6959, 0.6537, 0.6371), (0.3113, 0.3192, 0.3214)
TRANSFORM = ImageTransform(size=224, resize=256, flip=True)


def write_jpegs(folder: Path, n: int, seed: int = 0) -> FileSplit:
    """``n`` JPEGs (quality 90) of smooth colour fields plus noise, sizes varying per image."""
    gen = torch.Generator().manual_seed(seed)
    paths = []
    for i in range(n):
        short = 250 + int(torch.randint(0, 80, (), generator=gen))
        long = int(short * (1.2 + 0.3 * torch.rand((), generator=gen)))
        h, w = (short, long) if i % 2 else (long, short)
        base = torch.rand(3, 1, 1, generator=gen) * 180
        ramp = torch.linspace(0, 60, w).view(1, 1, w) + torch.linspace(0, 40, h).view(1, h, 1)
        pixels = (base + ramp + 15 * torch.rand(3, h, w, generator=gen)).clamp(0, 255).to(torch.uint8)
        name = f"images/{i % 10}/{i:06d}.jpg"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(bytes(encode_jpeg(pixels, quality=90).numpy()))
        paths.append(name)
    return FileSplit.of(paths, [i % 14 for i in range(n)])


class PilFiles(Dataset):
    """The naive reference: PIL open + per-sample torchvision transforms."""

    def __init__(self, root: Path, split: FileSplit):
        self.root, self.split = root, split
        self.transform = transforms.Compose([
            transforms.Resize(256), transforms.RandomCrop(224), transforms.RandomHorizontalFlip(),
            transforms.ToTensor(), transforms.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i):
        with Image.open(self.split.path(self.root, i)) as img:
            return self.transform(img.convert("RGB")), int(self.split.labels[i])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="number of JPEG files (default 512)")
    parser.add_argument("--batch-size", type=int, default=32, help="Clothing1M/WebVision batch (default 32)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers on both sides (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the main process (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating timed epochs per side; best is kept")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory(prefix="ts3ray-bench-") as tmp:
        root = Path(tmp)
        split = write_jpegs(root, args.n)
        megabytes = sum((root / p.decode()).stat().st_size for p in split.paths) / 1e6
        print(f"{args.n} JPEGs ({megabytes:.1f} MB), batch {args.batch_size}, {args.workers} workers, "
              f"{args.threads} main thread(s), device {device}")
        stream = StreamingBatches(root, split, TRANSFORM, batch_size=args.batch_size, mean=MEAN, std=STD,
                                  augment=True, device=device, seed=0, workers=args.workers, decode="worker")
        naive = DataLoader(PilFiles(root, split), batch_size=args.batch_size, shuffle=True,
                           num_workers=args.workers, pin_memory=device.type == "cuda")
        best = {"streaming": float("inf"), "naive PIL": float("inf")}
        for epoch in range(args.repeats):
            for name, batches in (("streaming", stream.epoch(epoch)), ("naive PIL", iter(naive))):
                seconds, count = one_pass(batches, device)
                assert count == args.n, (name, count)
                best[name] = min(best[name], seconds)
        rates = {name: args.n / seconds for name, seconds in best.items()}
        for name, rate in rates.items():
            print(f"{name:>10}: {rate:8.1f} images/s (best of {args.repeats} epochs: {best[name]:.2f} s)")
        print(f"ratio streaming / naive: {rates['streaming'] / rates['naive PIL']:.2f}x")


if __name__ == "__main__":
    main()
