#!/usr/bin/env bash
# On a GPU machine, after scripts/gpu_check.sh built build-gpu/: the real runs
# the simulator is validated against (docs/validation.md). Writes, under $OUT:
#   profile-<model>.json   `linpar profile` of this machine (collectives over
#                           every GPU when there are 2+)
#   validation_runs.txt    one line per run: name, GPUs, median step seconds
#                           (steps 3..8), peak GPU memory in use (rank 0), then
#                           the exact linpar arguments
#   validation-logs.tar.gz every run's log and metrics; step 9 of each run
#                           is timed op by op (LINPAR_OP_TIMES) and left out
#                           of the median
# VALIDATION_LOGS=DIR puts the per-run logs and metrics there instead.
# Runs tnl-385m at 2048 tokens per sample on 1 GPU and each 2-, 4- and 8-GPU
# layout (DP, ZeRO-1, TP, TP+SP, PP, every SP kind, and mixes) that the
# machine has GPUs for. VALIDATION_SIZES="4 8" keeps the runs of those GPU
# counts only (a 10-minute device call holds about 15 runs);
# VALIDATION_PROFILE=0 skips the profile.
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
out="${OUT:-/tmp}"
logs="${VALIDATION_LOGS:-$out}"  # per-run logs and metrics
mkdir -p "$out" "$logs"
gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
mpirun=(mpirun --oversubscribe)
if [ "$(id -u)" -eq 0 ]; then mpirun+=(--allow-run-as-root); fi
model="${VALIDATION_MODEL:-tnl-385m}"
[ "${VALIDATION_PROFILE:-1}" = 0 ] || "${mpirun[@]}" -np "$gpus" ./build-gpu/cli/linpar profile --device cuda --model "$model" --seq-len 2048 \
  --micro-batch 4 --out "$out/profile-$model.json" >"$logs/profile.log" 2>&1 || { echo "profile failed"; tail -3 "$logs/profile.log"; }
median_step() {  # median seconds per step of the metrics file's steps after the second
  python3 -c "import json,sys,statistics; r=[json.loads(l) for l in open(sys.argv[1])]; \
t=[x['compute_s']+x['optimizer_s'] for x in r if 'compute_s' in x and 2<x['step']<9]; \
m=max(x.get('gpu_peak_in_use_bytes',0) for x in r); print(f'{statistics.median(t):.5f} {m/2**30:.2f}GiB')" "$1"
}
results="$out/validation_runs.txt"
: >"$results"
run() {  # name ranks args...
  local name=$1 ranks=$2; shift 2
  [ "$ranks" -le "$gpus" ] || return
  [[ " ${VALIDATION_SIZES:-1 2 4 8} " == *" $ranks "* ]] || return
  local args=(--model "$model" --device cuda --steps 9 "$@")
  rm -f "$logs/v-$name.jsonl"
  LINPAR_OP_TIMES=1 "${mpirun[@]}" -x LINPAR_OP_TIMES -np "$ranks" ./build-gpu/cli/linpar train --data data/kjv --eval-every 0 --eval-windows 1 \
    --progress quiet --metrics "$logs/v-$name.jsonl" "${args[@]}" >"$logs/v-$name.log" 2>&1 \
    || { echo "$name failed: $(tail -1 "$logs/v-$name.log")"; return; }
  echo "$name $ranks $(median_step "$logs/v-$name.jsonl") ${args[*]}" | tee -a "$results"
}
b="--seq-len 2048 --micro-batch 4"
run single 1 $b --global-batch 4
run dp2 2 $b --global-batch 8 --dp 2
run dp2-zero1 2 $b --global-batch 8 --dp 2 --zero 1
run tp2 2 $b --global-batch 4 --tp 2
run tp2-sp 2 $b --global-batch 4 --tp 2 --tp-sp
run pp2-1f1b 2 --seq-len 2048 --micro-batch 1 --global-batch 8 --pp 2 --pp-schedule 1f1b
for kind in lasp lasp2 allgather ulysses; do
  run "sp2-$kind" 2 --seq-len 4096 --micro-batch 2 --global-batch 2 --sp 2 --sp-kind "$kind"
done
run single-8k 1 --seq-len 8192 --micro-batch 1 --global-batch 1
# 4 and 8 GPUs: each degree alone at its largest, then mixes.
for g in 4 8; do
  run "dp$g" $g $b --global-batch $((4 * g)) --dp $g
  run "dp$g-zero1" $g $b --global-batch $((4 * g)) --dp $g --zero 1
  run "tp$g" $g $b --global-batch 4 --tp $g
  run "tp$g-sp" $g $b --global-batch 4 --tp $g --tp-sp
  run "pp$g-1f1b" $g --seq-len 2048 --micro-batch 1 --global-batch $((4 * g)) --pp $g --pp-schedule 1f1b
  for kind in lasp lasp2 allgather ulysses; do
    run "sp$g-$kind" $g --seq-len $((2048 * g)) --micro-batch 2 --global-batch 2 --sp $g --sp-kind "$kind"
  done
done
run dp2-tp2 4 $b --global-batch 8 --dp 2 --tp 2
run tp2-pp2 4 --seq-len 2048 --micro-batch 1 --global-batch 8 --tp 2 --pp 2 --pp-schedule 1f1b
run dp2-sp2-lasp 4 --seq-len 4096 --micro-batch 2 --global-batch 4 --dp 2 --sp 2 --sp-kind lasp
run dp2-tp2-pp2 8 --seq-len 2048 --micro-batch 1 --global-batch 16 --dp 2 --tp 2 --pp 2 --pp-schedule 1f1b
run tp2-sp4-lasp 8 --seq-len 8192 --micro-batch 2 --global-batch 2 --tp 2 --sp 4 --sp-kind lasp
# The per-op tables and metrics of every run, one file (the device tool
# returns only a few files).
tar -czf "$out/validation-logs.tar.gz" -C "$logs" . 2>/dev/null || true
