#!/usr/bin/env bash
# The main job: install what is missing, build, prepare the default corpus
# (King James Bible, byte tokens) and train a small TransNormerLLM on it with
# a progress bar, validation in bits per byte and a final checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
scripts/prepare_corpus.sh data/kjv
run_dir="runs/demo"
rm -rf "$run_dir"
mkdir -p "$run_dir"
build/cli/linpar train --model tnl-small --data default --steps "${STEPS:-300}" \
  --seq-len 128 --micro-batch 8 --global-batch 16 --eval-every 50 \
  --ckpt-dir "$run_dir/ckpt" --ckpt-every "${STEPS:-300}" --metrics "$run_dir/metrics.jsonl" "$@"
echo "metrics: $run_dir/metrics.jsonl; checkpoint: $(ls -d "$run_dir"/ckpt/step_* | tail -1)"

# The same model split over two processes: a two-stage pipeline (1F1B), its
# loss identical to a one-process run's, resumed from the checkpoint above.
echo "pipeline-parallel continuation on 2 ranks (mpirun -np 2 ... --pp 2):"
root_flag=""
if [ "$(id -u)" -eq 0 ]; then root_flag="--allow-run-as-root"; fi
mpirun $root_flag --oversubscribe -np 2 build/cli/linpar train --model tnl-small --data default \
  --pp 2 --pp-schedule 1f1b --steps "$(( ${STEPS:-300} + 50 ))" --seq-len 128 --micro-batch 8 --global-batch 16 \
  --eval-every 50 --ckpt-dir "$run_dir/ckpt" --resume --progress lines --metrics "$run_dir/metrics_pp2.jsonl"
