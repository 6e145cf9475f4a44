"""The GPU path, measured: options per network, trials packed on one GPU, determinism.

    python benchmarks/bench_gpu.py [--out DIR] [--packing 1,2,4,8] [--seconds 6]

On a CUDA machine, in this order (each section prints as it finishes; `--out` keeps a JSON):

1. determinism: one real lottery run (cifar_cnn, CIFAR-shaped synthetic data, 2 IMP levels)
   with `deterministic=true`, twice: are the rows identical?
2. the card's bf16 matmul throughput (8192^3, the ceiling the options are compared with);
3. per network (`lenet_300_100` MNIST-shaped, `cifar_cnn` CIFAR-shaped): training samples/s
   of one semi-supervised alternate-stage epoch (Algorithm 1, stage 2) for fp32, bf16,
   channels_last (conv nets) and compile, as a ratio to fp32, and the achieved share of the
   bf16 matmul throughput (FLOPs counted with FlopCounterMode on one training step);
4. packing: 1, 2, 4, 8 concurrent trial processes on the one GPU (what Ray's fractional GPUs
   1, 0.5, 0.25, 0.125 place there: one worker process per trial), total samples/s as a
   ratio to one fp32 trial, without and with NVIDIA MPS (the control daemon started here as
   this benchmark's own foreground process and stopped by its `quit` command). The trial
   processes start timing together once every one has warmed up (run_together).

Without a GPU it runs the CPU cases of 2 and 3 (small sizes) and says that the rest was
skipped. Section 4 uses processes, not Ray itself: Ray's wheel does not fit the files one
can take to the lent GPU machines (79 MB); a Ray trial on a fractional GPU is such a process.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ts3ray.config import make_config
from ts3ray.data import make_synthetic
from ts3ray.method.ts3net import alternate_epoch
from ts3ray.run import LotteryRun

CASES = {
    "lenet_300_100": dict(shape=(1, 28, 28), dataset="synthetic", conv=False),
    "cifar_cnn": dict(shape=(3, 32, 32), dataset="synthetic-cifar", conv=True),
}
OPTIONS = {"fp32": {}, "bf16": {"precision": "bf16"}, "channels_last": {"channels_last": True},
           "compile": {"compile": "default"}}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_run(arch: str, n: int, device: torch.device, **options) -> LotteryRun:
    spec = CASES[arch]
    data = make_synthetic(num_classes=10, shape=spec["shape"], n_train=n, n_test=512, seed=0,
                          name=spec["dataset"], augment=spec["conv"])
    config = make_config(dict(dataset=spec["dataset"], arch=arch, noise="sym", noise_rate=0.4,
                              epochs=2, e1=0, e2=2, rounds=0, batch_size=256, protocol="shared",
                              device=str(device), **options))
    return LotteryRun(config, dataset=data, device=device)


def alternate(run: LotteryRun, key: int) -> None:
    """One alternate-stage epoch: S learns from D's picks, then D from S's (Eq. 3-5)."""
    ctx = run.epoch_context()
    ctx.key = key
    with run.accel.autocast():
        alternate_epoch(run.nets(), ctx)
    ctx.stats.read()


def samples_per_second(run: LotteryRun, warmup: int, repeats: int) -> float:
    for key in range(warmup):
        alternate(run, key)
    sync(run.device)
    started = time.perf_counter()
    for key in range(warmup, warmup + repeats):
        alternate(run, key)
    sync(run.device)
    return run.data.batches.num_samples * repeats / (time.perf_counter() - started)


def epoch_flops(run: LotteryRun) -> float:
    """FLOPs of one alternate epoch: per batch two training steps (forward + backward) and
    two forwards of the fixed peer, a forward being a third of a step."""
    x, y, _ = next(run.data.batches.epoch(0))
    model = run.sparse_model
    with FlopCounterMode(display=False) as counter, run.accel.autocast():
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    step = counter.get_total_flops()
    return (2 * step + 2 * step / 3) * len(run.data.batches)


def matmul_tflops(device: torch.device, dtype: torch.dtype, size: int) -> float:
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    started = time.perf_counter()
    repeats = 10
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e12


def section_determinism(device: torch.device) -> dict:
    def rows():
        data = make_synthetic(num_classes=10, shape=(3, 32, 32), n_train=2048, n_test=512,
                              seed=0, name="synthetic-cifar", augment=True)
        config = make_config(dict(dataset="synthetic-cifar", arch="cifar_cnn", epochs=3, e1=1,
                                  e2=1, rounds=1, device=str(device), deterministic=True))
        run = LotteryRun(config, dataset=data, device=device)
        return [{k: v for k, v in r.items() if k != "seconds"} for r in run.epochs()]

    first, second = rows(), rows()
    same = first == second
    print(f"determinism: cifar_cnn, 2 IMP levels x 3 epochs, deterministic=true twice: rows "
          f"{'IDENTICAL' if same else 'DIFFER'} ({len(first)} epoch rows; e.g. acc_sparse "
          f"{[round(r['acc_sparse'], 6) for r in first[-2:]]} vs "
          f"{[round(r['acc_sparse'], 6) for r in second[-2:]]})", flush=True)
    return {"identical": same, "rows": len(first)}


def section_options(device: torch.device, n: dict[str, int], peak: float) -> dict:
    out = {}
    for arch, spec in CASES.items():
        results = {}
        for name, options in OPTIONS.items():
            if name == "channels_last" and not spec["conv"]:
                continue
            started = time.perf_counter()
            run = make_run(arch, n[arch], device, **options)
            rate = samples_per_second(run, warmup=2 if name == "compile" else 1, repeats=5)
            achieved = epoch_flops(run) / run.data.batches.num_samples * rate / 1e12
            results[name] = {"samples_per_s": rate, "tflops": achieved,
                             "share_of_bf16_matmul": achieved / peak,
                             "wall_s": time.perf_counter() - started}
        base = results["fp32"]["samples_per_s"]
        for name, r in results.items():
            r["ratio_to_fp32"] = r["samples_per_s"] / base
            print(f"options {arch} n={n[arch]}: {name:13} {r['samples_per_s']:>10,.0f} samples/s "
                  f"= {r['ratio_to_fp32']:.2f}x fp32; {r['tflops']:.3f} TFLOP/s = "
                  f"{100 * r['share_of_bf16_matmul']:.3f}% of the matmul peak "
                  f"(section {r['wall_s']:.0f} s)", flush=True)
        out[arch] = results
    return out


# -- processes started together (packing here, separate trials in bench_fused.py) -----------
READY = "ready"


def ready_then_wait() -> None:
    """A worker's side of `run_together`: say it is built and warmed up, wait for the start."""
    print(READY, flush=True)
    sys.stdin.readline()


