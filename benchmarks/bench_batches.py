"""Samples/s of one augmented epoch: device-resident batches vs a torchvision DataLoader.

The reference is the way the official code feeds CIFAR: uint8 HWC numpy images -> PIL ->
RandomCrop(32, padding=4) -> RandomHorizontalFlip -> ToTensor -> Normalize per sample in
a Dataset, collated by a DataLoader and moved to the device. Both sides deliver the same
thing: normalised float32 (B, C, H, W) batches plus labels on ``--device``.

On a CPU that other processes keep busy, use ``--threads 1``: with torch's default of one
thread per core the batched ops wait on each other and ran ~30x slower in our measurements
(2 cores, load ~6), while the reference's 3x32x32 per-sample ops are single-threaded anyway.

    python benchmarks/bench_batches.py [--n 10000] [--batch-size 256] [--device cpu] [--workers 0 2] [--threads N] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from ts3ray.data.core.batches import DeviceBatches

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10 statistics


class PilDataset(Dataset):
    """The reference pipeline: one PIL image and one transform chain per sample."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images_hwc, labels
        self.transform = transforms.Compose([
            transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
            transforms.ToTensor(), transforms.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_epoch(make_batches, device: torch.device, repeats: int) -> tuple[float, int]:
    """Best seconds (of ``repeats``) and sample count of one pass that moves every batch to ``device``."""
    runs = [one_pass(make_batches(epoch), device) for epoch in range(repeats)]
    return min(seconds for seconds, _ in runs), runs[0][1]


def one_pass(batches, device: torch.device) -> tuple[float, int]:
    sync(device)
    start, count = time.perf_counter(), 0
    for x, y, *_ in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        count += x.shape[0]
    sync(device)
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of 3x32x32 images")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="DataLoader num_workers settings to measure")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice); 1 is steadier on a busy CPU")
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed per loader; the best counts")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rng = np.random.default_rng(0)
    images_hwc = rng.integers(0, 256, (args.n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, args.n)
    print(f"{args.n} images 3x32x32, batch {args.batch_size}, device {device}, "
          f"torch threads {torch.get_num_threads()}, best of {args.repeats} epochs")

    start = time.perf_counter()
    batches = DeviceBatches(torch.from_numpy(images_hwc).permute(0, 3, 1, 2), torch.from_numpy(labels),
                            batch_size=args.batch_size, mean=MEAN, std=STD, augment=True,
                            device=device, seed=0)
    sync(device)
    print(f"device-resident: upload {time.perf_counter() - start:.3f} s (once per run, not in the rate)")
    next(iter(batches.epoch(-1)))  # warm-up (allocator, kernels)
    seconds, count = timed_epoch(batches.epoch, device, args.repeats)
    ours = count / seconds
    print(f"device-resident: {ours:12,.0f} samples/s  ({seconds:.3f} s/epoch)")

    dataset = PilDataset(images_hwc, labels)
    for workers in args.workers:
        loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=workers,
                            pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(0))
        # each epoch includes worker start-up, as in training
        seconds, count = timed_epoch(lambda epoch: loader, device, args.repeats)
        rate = count / seconds
        print(f"DataLoader workers={workers}: {rate:12,.0f} samples/s  ({seconds:.3f} s/epoch)  "
              f"ratio device-resident/DataLoader = {ours / rate:.1f}x")


if __name__ == "__main__":
    main()
