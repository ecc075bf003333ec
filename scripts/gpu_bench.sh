#!/usr/bin/env bash
# On the GPU machine, after scripts/gpu_check.sh has built build-gpu/: the
# benchmarks beside their PyTorch peers in the same run, a short table last
# (full logs under $OUT). docs/benchmarks.md says what each number means.
#   GEMM: cuBLASLt through linpar vs torch.matmul (bf16); the largest square
#         rate is the measured peak that MFU divides by.
#   Lightning attention fwd+bwd vs the same algorithm in PyTorch and SDPA.
#   Training step (bench/train_bench.cpp) vs bench/tnl_torch.py.
# BENCH_TRAIN="model:seq:batch ..." picks the training configurations;
# BENCH_SKIP_LIGHTNING=1 leaves the attention benchmark out; BENCH_SKIP_PROFILE=1
# the profile; BENCH_SKIP_TORCH_CHUNKED=1 the plain-torch training peer.
# With fla's source in FLA_DIR (default .device/fla: fetched, never committed)
# fla's chunk_simple_gla runs beside lightning_bench, and bench/tnl_torch.py
# --attention fla, eager and with torch.compile, beside the training step.
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
out="${OUT:-/tmp}"
mkdir -p "$out"
fla="${FLA_DIR:-.device/fla}"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
./build-gpu/bench/gemm_bench 20 >"$out/gemm_linpar.txt" 2>&1 || tail -5 "$out/gemm_linpar.txt"
python3 bench/gemm_torch.py >"$out/gemm_torch.txt" 2>&1 || tail -5 "$out/gemm_torch.txt"
echo "shape                 m      n      k   linpar TFLOP/s  torch TFLOP/s"
while read -r _ name m n k ms tf; do
  peer=$(awk -v s="$name" '$2 == s {print $7}' "$out/gemm_torch.txt")
  printf "%-16s %6s %6s %6s %14s %14s\n" "$name" "$m" "$n" "$k" "$tf" "${peer:-?}"
done < <(grep '^gemm ' "$out/gemm_linpar.txt")
grep '^copy' "$out/gemm_linpar.txt"
# The measured bf16 peak: the best rate linpar reached over the GEMM shapes.
peak=$(grep '^gemm ' "$out/gemm_linpar.txt" | awk '$7 > p {p = $7} END {print p + 0}')
echo "measured bf16 GEMM peak: $peak TFLOP/s"
if [ -z "${BENCH_SKIP_LIGHTNING:-}" ]; then
  ./build-gpu/bench/lightning_bench ${BENCH_LIGHTNING:-2048 8192 32768} >"$out/lightning_linpar.txt" 2>&1 || tail -5 "$out/lightning_linpar.txt"
  # (The plain-torch peer's backward takes 5.7 s at 131072 on an H100:
  # BENCH_LIGHTNING_TORCH picks its lengths apart.)
  python3 bench/lightning_torch.py ${BENCH_LIGHTNING_TORCH:-${BENCH_LIGHTNING:-2048 8192 32768}} >"$out/lightning_torch.txt" 2>&1 || tail -5 "$out/lightning_torch.txt"
  # The peer a user would pick: fla's Triton kernel, from its source folder
  # (FLA_DIR, carried with the call; bench/lightning_fla.py).
  if [ -d "$fla/fla" ]; then
    FLA_DIR="$fla" python3 bench/lightning_fla.py ${BENCH_LIGHTNING:-2048 8192 32768} >"$out/lightning_fla.txt" 2>&1 \
      || tail -5 "$out/lightning_fla.txt"
  fi
  cat "$out/lightning_linpar.txt" "$out/lightning_torch.txt" "$out/lightning_fla.txt" 2>/dev/null \
    | grep -E "^(lightning|torch_chunked|sdpa|fla) |^# fla"
fi
: >"$out/train.txt"
for config in ${BENCH_TRAIN:-tnl-385m:2048:4 tnl-1b:2048:2 tnl-1b:8192:1}; do
  IFS=: read -r model seq batch <<<"$config"
  LINPAR_OP_TIMES=1 ./build-gpu/bench/train_bench data/kjv/train.bin "$model" "$seq" "$batch" 6 2 "$peak" >>"$out/train.txt" 2>&1 \
    || echo "train_linpar $model $seq $batch failed" >>"$out/train.txt"
  if [ -z "${BENCH_SKIP_TORCH_CHUNKED:-}" ]; then
    python3 bench/tnl_torch.py --model "$model" --seq-len "$seq" --batch "$batch" --steps 6 --warmup 2 \
      --peak-tflops "$peak" >>"$out/train.txt" 2>&1 || echo "train_torch $model $seq $batch failed" >>"$out/train.txt"
  fi
  if [ -d "$fla/fla" ]; then
    for compile in "" --compile; do
      python3 bench/tnl_torch.py --model "$model" --seq-len "$seq" --batch "$batch" --steps 6 --warmup 2 \
        --peak-tflops "$peak" --attention fla --fla-dir "$fla" $compile >>"$out/train.txt" 2>&1 \
        || echo "train_torch fla $compile $model $seq $batch failed" >>"$out/train.txt"
    done
  fi
done
echo "who           model     seq batch  ms/step   tokens/s  TFLOP/step  MFU"
grep -E "^train_(linpar|torch) |^# |train_bench:" "$out/train.txt"
if [ -n "${BENCH_SKIP_PROFILE:-}" ]; then exit 0; fi
# The measured-rates file for the simulator (docs/profile.md), all GPUs of the machine.
gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
mpirun=(mpirun --oversubscribe)
if [ "$(id -u)" -eq 0 ]; then mpirun+=(--allow-run-as-root); fi
"${mpirun[@]}" -np "$gpus" ./build-gpu/cli/linpar profile --device cuda --model tnl-1b --seq-len 2048 --micro-batch 2 \
  --sizes-mb 1,64,256 --reps 5 --out "$out/profile.json" >"$out/profile.txt" 2>&1 || tail -3 "$out/profile.txt"
grep -E "lightning|memory copy|all_reduce .* 268435456" "$out/profile.txt"
