// Small pieces every elementwise CUDA kernel file uses (.cu files only):
// bounded grids for grid-stride loops, and f32 loads/stores of f32 or bf16
// elements (kernels compute in f32 whatever the storage type).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace linpar::cuda {

// Blocks for n items at per_block items per block, capped: grid-stride loops
// cover the rest, and a bounded grid keeps launches cheap for huge n.
inline int grid_blocks(int64_t n, int64_t per_block) {
  const int64_t blocks = (n + per_block - 1) / per_block;
  return static_cast<int>(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

__device__ inline float ld(const float* p, int64_t i) { return p[i]; }
__device__ inline float ld(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ inline void st(float* p, int64_t i, float x) { p[i] = x; }
__device__ inline void st(__nv_bfloat16* p, int64_t i, float x) { p[i] = __float2bfloat16(x); }

}  // namespace linpar::cuda
