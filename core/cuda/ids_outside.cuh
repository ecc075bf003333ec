// Reporting token ids outside their range from inside a kernel (embedding
// tokens, cross-entropy targets). A thread that meets one atomicMin's the
// packed (index << 32 | id) into 8 bytes of device memory, so one small copy
// back gives the host the first bad id in index order: the one the CPU
// reference, which stops at the first bad row, reports. Included by .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <optional>

#include "core/cuda/cuda_check.h"

namespace linpar::cuda {

inline constexpr unsigned long long kNoIdOutside = ~0ull;

// index < 2³²: rows of one step are far fewer.
__device__ inline void note_id_outside(unsigned long long* first, int64_t index, int32_t id) {
  atomicMin(first, (static_cast<unsigned long long>(index) << 32) | static_cast<uint32_t>(id));
}

inline void reset_ids_outside(void* first) {
  CUDA_CHECK(cudaMemsetAsync(first, 0xff, sizeof(unsigned long long), cudaStreamLegacy));
}

// Waits for the kernels before it on the legacy stream (cudaMemcpy does).
inline std::optional<int32_t> read_ids_outside(const void* first) {
  unsigned long long packed = kNoIdOutside;
  CUDA_CHECK(cudaMemcpy(&packed, first, sizeof packed, cudaMemcpyDeviceToHost));
  if (packed == kNoIdOutside) return std::nullopt;
  return static_cast<int32_t>(static_cast<uint32_t>(packed & 0xffffffffull));
}

}  // namespace linpar::cuda
