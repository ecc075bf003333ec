#include "core/median_time.h"

#include <algorithm>
#include <vector>

#include "core/cuda/cuda_runtime.h"
#include "core/error.h"
#include "core/timer.h"
#ifdef LINPAR_HAVE_CUDA
#include <cuda_runtime.h>

#include "core/cuda/cuda_check.h"
#endif

namespace linpar {

namespace {

#ifdef LINPAR_HAVE_CUDA
// A pair of CUDA events, destroyed on every way out.
struct Events {
  cudaEvent_t start = nullptr, stop = nullptr;
  Events() {
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~Events() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
  double time(const std::function<void()>& run) {
    CUDA_CHECK(cudaEventRecord(start, cudaStreamLegacy));
    run();
    CUDA_CHECK(cudaEventRecord(stop, cudaStreamLegacy));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms * 1e-3;
  }
};
#endif

}  // namespace

double median_seconds(const std::function<void()>& run, int reps, Device device, int warmups,
                      Clock clock) {
  LINPAR_CHECK(reps > 0 && warmups >= 0, "median of {} timed calls after {} warm-ups", reps,
               warmups);
  const bool gpu = device == Device::CUDA;
  for (int i = 0; i < warmups; ++i) run();
  if (gpu) cuda::synchronize();
  std::vector<double> times;
  times.reserve(static_cast<size_t>(reps));
#ifdef LINPAR_HAVE_CUDA
  if (gpu && clock == Clock::Events) {
    Events events;
    for (int r = 0; r < reps; ++r) times.push_back(events.time(run));
  }
#endif
  if (times.empty()) {
    // CPU work, or the wall clock asked for (a build without CUDA has no
    // GPU work to time: cuda::synchronize is then a no-op).
    for (int r = 0; r < reps; ++r) {
      const Timer timer;
      run();
      if (gpu) cuda::synchronize();
      times.push_back(timer.elapsed_s());
    }
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace linpar
