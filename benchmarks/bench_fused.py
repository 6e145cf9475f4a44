"""Fused trial arrays against separate processes: training samples/s per member.

    python benchmarks/bench_fused.py [--ks 1,2,4,8,16] [--n 4096] [--repeats 3] [--out F]
                                     [--arch lenet_300_100|cifar_cnn] [--device cuda]
                                     [--compile reduce-overhead] [--mps]

For each K: one `FusedArray` of K TS3-Net members (`--arch`: LeNet-300-100 on MNIST-shaped
or the CIFAR CNN on CIFAR-shaped synthetic data, bench_gpu.CASES, seeds 0..K-1 with different lambda) timing one semi-supervised alternate-stage epoch
(Algorithm 1 stage 2, as bench_gpu.py measures it: S learns from D's small-loss picks, then
D from S's) in one process, against K separate processes each training one unfused
`LotteryRun` the same way, all started together; every process, fused or not, runs with one
torch thread (OMP_NUM_THREADS=1, torch.set_num_threads(1)). Samples/s per member: training
samples of one member's epoch x repeats / seconds (fused: the array's time, the same for
every member; separate: the mean over the K processes of each one's own rate while all run).

On CPU the fused array saves per-step Python and kernel-launch overhead and turns K small
matmuls into one batched one, in one thread; K separate processes can use more than one core,
so the separate "total" column is capped by the machine's cores (printed). A GPU run of the
same script (device cuda) measures the launch-bound case issue 23 is about.

Beside each rate: the fused array's achieved TFLOP/s (FLOPs of one member's alternate epoch,
counted by bench_gpu.epoch_flops with FlopCounterMode, times K) as a share of the matmul
ceiling measured in the same run, in training's dtype (fp32) and with one thread, as the
fused array runs (on a GPU: the card's fp32 matmul). `--compile MODE` compiles the fused
array's forward (and the separate runs' nets) with that torch.compile mode; `--mps` runs the
K separate processes under NVIDIA MPS as well (bench_gpu.Mps), where the binary exists.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from ts3ray.config import make_config  # noqa: E402
from ts3ray.data import make_synthetic  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gpu import (CASES, Mps, epoch_flops, matmul_tflops, ready_then_wait,  # noqa: E402
                       run_together, sync)

C1_EPOCHS = 7_680  # Table IX C1: CIFAR-10, 16 configurations, 480 epochs each (issue 23)
ARCH = {"name": "lenet_300_100", "compile": "none"}  # --arch, --compile (main, workers)


def configs(k: int, device: str) -> list:
    spec = CASES[ARCH["name"]]
    return [make_config(dict(dataset=spec["dataset"], arch=ARCH["name"], noise="sym",
                             noise_rate=0.4, epochs=2, e1=0, e2=2, rounds=0, batch_size=256,
                             protocol="shared", device=device, seed=seed,
                             lam=0.25 * (seed % 4), compile=ARCH["compile"]))
            for seed in range(k)]


def data(n: int):
    spec = CASES[ARCH["name"]]
    return make_synthetic(num_classes=10, shape=spec["shape"], n_train=n, n_test=256, seed=0,
                          name=spec["dataset"], augment=spec["conv"])


def fused_rate(k: int, n: int, repeats: int, device: str) -> float:
    """Samples/s per member of a fused array of K members (alternate epochs)."""
    from ts3ray.fused import FusedArray
    from ts3ray.fused.array import FusedEpoch
    from ts3ray.fused.steps import alternate_epoch

    array = FusedArray(configs(k, device), dataset=data(n), device=device)

    def epoch(key: int) -> None:
        ep = FusedEpoch(array, key=key, epoch=0)
        alternate_epoch(array.nets, ep)
        {name: v.cpu() for name, v in ep.sums.items()}  # the epoch's one host transfer

    epoch(0)  # warm-up (and compilation)
    sync(array.device)
    started = time.perf_counter()
    for key in range(1, repeats + 1):
        epoch(key)
    sync(array.device)
    return array.members[0].data.batches.num_samples * repeats / (time.perf_counter() - started)


def unfused_rate(n: int, repeats: int, device: str, seed: int) -> float:
    """Samples/s of one unfused LotteryRun (bench_gpu.py's alternate epoch)."""
    from ts3ray.method.ts3net import alternate_epoch
    from ts3ray.run import LotteryRun

    run = LotteryRun(configs(seed + 1, device)[seed], dataset=data(n), device=device)

    def epoch(key: int) -> None:
        ctx = run.epoch_context()
        ctx.key = key
        alternate_epoch(run.nets(), ctx)
        ctx.stats.read()

    epoch(0)  # warm-up (and compilation)
    sync(run.device)
    ready_then_wait()  # all K processes start timing together (bench_gpu.run_together)
    started = time.perf_counter()
    for key in range(1, repeats + 1):
        epoch(key)
    sync(run.device)
    return run.data.batches.num_samples * repeats / (time.perf_counter() - started)


def separate_rate(k: int, n: int, repeats: int, device: str, env: dict | None = None) -> float:
    """Mean samples/s of K concurrent one-thread processes, one unfused trial each."""
    env = {**(env or os.environ), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    commands = [[sys.executable, __file__, "--worker", str(seed), "--n", str(n), "--repeats",
                 str(repeats), "--device", device, "--arch", ARCH["name"], "--compile",
                 ARCH["compile"]] for seed in range(k)]
    rates = [float(line) for line in run_together(commands, env)]
    return sum(rates) / len(rates)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="1,2,4,8,16")
    parser.add_argument("--n", type=int, default=4096, help="training samples per member")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", default="lenet_300_100", choices=sorted(CASES))
    parser.add_argument("--compile", default="none", help="torch.compile mode of every run")
    parser.add_argument("--mps", action="store_true", help="separate processes under MPS too")
    parser.add_argument("--mps-ks", help="only these K under MPS (default: every K)")
    parser.add_argument("--out", help="also write the table as JSON")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ARCH.update(name=args.arch, compile=args.compile)
    if args.worker is not None:
        print(unfused_rate(args.n, args.repeats, args.device, args.worker))
        return 0
    ks = [int(k) for k in args.ks.split(",")]
    device = torch.device(args.device)
    from ts3ray.run import LotteryRun

    uncompiled = dataclasses.replace(configs(1, args.device)[0], compile="none")
    one = LotteryRun(uncompiled, dataset=data(args.n), device=device)
    per_sample = epoch_flops(one) / one.data.batches.num_samples  # training FLOPs per sample
    ceiling = matmul_tflops(device, torch.float32, 4096 if device.type == "cuda" else 1024)
    print(f"bench_fused: {args.arch}, {CASES[args.arch]['shape']} synthetic, "
          f"compile {args.compile}, {args.n} samples/member, "
          f"batch 256, alternate epochs x{args.repeats}, device {args.device}, 1 thread per "
          f"process, {os.cpu_count()} CPU cores on this machine; {per_sample / 1e6:.2f} MFLOP "
          f"per training sample; fp32 matmul ceiling {ceiling:.3f} TFLOP/s", flush=True)
    mps = args.mps and Mps().binary is not None
    if args.mps and not mps:
        print("bench_fused: --mps skipped (nvidia-cuda-mps-control not found)", flush=True)
    print(f"{'K':>3} {'fused/member':>13} {'separate/member':>16} {'fused total':>12} "
          f"{'separate total':>15} {'fused/separate':>15} {'fused TFLOP/s':>14} "
          f"{'of ceiling':>11}" + (f" {'separate+MPS total':>19}" if mps else ""), flush=True)
    rows = []
    mps_ks = set(ks if not args.mps_ks else (int(k) for k in args.mps_ks.split(",")))

    def save() -> None:  # after every row: a run cut short by its timeout keeps what it has
        if args.out:
            with open(args.out, "w") as f:
                json.dump(dict(device=args.device, arch=args.arch, compile=args.compile,
                               n=args.n, repeats=args.repeats, matmul_tflops=ceiling,
                               flops_per_sample=per_sample, rows=rows), f, indent=2)

    for k in ks:
        fused = fused_rate(k, args.n, args.repeats, args.device)
        separate = separate_rate(k, args.n, args.repeats, args.device)
        tflops = fused * k * per_sample / 1e12
        row = dict(k=k, fused_per_member=fused, separate_per_member=separate,
                   fused_tflops=tflops, ceiling_share=tflops / ceiling)
        line = (f"{k:>3} {fused:>13,.0f} {separate:>16,.0f} {fused * k:>12,.0f} "
                f"{separate * k:>15,.0f} {fused / separate:>14.2f}x {tflops:>14.4f} "
                f"{100 * tflops / ceiling:>10.1f}%")
        if mps and k in mps_ks:
            try:
                with Mps() as daemon:
                    row["separate_mps_per_member"] = separate_rate(k, args.n, args.repeats,
                                                                   args.device, daemon.env())
                line += f" {row['separate_mps_per_member'] * k:>19,.0f}"
            except Exception as error:  # an MPS client that cannot connect: keep the rest
                row["separate_mps_error"] = str(error).splitlines()[0][:300]
                line += f"  MPS failed: {row['separate_mps_error']}"
        rows.append(row)
        save()
        print(line, flush=True)
    if rows and rows[0]["k"] == 1:  # the measure: a fused array of K against one trial
        one = rows[0]["separate_per_member"]
        print("fused total / one unfused trial: " + ", ".join(
            f"K {r['k']} {r['fused_per_member'] * r['k'] / one:.2f}x" for r in rows), flush=True)
    if args.arch == "cifar_cnn":  # issue 23's cost: Table IX C1 = 16 configurations x 480
        # CNN epochs of CIFAR-10's 50,000 training images, every epoch at the alternate
        # stage's rate (its costliest: two training passes and two peer forwards)
        samples = C1_EPOCHS * 50_000
        print(f"Table IX C1 ({C1_EPOCHS:,} epochs x 50,000 samples) at these rates: " + ", ".join(
            f"K {r['k']} {samples / (r['fused_per_member'] * r['k']) / 3600:.2f} h" for r in rows)
            + f" on {args.device}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
