#!/usr/bin/env bash
# Issue 23's GPU measurements as one prepared script for a lent GPU machine (the `device`
# tool): at most ~8.5 minutes (the timeouts add to 485 s, each killed 5 s after its limit),
# leaving room in a 15-minute device budget for the machine's start. Writes JSON and logs
# under ${OUT:-/tmp/gpu-check}; every benchmark rewrites its JSON after each row or section,
# so a step cut short by its timeout keeps what it measured. The targets first:
#   bash benchmarks/gpu_check.sh
# 1. bench_fused.py, LeNet-300-100, K 1..16 fused against K separate processes (MPS at 8, 16):
#    the LeNet target (>= 10x this CPU's 39,172 samples/s per device);
# 2. bench_fused.py, CIFAR CNN, K 1,8, eager: the CNN target (fused K 8 >= 4x one trial) and
#    Table IX C1's GPU-hours at the measured rates;
# 3. the same with compile=reduce-overhead (CUDA graphs);
# 4. bench_gpu.py: determinism, bf16 matmul ceiling, fp32/bf16/channels_last/compile rates,
#    packing 1 and 8 trial processes (+MPS).
# Separate processes start timing together once all have warmed up (bench_gpu.run_together),
# so no step waits on a fixed sleep. The CPU rates the GPU is compared with come from the
# same scripts run on the CPU (benchmarks/README.md).
set -u
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
export OUT=$out  # bench_gpu.Mps keeps the MPS daemon's log there
py=${PYTHON:-python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/card.txt"
timeout -k 5 120 $py benchmarks/bench_fused.py --device cuda --ks 1,2,4,8,16 --n 16384 \
    --repeats 3 --mps --mps-ks 8,16 --out "$out/fused-lenet.json" 2>&1 | tee "$out/fused-lenet.log"
timeout -k 5 75 $py benchmarks/bench_fused.py --device cuda --arch cifar_cnn --ks 1,8 --n 8192 \
    --repeats 2 --out "$out/fused-cnn.json" 2>&1 | tee "$out/fused-cnn.log"
timeout -k 5 120 $py benchmarks/bench_fused.py --device cuda --arch cifar_cnn --ks 1,8 --n 8192 \
    --repeats 2 --compile reduce-overhead --out "$out/fused-cnn-graphs.json" \
    2>&1 | tee "$out/fused-cnn-graphs.log"
timeout -k 5 170 $py benchmarks/bench_gpu.py --out "$out/gpu" --packing 1,8 --seconds 3 \
    2>&1 | tee "$out/bench_gpu.log"
