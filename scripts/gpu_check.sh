#!/usr/bin/env bash
# On the GPU machine (see /work/.library/device): build linpar with CUDA for
# sm_90 and run every GPU test (each CUDA op against the CPU reference, the
# optimizer, training on one GPU against the CPU, and with 2+ GPUs the NCCL
# backend), printing a short summary last; full logs under $OUT. The GPU image
# lacks Debian's nlohmann-json package, so the header-only library travels in
# .device/ (scripts/stage_device_deps.sh), and the corpus in data/kjv.
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
out="${OUT:-/tmp}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
json_dir=""
if [ -d .device/nlohmann_json ]; then json_dir="-Dnlohmann_json_DIR=$PWD/.device/nlohmann_json/share/cmake/nlohmann_json"; fi
# Boost.Program_options (the CLI) from the carried Debian packages when the
# image lacks the library.
boost_dir=""
if ! ls /usr/lib/x86_64-linux-gnu/libboost_program_options.so >/dev/null 2>&1 && [ -d .device/boost-debs ]; then
  rm -rf .device/boost-root && mkdir -p .device/boost-root
  for deb in .device/boost-debs/*.deb; do dpkg -x "$deb" .device/boost-root; done
  ln -sf libboost_program_options.so.1.74.0 .device/boost-root/usr/lib/x86_64-linux-gnu/libboost_program_options.so
  boost_dir="-DBoost_DIR=$PWD/.device/boost-root/usr/lib/x86_64-linux-gnu/cmake/Boost-1.74.0 -DBoost_NO_SYSTEM_PATHS=ON"
fi
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 $json_dir $boost_dir >"$out/configure.log" 2>&1 \
  || { tail -30 "$out/configure.log"; exit 1; }
grep -E "Boost|linpar:" "$out/configure.log" | head -5
cmake --build build-gpu -j "$(nproc)" >"$out/build.log" 2>&1 \
  || { grep -E "error" "$out/build.log" | head -30; exit 1; }
# GPU_CHECK_TESTS=0: build only (a benchmark script runs next).
if [ "${GPU_CHECK_TESTS:-1}" = 0 ]; then echo "built (tests skipped: GPU_CHECK_TESTS=0)"; exit 0; fi
mpirun=(mpirun --oversubscribe)
if [ "$(id -u)" -eq 0 ]; then mpirun+=(--allow-run-as-root); fi
export GTEST_COLOR=no
summary() { grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED  \] [A-Za-z]|Failure$" "$1" | sort | uniq -c; }
./build-gpu/tests/core_tests --gtest_filter='*Cuda*:Elementwise*' >"$out/core_gpu.log" 2>&1
./build-gpu/tests/model_tests --gtest_filter='*Cuda*' >"$out/model_gpu.log" 2>&1
"${mpirun[@]}" -np 1 ./build-gpu/tests/parallel_tests --gtest_filter='*CudaNp1.*' >"$out/train_gpu.log" 2>&1
gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
for ranks in 2 4; do
  if [ "$gpus" -ge "$ranks" ]; then
    "${mpirun[@]}" -np "$ranks" ./build-gpu/tests/parallel_tests --gtest_filter="Nccl*Np${ranks}.*:*CudaNp${ranks}.*" >"$out/nccl_np$ranks.log" 2>&1
    "${mpirun[@]}" -np "$ranks" ./build-gpu/tests/co2_tests --gtest_filter="*CudaNp${ranks}.*" >>"$out/nccl_np$ranks.log" 2>&1
    "${mpirun[@]}" -np "$ranks" ./build-gpu/tests/lasp_tests --gtest_filter="*CudaNp${ranks}.*" >>"$out/nccl_np$ranks.log" 2>&1
  fi
done
for log in "$out"/core_gpu.log "$out"/model_gpu.log "$out"/train_gpu.log "$out"/nccl_np*.log; do
  [ -f "$log" ] || continue
  echo "== $(basename "$log")"
  grep -E "Failure|Expected|Which is|error:|what\(\)" "$log" | head -12
  summary "$log"
done
