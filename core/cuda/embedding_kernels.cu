// Embedding lookup and its gradient on the GPU: CTAs stride over token rows,
// a CTA's threads over the row's width (coalesced table reads and writes).
// The backward scatters with f32 atomicAdd (repeated tokens add up in any
// order: f32 sums, not bit-reproducible between runs).
#include <cuda_bf16.h>

#include "core/cuda/cuda_check.h"
#include "core/cuda/kernel_common.cuh"
#include "core/cuda/embedding_kernels.h"
#include "core/cuda/ids_outside.cuh"

namespace linpar::cuda {

namespace {

constexpr int kThreads = 256;



template <typename T>
__global__ void forward_kernel(EmbeddingDims d, const int32_t* tokens, const T* table, float scale,
                               T* y, unsigned long long* first_outside) {
  for (int64_t r = blockIdx.x; r < d.rows; r += gridDim.x) {
    const int32_t token = tokens[r];
    const bool outside = token < 0 || token >= d.vocab_size;
    if (outside && threadIdx.x == 0) note_id_outside(first_outside, r, token);
    const int64_t local = static_cast<int64_t>(token) - d.vocab_offset;
    const bool held = !outside && local >= 0 && local < d.table_rows;
    for (int64_t i = threadIdx.x; i < d.width; i += blockDim.x) {
      st(y, r * d.width + i, held ? ld(table, local * d.width + i) * scale : 0.0f);
    }
  }
}

template <typename T>
__global__ void backward_kernel(EmbeddingDims d, const T* dy, const int32_t* tokens, float scale,
                                float* d_table) {
  for (int64_t r = blockIdx.x; r < d.rows; r += gridDim.x) {
    const int64_t local = static_cast<int64_t>(tokens[r]) - d.vocab_offset;
    if (local < 0 || local >= d.table_rows) continue;  // another rank's row
    for (int64_t i = threadIdx.x; i < d.width; i += blockDim.x) {
      atomicAdd(d_table + local * d.width + i, scale * ld(dy, r * d.width + i));
    }
  }
}

// d_table (bf16) += accumulator (f32), one rounding per element.
__global__ void add_to_bf16_kernel(const float* accumulator, __nv_bfloat16* d_table, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    d_table[i] = __float2bfloat16(__bfloat162float(d_table[i]) + accumulator[i]);
  }
}

}  // namespace

std::optional<int32_t> embedding_forward(bool bf16, const EmbeddingDims& d, const int32_t* tokens,
                                         const void* table, float scale, void* y, void* scratch) {
  if (d.rows == 0) return std::nullopt;
  reset_ids_outside(scratch);
  auto* first = static_cast<unsigned long long*>(scratch);
  const int blocks = grid_blocks(d.rows, 1);
  if (bf16) {
    forward_kernel<<<blocks, kThreads, 0, cudaStreamLegacy>>>(
        d, tokens, static_cast<const __nv_bfloat16*>(table), scale, static_cast<__nv_bfloat16*>(y),
        first);
  } else {
    forward_kernel<<<blocks, kThreads, 0, cudaStreamLegacy>>>(
        d, tokens, static_cast<const float*>(table), scale, static_cast<float*>(y), first);
  }
  CUDA_CHECK(cudaGetLastError());
  return read_ids_outside(scratch);
}

void embedding_backward(bool dy_bf16, bool d_table_bf16, const EmbeddingDims& d, const void* dy,
                        const int32_t* tokens, float scale, void* d_table, float* accumulator) {
  if (d.rows == 0) return;
  const int64_t table_numel = d.table_rows * d.width;
  float* sums = d_table_bf16 ? accumulator : static_cast<float*>(d_table);
  if (d_table_bf16) {
    CUDA_CHECK(cudaMemsetAsync(accumulator, 0, table_numel * sizeof(float), cudaStreamLegacy));
  }
  const int blocks = grid_blocks(d.rows, 1);
  if (dy_bf16) {
    backward_kernel<<<blocks, kThreads, 0, cudaStreamLegacy>>>(
        d, static_cast<const __nv_bfloat16*>(dy), tokens, scale, sums);
  } else {
    backward_kernel<<<blocks, kThreads, 0, cudaStreamLegacy>>>(d, static_cast<const float*>(dy),
                                                               tokens, scale, sums);
  }
  CUDA_CHECK(cudaGetLastError());
  if (d_table_bf16 && table_numel > 0) {
    add_to_bf16_kernel<<<grid_blocks(table_numel, kThreads), kThreads, 0, cudaStreamLegacy>>>(
        accumulator, static_cast<__nv_bfloat16*>(d_table), table_numel);
    CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace linpar::cuda
