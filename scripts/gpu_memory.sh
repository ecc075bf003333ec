#!/usr/bin/env bash
# On the GPU machine, after scripts/gpu_check.sh has built build-gpu/: the
# CUDA allocator's peak during training steps beside what `linpar sim` says
# the layout needs (sim/memory.h), for each model, sequence and recompute
# kind in GPU_MEMORY (default tnl-385m and tnl-1b at 2K and 8K, batch 1,
# none/selective/full). One line per run: "memory_linpar MODEL SEQ BATCH
# RECOMPUTE measured BYTES model BYTES (±%)".
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
out="${OUT:-/tmp}"
mkdir -p "$out"
for config in ${GPU_MEMORY:-tnl-385m:2048:1 tnl-385m:8192:1 tnl-1b:2048:1 tnl-1b:8192:1}; do
  IFS=: read -r model seq batch <<<"$config"
  for recompute in none selective full; do
    LINPAR_RECOMPUTE=$recompute ./build-gpu/bench/train_bench data/kjv/train.bin "$model" "$seq" "$batch" 2 1 \
      >>"$out/memory.txt" 2>&1 || echo "memory_linpar $model $seq $batch $recompute failed" >>"$out/memory.txt"
  done
done
grep -E "^memory_linpar" "$out/memory.txt"
