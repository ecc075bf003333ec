// Allocators own raw device or host memory. Tensors hold their storage through
// an allocator so that a caching CUDA allocator can slot in without touching
// tensor code.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace linpar {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  virtual Device device() const = 0;
};

// 64-byte aligned host memory (a cache line, and what AVX-512 loads want).
// Counts the bytes its tensors hold, live and at their peak, so that a run's
// memory can be compared with the simulator's model of it (the requested
// bytes, as the model counts them; tests/parallel/memory_measured_test.cpp).
class CpuAllocator final : public Allocator {
 public:
  static constexpr size_t kAlignment = 64;
  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) override;
  Device device() const override { return Device::CPU; }

  int64_t live_bytes() const;
  int64_t peak_bytes() const;  // since the last reset_peak()
  void reset_peak();
};
// The process's CPU allocator (default_allocator(Device::CPU)).
CpuAllocator& cpu_allocator();

// The process-wide allocator for a device. CUDA's is defined in the CUDA
// backend and throws a UserError when linpar was built without CUDA.
Allocator& default_allocator(Device device);

}  // namespace linpar
