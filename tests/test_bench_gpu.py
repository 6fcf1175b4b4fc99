"""benchmarks/gpu.sh and bench_gpu.py: a clean exit without a GPU; the shared code runs (CPU dry run)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def test_gpu_script_says_there_is_no_gpu_and_exits_cleanly():
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: gpu.sh would measure instead of declining")
    result = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu.sh"), "unused-out"],
        env={**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "gpu.sh: no CUDA GPU here (torch sees none); nothing to measure. Run it on a CUDA machine."
    )
    assert not (REPO / "unused-out").exists()


def test_bench_gpu_dry_run_on_the_cpu_prints_every_table():
    """The GPU benchmark's own code on a tiny model on the CPU (CUDA-only parts say skipped)."""
    options = ["--device", "cpu", "--tiny", "--repeats", "1", "--warmup", "0", "--batch", "2"]
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "bench_gpu.py"),
            *options,
            "--openstl",
            "/nonexistent/openstl",
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "OpenSTL not found at /nonexistent/openstl" in out
    assert "batch 1, latency per sequence" in out and "| ours eager + probes |" in out
    assert "batch 2, throughput, fp32" in out
    assert "best throughput:" in out
    assert "out-of-memory provocation\n  skipped: needs a CUDA device" in out
