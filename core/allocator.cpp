#include "core/allocator.h"

#include <cstdlib>
#include <new>

#include "core/cuda/cuda_runtime.h"
#include "core/error.h"

namespace linpar {

void* CpuAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* ptr = std::aligned_alloc(kAlignment, rounded);
  if (ptr == nullptr) throw std::bad_alloc();
  return ptr;
}

void CpuAllocator::deallocate(void* ptr, size_t) { std::free(ptr); }

Allocator& default_allocator(Device device) {
  static CpuAllocator cpu;
  if (device == Device::CPU) return cpu;
  return cuda::device_allocator();
}

}  // namespace linpar
