#!/usr/bin/env bash
# The GPU check, one prepared script of at most 8 minutes: the architecture matrix on CUDA
# (bench/gpu_matrix.py), then the throughput of a Qwen3-0.6B-shaped model, LoRA rank 16, at
# 2,048 and 16,384 tokens a sequence (bench/throughput.py), without and with gradient
# checkpointing. It runs from a checkout with the machine's own Python, torch, transformers
# and peft (nothing is installed; kitchen is imported from the checkout), and writes what it
# prints to $OUT (default bench/gpu-out/).
#
#     bash bench/gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT="${OUT:-bench/gpu-out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PY" -c 'import sys, torch, transformers, peft; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__, "peft", peft.__version__)'
} 2>&1 | tee "$OUT/versions.txt"

status=0
timeout 180 "$PY" bench/gpu_matrix.py 2>"$OUT/matrix.err" | tee "$OUT/matrix.txt" || status=1
timeout 150 "$PY" bench/throughput.py --seq 2048 --seq 16384 2>"$OUT/throughput.err" \
  | tee "$OUT/throughput.txt" || status=1
timeout 150 "$PY" bench/throughput.py --seq 2048 --seq 16384 --checkpointing \
  2>"$OUT/throughput-ckpt.err" | tee "$OUT/throughput-ckpt.txt" || status=1
exit "$status"
