#!/usr/bin/env bash
# Several machines with mpirun and a hostfile (one line per node:
# "node01 slots=8"). linpar, its build and the data must be at the same path on
# every node (a shared file system, or copies).
# Usage: scripts/launch/multi_node.sh HOSTFILE RANKS [extra linpar train options]
set -euo pipefail
cd "$(dirname "$0")/../.."
hostfile="${1:?usage: multi_node.sh HOSTFILE RANKS [options]}"
ranks="${2:?usage: multi_node.sh HOSTFILE RANKS [options]}"
shift 2
exec mpirun --hostfile "$hostfile" -np "$ranks" --map-by ppr:"${RANKS_PER_NODE:-8}":node --bind-to core \
  -x PATH -x LD_LIBRARY_PATH \
  build/cli/linpar train --dp "$ranks" --zero "${ZERO:-1}" --model "${MODEL:-tnl-small}" --data default \
  --global-batch $((ranks * 8)) --micro-batch 8 "$@"
