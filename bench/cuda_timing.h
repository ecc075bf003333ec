// The benchmarks' clock in milliseconds: core/median_time.h's harness (the
// one `linpar profile` uses) with CUDA events on the legacy default stream,
// after three warm-up runs.
#pragma once

#include "core/median_time.h"

namespace linpar::bench {

template <typename F>
double median_ms(F&& run, int reps) {
  return median_seconds(run, reps, Device::CUDA, /*warmups=*/3, Clock::Events) * 1e3;
}

}  // namespace linpar::bench
