#!/usr/bin/env bash
# One call on a GPU machine that does a session's GPU work (the device time is
# scarce): build + every GPU test (scripts/gpu_check.sh), the training-step
# benchmark with its PyTorch peer and the per-op table, the KV-state kernel
# benchmark, the chunk-layout benchmark, the scaling runs with per-op times (2+ GPUs), a
# PyTorch GPT timed op by op for the simulator's GPT plan, and the
# simulator's validation runs with a `linpar profile` of the machine. Only
# the profile and the validation table go to $OUT (the device tool returns a
# few files); everything else is printed, logs under /tmp/session.
# SESSION_PARTS="check bench kv layout scaling gpt sdpa validation" (default: all) picks the
# parts; without "check" an existing build-gpu/ is reused (or built; "gpt" alone needs none).
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
keep="${OUT:-/tmp/out}"
logs=/tmp/session
mkdir -p "$keep" "$logs"
parts=" ${SESSION_PARTS:-check bench kv layout scaling gpt sdpa validation} "
has() { [[ "$parts" == *" $1 "* ]]; }
needs_build=0
for p in check bench kv layout scaling validation; do has $p && needs_build=1; done
if has check; then
  OUT=$logs/check bash scripts/gpu_check.sh 2>&1 | tail -40
elif [ $needs_build = 1 ] && [ ! -x build-gpu/cli/linpar ]; then
  OUT=$logs/check GPU_CHECK_TESTS=0 bash scripts/gpu_check.sh 2>&1 | tail -3
fi
[ $needs_build = 0 ] || [ -x build-gpu/cli/linpar ] || exit 1
if has bench; then
echo "== training step (${SESSION_TRAIN:-tnl-1b:8192:1})"
OUT=$logs/bench BENCH_SKIP_LIGHTNING=1 BENCH_TRAIN="${SESSION_TRAIN:-tnl-1b:8192:1}" LINPAR_OP_TIMES=1 \
  bash scripts/gpu_bench.sh >"$logs/bench.txt" 2>&1
grep -E "^train_|^who|^# phases|^# peak|measured bf16|^copy" "$logs/bench.txt"
grep "^# op" "$logs/bench.txt" | head -24
fi
if has kv && [ -x build-gpu/bench/kv_state_bench ]; then
  echo "== KV-state kernels"
  ./build-gpu/bench/kv_state_bench 2>&1 | tail -20
fi
if has layout && [ -x build-gpu/bench/chunk_layout_bench ]; then
  echo "== chunk-layout permutations (SP collectives' re-arrangements)"
  ./build-gpu/bench/chunk_layout_bench 2>&1 | tail -12
fi
gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
if has scaling && [ "$gpus" -ge 2 ]; then
  echo "== scaling"
  OUT=$logs/scaling SCALING_OP_TIMES=1 bash scripts/gpu_scaling.sh 2>&1 | grep -v "^# rank" 
  grep -h "^# rank 1 op" "$logs"/scaling/lasp2.log | head -10
fi
if has gpt; then
  # The simulator's GPT op plan against a PyTorch GPT on this GPU
  # (scripts/sim_vs_gpt_torch.py compares): Megatron-LM 1.7B's shape with the
  # unfused core (compiled and eager element-wise kernels) and with
  # FlashAttention, the ops alone with the L2 cache evicted, 7.5B's layer, and FlashAttention
  # without dropout (and at heads of 128, 8K tokens), and published row 1's micro-batch of 16 with full recomputation;
  # the whole steps' kernels listed by name. GPT_RUNS="name:args;name:args" picks others.
  echo "== GPT in PyTorch (bench/gpt_torch.py)"
  default_runs=("unfused:--step-kernels" "unfused-eager:--eager --no-step" "flash:--core flash --step-kernels"
                "unfused-cold:--flush-l2 --no-step"
                "unfused-7.5b:--layers 36 --hidden 4096 --heads 32 --batch 2 --no-step"
                "flash-nodrop:--core flash --dropout 0 --no-step"
                "flash-d128-8k:--core flash --dropout 0 --layers 1 --hidden 4096 --heads 32 --batch 1 --seq 8192 --no-step"
                "unfused-mb16:--batch 16 --step-recompute full")
  if [ -n "${GPT_RUNS:-}" ]; then IFS=';' read -r -a runs <<<"$GPT_RUNS"; else runs=("${default_runs[@]}"); fi
  for run in "${runs[@]}"; do
    name=${run%%:*}
    timeout 300 python3 bench/gpt_torch.py ${run#*:} >"$keep/gpt-torch-$name.json" 2>"$logs/gpt-$name.err" ||
      { echo "gpt $name failed"; tail -5 "$logs/gpt-$name.err"; }
    head -c 600 "$keep/gpt-torch-$name.json"; echo
  done
fi
if has sdpa; then
  # FlashAttention's rate by head size, length and dropout (the simulator's one softmax_attention share).
  echo "== SDPA by shape (bench/sdpa_torch.py)"
  for shapes in ${SDPA_SHAPES:-grid held-out between}; do
    timeout 300 python3 bench/sdpa_torch.py --shapes $shapes >"$keep/sdpa-torch-$shapes.json" 2>"$logs/sdpa.err" ||
      { echo "sdpa $shapes failed"; tail -5 "$logs/sdpa.err"; continue; }
    python3 -c "
import json,sys
d=json.load(open(sys.argv[1]))
for r in d['rows']: print(r['batch'], r['heads'], r['kv_heads'], r['head_dim'], r['seq'], r['dropout'], round(r['forward_share'],3), round(r['backward_share'],3), round(r['share'],3))
" "$keep/sdpa-torch-$shapes.json"
  done
fi
if has validation; then
  echo "== validation runs"
  OUT=$keep VALIDATION_LOGS=$logs/validation bash scripts/gpu_validation.sh 2>&1 | tail -14
fi
