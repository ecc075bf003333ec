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

Allocator& device_allocator();
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
void memset_zero(void* ptr, size_t bytes);
void synchronize();

}  // namespace linpar::cuda
