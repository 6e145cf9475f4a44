"""benchmarks/bench_fused.py's machinery on the CPU (the GPU run, benchmarks/gpu_check.sh, has
one try on a lent device): separate worker processes start timing together once each has
warmed up (bench_gpu.run_together), and the JSON holds every measured row."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_fused.py"


def test_fused_against_separate_processes_writes_one_row_per_k(tmp_path):
    out = tmp_path / "fused.json"
    done = subprocess.run([sys.executable, str(BENCH), "--ks", "1", "--n", "256", "--repeats",
                           "1", "--out", str(out)], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [row["k"] for row in report["rows"]] == [1]
    for row in report["rows"]:  # 256 samples, batch 256: one step of S and of D per epoch
        assert row["fused_per_member"] > 0 and row["separate_per_member"] > 0
        assert row["ceiling_share"] == row["fused_tflops"] / report["matmul_tflops"]
    assert "fused total / one unfused trial: K 1 " in done.stdout


def test_a_worker_that_fails_before_it_is_ready_is_named_with_its_error(tmp_path):
    sys.path.insert(0, str(BENCH.parent))
    try:
        from bench_gpu import run_together
    finally:
        sys.path.remove(str(BENCH.parent))
    ok = [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.readline(); "
          "print('measured 7')"]
    assert run_together([ok, ok], env=None) == ["measured 7", "measured 7"]
    broken = [sys.executable, "-c", "raise SystemExit('no CUDA here')"]
    with pytest.raises(RuntimeError, match=r"ended before it was ready \(exit 1\).*no CUDA here"):
        run_together([ok, broken], env=None)
