#include "core/op_timing.h"

#include <algorithm>
#include <cstdio>
#include <chrono>
#include <map>
#include <mutex>

#ifdef LINPAR_HAVE_CUDA
#include <cuda_runtime.h>

#include "core/cuda/cuda_check.h"
#endif

namespace linpar {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// GPU records: event pairs from a pool, resolved when op_times() is asked.
struct GpuRecord {
  const char* name;
#ifdef LINPAR_HAVE_CUDA
  cudaEvent_t start = nullptr, stop = nullptr;
#endif
};

struct Registry {
  std::mutex mutex;
  bool enabled = false;
  std::map<std::string, OpTime> totals;
  std::vector<GpuRecord> pending;  // recorded since the last resolve
  size_t used = 0;                 // of `pending`
};

Registry& registry() {
  static Registry r;
  return r;
}

void add(Registry& r, const char* name, double seconds) {
  OpTime& t = r.totals[name];
  t.name = name;
  t.seconds += seconds;
  ++t.calls;
}

}  // namespace

void enable_op_timing(bool on) {
  std::lock_guard<std::mutex> lock(registry().mutex);
  registry().enabled = on;
}

bool op_timing_enabled() { return registry().enabled; }

std::vector<OpTime> op_times() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
#ifdef LINPAR_HAVE_CUDA
  for (size_t i = 0; i < r.used; ++i) {
    GpuRecord& g = r.pending[i];
    CUDA_CHECK(cudaEventSynchronize(g.stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, g.start, g.stop));
    add(r, g.name, ms * 1e-3);
  }
#endif
  r.used = 0;
  std::vector<OpTime> out;
  for (const auto& [name, t] : r.totals) out.push_back(t);
  std::sort(out.begin(), out.end(), [](const OpTime& a, const OpTime& b) { return a.seconds > b.seconds; });
  return out;
}

void print_op_times(const std::string& prefix, std::FILE* out) {
  const std::vector<OpTime> times = op_times();
  double total = 0;
  for (const OpTime& t : times) total += t.seconds;
  for (const OpTime& t : times) {
    std::fprintf(out, "# %sop %-30s %9.3f ms %6lld calls %5.1f%%\n", prefix.c_str(), t.name.c_str(),
                 t.seconds * 1e3, static_cast<long long>(t.calls), 100.0 * t.seconds / total);
  }
  std::fprintf(out, "# %sop total (timed ops, one step)  %9.3f ms\n", prefix.c_str(), total * 1e3);
}

void reset_op_times() {
  op_times();  // resolve what is pending
  std::lock_guard<std::mutex> lock(registry().mutex);
  registry().totals.clear();
}

OpTimeScope::OpTimeScope(const char* name, Device device) : device_(device) {
  Registry& r = registry();
  if (!r.enabled) return;
  name_ = name;
#ifdef LINPAR_HAVE_CUDA
  if (device == Device::CUDA) {
    std::lock_guard<std::mutex> lock(r.mutex);
    if (r.used == r.pending.size()) {
      GpuRecord g{name};
      CUDA_CHECK(cudaEventCreate(&g.start));
      CUDA_CHECK(cudaEventCreate(&g.stop));
      r.pending.push_back(g);
    }
    slot_ = static_cast<int>(r.used++);
    r.pending[static_cast<size_t>(slot_)].name = name;
    CUDA_CHECK(cudaEventRecord(r.pending[static_cast<size_t>(slot_)].start, cudaStreamLegacy));
    return;
  }
#endif
  start_s_ = now_s();
}

OpTimeScope::~OpTimeScope() {
  if (name_ == nullptr) return;
  Registry& r = registry();
#ifdef LINPAR_HAVE_CUDA
  if (slot_ >= 0) {
    std::lock_guard<std::mutex> lock(r.mutex);
    cudaEventRecord(r.pending[static_cast<size_t>(slot_)].stop, cudaStreamLegacy);  // no throw here
    return;
  }
#endif
  const double seconds = now_s() - start_s_;
  std::lock_guard<std::mutex> lock(r.mutex);
  add(r, name_, seconds);
}

}  // namespace linpar
