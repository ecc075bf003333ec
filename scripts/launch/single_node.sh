#!/usr/bin/env bash
# One machine, N processes: data parallel over N ranks (ZeRO-1 with ZERO=1).
# Usage: scripts/launch/single_node.sh N [extra linpar train options]
set -euo pipefail
cd "$(dirname "$0")/../.."
ranks="${1:?usage: single_node.sh N [options]}"
shift
root_flag=""
if [ "$(id -u)" -eq 0 ]; then root_flag="--allow-run-as-root"; fi
exec mpirun $root_flag --oversubscribe -np "$ranks" build/cli/linpar train \
  --dp "$ranks" --zero "${ZERO:-0}" --model "${MODEL:-tnl-small}" --data default \
  --global-batch $((ranks * 8)) --micro-batch 8 "$@"
