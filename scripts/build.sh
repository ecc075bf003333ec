#!/usr/bin/env bash
# Configures and builds linpar (Release) into build/. CUDA is enabled when
# nvcc is found (/usr/local/cuda here); the CPU build works without it.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${LINPAR_BUILD_DIR:-build}"
jobs="${LINPAR_JOBS:-$(nproc)}"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j "$jobs"
