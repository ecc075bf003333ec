#include "core/allocator.h"

#include <atomic>
#include <cstdlib>
#include <new>

#include "core/cuda/cuda_runtime.h"
#include "core/error.h"

namespace linpar {

namespace {
// Relaxed counters: tensors are allocated from the training thread and the
// CO2 / communication threads alike; the peak is a high-water mark, exact
// per thread and at worst a few allocations late across threads.
std::atomic<int64_t> g_live{0}, g_peak{0};
}  // namespace

void* CpuAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* ptr = std::aligned_alloc(kAlignment, rounded);
  if (ptr == nullptr) throw std::bad_alloc();
  const int64_t live = g_live.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed) +
                       static_cast<int64_t>(bytes);
  int64_t peak = g_peak.load(std::memory_order_relaxed);
  while (live > peak && !g_peak.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
  }
  return ptr;
}

void CpuAllocator::deallocate(void* ptr, size_t bytes) {
  if (ptr == nullptr) return;
  g_live.fetch_sub(static_cast<int64_t>(bytes), std::memory_order_relaxed);
  std::free(ptr);
}

int64_t CpuAllocator::live_bytes() const { return g_live.load(std::memory_order_relaxed); }
int64_t CpuAllocator::peak_bytes() const { return g_peak.load(std::memory_order_relaxed); }
void CpuAllocator::reset_peak() { g_peak.store(live_bytes(), std::memory_order_relaxed); }

CpuAllocator& cpu_allocator() {
  static CpuAllocator cpu;
  return cpu;
}

Allocator& default_allocator(Device device) {
  if (device == Device::CPU) return cpu_allocator();
  return cuda::device_allocator();
}

}  // namespace linpar