def run_together(commands: list[list[str]], env: dict, timeout: float = 180.0) -> list[str]:
    """Start one process per command, wait until every one has printed `ready` (imported,
    built, warmed up, compiled: however long that takes, no fixed sleep), release them all at
    once with a line on their stdin, and return each one's last stdout line. stderr goes to
    a file per process (a full pipe would stall a chatty worker); its tail names a failure."""
    logs = [tempfile.TemporaryFile("w+") for _ in commands]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                              text=True, env=env) for cmd, log in zip(commands, logs)]

    def failure(proc, log, what: str) -> RuntimeError:
        proc.kill()
        proc.wait()
        log.seek(0)
        return RuntimeError(f"worker {what} (exit {proc.returncode}): {log.read()[-800:]}")

    try:
        for proc, log in zip(procs, logs):
            if proc.stdout.readline().strip() != READY:
                raise failure(proc, log, "ended before it was ready")
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        lines = []
        for proc, log in zip(procs, logs):
            out, _ = proc.communicate(timeout=timeout)
            if proc.returncode:
                raise failure(proc, log, "failed")
            lines.append(out.strip().splitlines()[-1])
        return lines
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()  # our own processes only
                proc.wait()
        for log in logs:
            log.close()


# -- packing ----------------------------------------------------------------------------------
def worker(args) -> None:
    """One 'trial': warm up, wait for the common start, train for `seconds`, print samples."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(1)
    run = make_run(args.worker, args.n, device)
    alternate(run, 0)
    sync(device)
    ready_then_wait()
    done, key, started = 0, 1, time.perf_counter()
    while time.perf_counter() - started < args.seconds:
        alternate(run, key)
        sync(device)
        done += run.data.batches.num_samples
        key += 1
    print(json.dumps({"samples": done, "seconds": time.perf_counter() - started}), flush=True)


def pack(arch: str, k: int, n: int, seconds: float, env: dict) -> float:
    command = [sys.executable, __file__, "--worker", arch, "--n", str(n), "--seconds",
               str(seconds)]
    return sum(json.loads(line)["samples"] / json.loads(line)["seconds"]
               for line in run_together([command] * k, env))


class Mps:
    """The MPS control daemon as this benchmark's own foreground process, stopped by its
    documented `quit` command (which also ends the MPS server it started), then by PID."""

    def __init__(self):
        self.binary = shutil.which("nvidia-cuda-mps-control")
        self.dir = tempfile.mkdtemp(prefix="ts3ray-mps-")
        self.proc = None

    def env(self) -> dict:
        # the daemon's log under $OUT (the device tool brings it back) when that is set
        logs = os.path.join(os.environ["OUT"], "mps-log") if os.environ.get("OUT") else \
            f"{self.dir}/log"
        return {**os.environ, "CUDA_MPS_PIPE_DIRECTORY": f"{self.dir}/pipe",
                "CUDA_MPS_LOG_DIRECTORY": logs}

    def __enter__(self):
        os.makedirs(f"{self.dir}/pipe")
        os.makedirs(self.env()["CUDA_MPS_LOG_DIRECTORY"], exist_ok=True)
        self.proc = subprocess.Popen([self.binary, "-f"], env=self.env(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2.0)
        if self.proc.poll() is not None:
            raise RuntimeError("nvidia-cuda-mps-control -f exited at once")
        return self

    def __exit__(self, *exc):
        try:
            subprocess.run([self.binary], input="quit\n", text=True, env=self.env(),
                           timeout=10, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()  # by PID: our own process only
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return False


def section_packing(ks: list[int], seconds: float, n: dict[str, int], archs: dict) -> dict:
    out = {}
    for arch, with_mps in archs.items():
        modes = ["plain"] + (["mps"] if with_mps else [])
        for mode in modes:
            if mode == "mps" and not Mps().binary:
                print(f"packing {arch} with MPS: skipped (nvidia-cuda-mps-control not found)")
                continue
            rates = {}
            try:
                if mode == "mps":
                    with Mps() as mps:
                        for k in ks:
                            rates[k] = pack(arch, k, n[arch], seconds, mps.env())
                else:
                    for k in ks:
                        rates[k] = pack(arch, k, n[arch], seconds, dict(os.environ))
            except Exception as err:  # keep what was measured
                print(f"packing {arch} {mode}: stopped: {str(err).splitlines()[0][:200]}")
            base = out.get((arch, "plain"), {}).get(1) or rates.get(1)
            for k, rate in rates.items():
                print(f"packing {arch} {mode}: {k} trial(s) at {1 / k:g} GPU: {rate:>10,.0f} "
                      f"samples/s total = {rate / base:.2f}x one fp32 trial", flush=True)
            out[(arch, mode)] = rates
    return {f"{a}/{m}": v for (a, m), v in out.items()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for results.json")
    parser.add_argument("--packing", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--packing-on-cpu", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    torch.set_num_threads(1 if not gpu else torch.get_num_threads())
    name = torch.cuda.get_device_name(0) if gpu else "CPU (no CUDA device)"
    print(f"device: {name}; torch {torch.__version__}", flush=True)
    report = {"device": name, "torch": torch.__version__}

    def save() -> None:  # after every section: a step cut short by its timeout keeps the rest
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            with open(os.path.join(args.out, "results.json"), "w") as out:
                json.dump(report, out, indent=1, default=str)

    if gpu:
        report["determinism"] = section_determinism(device)
        save()
    peak = matmul_tflops(device, torch.bfloat16 if gpu else torch.float32, 8192 if gpu else 1024)
    print(f"{'bf16' if gpu else 'fp32'} matmul: {peak:.1f} TFLOP/s", flush=True)
    report["matmul_tflops"] = peak
    save()
    sizes = {"lenet_300_100": 32768, "cifar_cnn": 8192} if gpu else {"lenet_300_100": 2048,
                                                                       "cifar_cnn": 256}
    if args.packing_on_cpu:  # smoke test of section 4's machinery without a GPU
        report["packing"] = section_packing([1, 2], 2.0, sizes, {"lenet_300_100": False})
        return 0
    report["options"] = section_options(device, sizes, peak)
    save()
    if gpu:
        ks = [int(k) for k in args.packing.split(",")]
        report["packing"] = section_packing(ks, args.seconds, sizes,
                                            {"lenet_300_100": True, "cifar_cnn": True})
    else:
        print("GPU cases skipped (no CUDA device): determinism on CUDA, packing, MPS")
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
