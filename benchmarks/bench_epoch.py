"""Training throughput of one semi-supervised alternate-stage epoch (Algorithm 1, stage 2).

Two measurements, side by side in one run:
(a) samples/s of ts3ray's stage (device-resident batches, masked-mean losses, one forward
    per net per batch, no per-batch host sync) against a naive reference loop written the
    way the reference code works: torchvision DataLoader with per-sample transforms,
    per-batch CPU argsort of the losses, `.item()` on every loss, boolean indexing;
(b) achieved GFLOP/s of ts3ray's epoch (FLOPs counted with torch's FlopCounterMode on one
    training step) against a large fp32 matmul's GFLOP/s on the same device.

    python benchmarks/bench_epoch.py [--device cpu|cuda] [--n 4096] [--quick]

Cases: `cifar_cnn` on CIFAR-shaped synthetic data (with crop+flip augmentation) and
`lenet_300_100` on MNIST-shaped synthetic data.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ts3ray.config import make_config
from ts3ray.data import make_synthetic
from ts3ray.method.ts3net import alternate_epoch
from ts3ray.run import LotteryRun

CASES = {
    "cifar_cnn": dict(shape=(3, 32, 32), dataset="synthetic-cifar", arch="cifar_cnn"),
    "lenet_300_100": dict(shape=(1, 28, 28), dataset="synthetic", arch="lenet_300_100"),
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_run(case: str, n: int, device: torch.device) -> LotteryRun:
    spec = CASES[case]
    data = make_synthetic(num_classes=10, shape=spec["shape"], n_train=n, n_test=256, seed=0)
    if spec["shape"][0] == 3:  # CIFAR-like: augmentation on, as for CIFAR-10
        data = type(data)(**{**data.__dict__, "augment": True})
    config = make_config(dict(dataset=spec["dataset"], arch=spec["arch"], noise="sym",
                              noise_rate=0.4, epochs=2, e1=0, e2=2, rounds=0,
                              batch_size=256, device=str(device), protocol="shared"))
    return LotteryRun(config, dataset=data, device=device)


def ts3ray_epoch(run: LotteryRun, key: int) -> None:
    ctx = run.epoch_context()
    ctx.key = key
    alternate_epoch(run.nets(), ctx)
    ctx.stats.read()


# ---- the naive reference loop -------------------------------------------------------
class PerSampleDataset(torch.utils.data.Dataset):
    """HWC uint8 numpy images -> PIL -> per-sample transforms, as the reference code feeds data."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.fromarray(self.images[i].squeeze(-1) if self.images.shape[-1] == 1 else self.images[i])
        return self.transform(img), int(self.labels[i]), i


def naive_loader(run: LotteryRun):
    from torchvision import transforms

    ds = run.data.dataset
    steps = [transforms.ToTensor(), transforms.Normalize(ds.mean, ds.std)]
    if ds.augment:
        steps = [transforms.RandomCrop(ds.image_size[0], padding=4),
                 transforms.RandomHorizontalFlip()] + steps
    images = ds.train_x.permute(0, 2, 3, 1).numpy()
    labels = run.data.batches.labels.cpu().numpy()
    dataset = PerSampleDataset(images, labels, transforms.Compose(steps))
    return torch.utils.data.DataLoader(dataset, batch_size=run.config.batch_size, shuffle=True)


def naive_epoch(run: LotteryRun, loader) -> None:
    """S pass then D pass, each batch: CPU argsort of the peer's losses, .item() syncs."""
    rate, lam = run.config.effective_select_rate(), run.config.lam
    nets = {"S": (run.sparse_model, run.optimizers["S"]), "D": (run.dense_model, run.optimizers["D"])}
    for learner, teacher in (("S", "D"), ("D", "S")):
        model, opt = nets[learner]
        peer = nets[teacher][0]
        running = 0.0
        for x, y, _ in loader:
            x, y = x.to(run.device), y.to(run.device)
            with torch.no_grad():
                peer_loss = F.cross_entropy(peer(x), y, reduction="none")
            order = np.argsort(peer_loss.cpu().numpy())  # host sync + CPU sort per batch
            keep = int((1 - rate) * len(order))
            clean = torch.from_numpy(order[:keep]).to(run.device)
            noisy = torch.from_numpy(order[keep:]).to(run.device)
            logits = model(x)
            loss = F.cross_entropy(logits[clean], y[clean])
            p = F.softmax(logits[noisy], dim=1)
            loss = loss + lam * -(p * torch.log(p + 1e-8)).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if learner == "S":
                for name, mask in run.masks["S"].items():  # re-apply the mask per batch
                    model.get_parameter(name).data.mul_(mask)
            running += loss.item()  # host sync per batch


# ---- FLOPs --------------------------------------------------------------------------
def epoch_flops(run: LotteryRun) -> float:
    """FLOPs of one alternate epoch: per sample, each pass = learner fwd+bwd + peer fwd."""
    x = next(iter(run.data.batches.epoch(0))).x
    counter = FlopCounterMode(display=False)
    with counter:
        out = run.sparse_model(x)
        out.sum().backward()
    train_step = counter.get_total_flops() / x.shape[0]  # forward + backward per sample
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        run.sparse_model(x)
    forward = counter.get_total_flops() / x.shape[0]
    run.sparse_model.zero_grad(set_to_none=True)
    return 2 * (train_step + forward) * run.data.batches.num_samples


def matmul_gflops(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def timed(fn, device, repeats):
    fn()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=int, default=4096, help="training samples per epoch")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    device = torch.device(args.device)
    peak = matmul_gflops(device)
    print(f"device={device} threads={torch.get_num_threads()} matmul fp32: {peak:.1f} GFLOP/s")
    for case in args.cases.split(","):
        run = make_run(case, args.n, device)
        loader = naive_loader(run)
        keys = iter(range(1, 10_000))
        ours = timed(lambda: ts3ray_epoch(run, next(keys)), device, args.repeats)
        naive = timed(lambda: naive_epoch(run, loader), device, args.repeats)
        n = run.data.batches.num_samples
        flops = epoch_flops(run)
        print(f"{case:>14}: ts3ray {n / ours:9.0f} samples/s | naive {n / naive:9.0f} samples/s"
              f" | ratio {naive / ours:5.2f}x | ts3ray {flops / ours / 1e9:7.1f} GFLOP/s"
              f" = {100 * flops / ours / 1e9 / peak:5.1f}% of matmul")


if __name__ == "__main__":
    main()
