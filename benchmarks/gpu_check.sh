#!/usr/bin/env bash
# Issue 23's GPU measurements as one prepared script for a lent GPU machine (the `device`
# tool), at most 9.5 minutes (a device call allows 10): writes JSON and logs under ${OUT:-/tmp/gpu-check}.
#   bash benchmarks/gpu_check.sh
# 1. bench_gpu.py: matmul ceiling, fp32/bf16/channels_last/compile rates, packing (+MPS);
# 2. bench_fused.py, LeNet-300-100, K 1..16, against separate processes (+MPS);
# 3. bench_fused.py, CIFAR CNN, K 1,8, eager and compile=reduce-overhead (CUDA graphs),
#    with Table IX C1's GPU-hours at the measured rates.
# The CPU rates the GPU is compared with come from the same scripts run on the CPU
# (benchmarks/README.md).
set -u
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
py=${PYTHON:-python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/card.txt"
timeout 200 $py benchmarks/bench_gpu.py --out "$out/gpu" --packing 1,8 --seconds 4 \
    2>&1 | tee "$out/bench_gpu.log"
timeout 120 $py benchmarks/bench_fused.py --device cuda --ks 1,2,4,8,16 --n 16384 \
    --repeats 3 --mps --out "$out/fused-lenet.json" 2>&1 | tee "$out/fused-lenet.log"
timeout 120 $py benchmarks/bench_fused.py --device cuda --arch cifar_cnn --ks 1,8 --n 8192 \
    --repeats 2 --out "$out/fused-cnn.json" 2>&1 | tee "$out/fused-cnn.log"
timeout 120 $py benchmarks/bench_fused.py --device cuda --arch cifar_cnn --ks 1,8 --n 8192 \
    --repeats 2 --compile reduce-overhead --out "$out/fused-cnn-graphs.json" \
    2>&1 | tee "$out/fused-cnn-graphs.log"
