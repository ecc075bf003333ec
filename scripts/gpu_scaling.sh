#!/usr/bin/env bash
# On a multi-GPU machine, after scripts/gpu_check.sh built build-gpu/: the
# scaling benchmarks of docs/benchmarks.md through `linpar train --device
# cuda` on the default corpus (median tokens/s of steps 3.. of each run).
#   DP weak scaling: tnl-385m, seq 2048, micro-batch 4 per GPU, 1..G GPUs.
#   LASP sequence scaling: tnl-385m, micro-batch 1, 8192 tokens per GPU,
#   sequence = 8192 × G over --sp G (LASP ring).
# SCALING_OP_TIMES=1: the multi-GPU runs also print each rank's per-op times
# of their last step (LINPAR_OP_TIMES, top 14 ops per rank).
# SCALING_KINDS="dp lasp" (default): which of the two series to run.
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
out="${OUT:-/tmp}"
mkdir -p "$out"
gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
mpirun=(mpirun --oversubscribe)
if [ "$(id -u)" -eq 0 ]; then mpirun+=(--allow-run-as-root); fi
median_tps() {  # median tokens_per_s of the metrics file's steps after the second
  python3 -c "import json,sys,statistics; r=[json.loads(l) for l in open(sys.argv[1])]; \
t=[x['tokens_per_s'] for x in r if 'tokens_per_s' in x and x['step']>2]; print(f'{statistics.median(t):.0f}')" "$1"
}
run() {  # name ranks args...
  local name=$1 ranks=$2; shift 2
  rm -f "$out/$name.jsonl"
  "${mpirun[@]}" -np "$ranks" ./build-gpu/cli/linpar train --device cuda --data data/kjv --steps 8 \
    --eval-every 0 --eval-windows 1 --progress quiet --metrics "$out/$name.jsonl" "$@" >"$out/$name.log" 2>&1 \
    || { echo "$name failed"; tail -3 "$out/$name.log"; return; }
  echo "$name $ranks $(median_tps "$out/$name.jsonl")"
  if [ "${SCALING_OP_TIMES:-0}" = 1 ] && [ "$ranks" -gt 1 ]; then
    for r in $(seq 0 $((ranks - 1))); do grep "^# rank $r op" "$out/$name.log" | head -14; done
  fi
}
echo "run ranks tokens_per_s (whole job)"
kinds="${SCALING_KINDS:-dp lasp}"
if [ "${SCALING_OP_TIMES:-0}" = 1 ]; then export LINPAR_OP_TIMES=1; fi
for g in 1 2 4 8; do
  [[ " $kinds " == *" dp "* ]] || break
  [ "$g" -le "$gpus" ] || break
  run "dp$g" "$g" --model tnl-385m --seq-len 2048 --micro-batch 4 --global-batch $((4 * g)) --dp "$g"
done
for g in 1 2 4 8; do
  [[ " $kinds " == *" lasp "* ]] || break
  [ "$g" -le "$gpus" ] || break
  run "lasp$g" "$g" --model tnl-385m --seq-len $((8192 * g)) --micro-batch 1 --global-batch 1 --sp "$g" --sp-kind lasp
done
