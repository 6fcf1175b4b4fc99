#!/usr/bin/env bash
# Everything GPU-related in one short go (issue 12, target 4); a few minutes on one GPU.
#
#   benchmarks/gpu.sh [OUT_DIR]        (default OUT_DIR: ./gpu-results)
#
# 1. benchmarks/bench_gpu.py: issue 12's MIM (4x128, filter 5, patch 4, 64x64, 10->10):
#    batch-1 latency with every probe on (eager, CUDA graph, bf16), batch-64 throughput in
#    fp32 / TF32 / bf16 against OpenSTL's own classes, CUDA graph on and off, and an
#    out-of-memory provocation that must come back as one line from `mimviewer predict`.
# 2. `mimviewer sweep` of a bundled checkpoint over 256 generated sequences at batch 64 on
#    the GPU; with 2+ GPUs also under torchrun (NCCL), compared with the one-process file.
#
# OpenSTL's classes are read from a source checkout: $OPENSTL_DIR, else /tmp/openstl
#   git clone https://github.com/chengtan9907/OpenSTL /tmp/openstl
# Without it the reference rows are skipped (said in the output). Python: $PYTHON, else
# .venv/bin/python, else python3. On a machine without a CUDA GPU the script says so and
# exits 0 without measuring anything.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
OUT="${1:-gpu-results}"
OPENSTL_DIR="${OPENSTL_DIR:-/tmp/openstl}"
export OPENSTL_DIR

gpus=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')
if [ "$gpus" = "0" ]; then
    echo "gpu.sh: no CUDA GPU here (torch sees none); nothing to measure. Run it on a CUDA machine."
    exit 0
fi
mkdir -p "$OUT"
echo "gpu.sh: $gpus GPU(s); OpenSTL expected at $OPENSTL_DIR$( [ -d "$OPENSTL_DIR" ] || echo ' (NOT FOUND: reference rows skipped)' ); results in $OUT/"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$OUT/gpu.txt" || true

status=0
echo "== 1. latency, throughput, CUDA graphs, out-of-memory (bench_gpu.py)"
timeout 900 "$PYTHON" benchmarks/bench_gpu.py --openstl "$OPENSTL_DIR" | tee "$OUT/bench_gpu.md" || status=$?

echo "== 2. sweep over a generated test set on the GPU"
CKPT=models/mim_digits.safetensors
start=$(date +%s%N)
timeout 600 "$PYTHON" -m mimviewer sweep "$CKPT" digits:256 -o "$OUT/sweep_1gpu.parquet" --batch-size 64 --cuda-graph \
    --device cuda --quiet || status=$?
echo "one process: $(( ($(date +%s%N) - start) / 1000000 )) ms for 256 sequences (incl. start-up)"
if [ "$gpus" -ge 2 ]; then
    start=$(date +%s%N)
    timeout 600 "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$gpus" -m mimviewer sweep \
        "$CKPT" digits:256 -o "$OUT/sweep_${gpus}gpu.parquet" --batch-size 64 --device cuda --cuda-graph --quiet || status=$?
    echo "$gpus ranks (NCCL): $(( ($(date +%s%N) - start) / 1000000 )) ms for 256 sequences (incl. start-up)"
    "$PYTHON" - "$OUT/sweep_1gpu.parquet" "$OUT/sweep_${gpus}gpu.parquet" <<'PY' || status=$?
import sys
import numpy as np
from mimviewer.sweep import read_table
one, many = (read_table(p) for p in sys.argv[1:])
same = list(one) == list(many) and all(
    np.array_equal(one[k], many[k], equal_nan=one[k].dtype != object) for k in one
)
worst = max(float(np.nanmax(np.abs(one[k] - many[k]))) for k in one if one[k].dtype != object)
print(f"torchrun file equals the one-process file: {same} (largest difference {worst:.1e})")
PY
else
    echo "one GPU: the torchrun (NCCL) comparison needs 2+ GPUs; skipped"
fi
echo "gpu.sh: done (status $status); results in $OUT/"
exit "$status"
