// The CUDA runtime layer seen from host code: device discovery, the device
// allocator and copies. Built from cuda_runtime.cu when the toolkit is present;
// without it, the same functions report that linpar was built without CUDA.
#pragma once

#include <cstddef>

#include "core/allocator.h"

namespace linpar::cuda {

bool built_with_cuda();
int device_count();  // 0 when no driver or no GPU is present
bool available();    // built with CUDA and at least one device

Allocator& device_allocator();  // the caching allocator (cuda_runtime.cu)

// The device allocator's accounting, in bytes of rounded blocks.
struct MemoryStats {
  size_t in_use_bytes = 0;       // held by live tensors
  size_t peak_in_use_bytes = 0;  // high-water mark since the last reset_peak_memory()
  size_t cached_bytes = 0;       // freed, kept for reuse
  size_t reserved_bytes = 0;     // obtained from cudaMalloc: in use + cached
};
MemoryStats memory_stats();
void reset_peak_memory();
void release_cached_memory();  // returns cached blocks to the driver
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
void memset_zero(void* ptr, size_t bytes);
void synchronize();

}  // namespace linpar::cuda
