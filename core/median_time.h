// The one timing harness of the benchmarks (bench/) and `linpar profile`:
// the median of `reps` timed calls of an operation after `warmups` untimed
// ones (cuBLASLt handles and heuristics, the caching allocator, clocks).
// Speed claims are made with it in bench/ and docs/benchmarks.md, never in
// timed tests.
#pragma once

#include <functional>

#include "core/dtype.h"

namespace linpar {

enum class Clock {
  // GPU work: a pair of CUDA events on the legacy default stream around
  // each call (the device's time for what the call queued; the host may
  // run ahead). CPU work: the wall clock.
  Events,
  // The wall clock around each call, the GPU synchronised after it (what a
  // caller waiting for the result sees, launch latency included): the
  // profile's rates, which the simulator adds up op after op.
  Wall,
};

// Seconds: the median of `reps` (> 0) timed calls of `run` on `device`.
double median_seconds(const std::function<void()>& run, int reps, Device device, int warmups,
                      Clock clock);

}  // namespace linpar
