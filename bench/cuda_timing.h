// The benchmarks' clock: the median of `reps` runs of a GPU operation, timed
// with CUDA events on the legacy default stream, after three warm-up runs
// (cuBLASLt handles and heuristics, the caching allocator, clocks).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "core/cuda/cuda_check.h"

namespace linpar::bench {

template <typename F>
double median_ms(F&& run, int reps) {
  struct Events {  // destroyed on every way out
    cudaEvent_t start = nullptr, stop = nullptr;
    Events() {
      CUDA_CHECK(cudaEventCreate(&start));
      CUDA_CHECK(cudaEventCreate(&stop));
    }
    ~Events() {
      cudaEventDestroy(start);
      cudaEventDestroy(stop);
    }
  } e;
  for (int i = 0; i < 3; ++i) run();
  std::vector<float> times;
  for (int i = 0; i < reps; ++i) {
    CUDA_CHECK(cudaEventRecord(e.start, cudaStreamLegacy));
    run();
    CUDA_CHECK(cudaEventRecord(e.stop, cudaStreamLegacy));
    CUDA_CHECK(cudaEventSynchronize(e.stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e.start, e.stop));
    times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace linpar::bench
