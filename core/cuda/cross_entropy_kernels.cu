// Vocabulary-parallel cross-entropy on the GPU: one CTA per row (CTAs stride
// over rows), its threads over the row's logits, f32 block reductions (warp
// shuffles, then the warps' results in order) for the max and the sum of exps.
// expf, not __expf: the sums must agree with the CPU to f32 accuracy.
#include <cuda_bf16.h>

#include <cmath>

#include "core/cuda/cross_entropy_kernels.h"
#include "core/cuda/cuda_check.h"
#include "core/cuda/ids_outside.cuh"
#include "core/cuda/kernel_common.cuh"

namespace linpar::cuda {

namespace {

constexpr int kThreads = 256;

struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct Sum {
  __device__ float operator()(float a, float b) const { return a + b; }
};

// Reduces one value per thread of a kThreads CTA; every thread gets the result.
template <typename Op>
__device__ float block_reduce(float value, Op op) {
  __shared__ float warp_results[kThreads / 32];
  for (int offset = 16; offset > 0; offset /= 2)
    value = op(value, __shfl_xor_sync(0xffffffffu, value, offset));
  if (threadIdx.x % 32 == 0) warp_results[threadIdx.x / 32] = value;
  __syncthreads();
  float result = warp_results[0];
  for (int w = 1; w < kThreads / 32; ++w) result = op(result, warp_results[w]);
  __syncthreads();  // the next reduction may overwrite warp_results
  return result;
}

template <typename T>
__global__ void local_max_kernel(const T* logits, float* row_max, int64_t rows, int64_t vocab) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = logits + r * vocab;
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) m = fmaxf(m, ld(row, i));
    m = block_reduce(m, Max{});
    if (threadIdx.x == 0) row_max[r] = m;
  }
}

template <typename T>
__global__ void local_sums_kernel(const T* logits, const int32_t* targets, int64_t vocab_offset,
                                  const float* row_max, float* sum_exp, float* target_logit,
                                  int64_t rows, int64_t vocab, unsigned long long* first_outside) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = logits + r * vocab;
    const float m = row_max[r];
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) sum += expf(ld(row, i) - m);
    sum = block_reduce(sum, Sum{});
    if (threadIdx.x == 0) {
      sum_exp[r] = sum;
      const int32_t target = targets[r];
      if (first_outside != nullptr && (target < 0 || target >= vocab))
        note_id_outside(first_outside, r, target);
      const int64_t local = static_cast<int64_t>(target) - vocab_offset;
      if (target_logit != nullptr)
        target_logit[r] = local >= 0 && local < vocab ? ld(row, local) : 0.0f;
    }
  }
}

__global__ void losses_kernel(const float* row_max, const float* sum_exp, const float* target_logit,
                              float* losses, int64_t rows) {
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < rows;
       r += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    losses[r] = logf(sum_exp[r]) + row_max[r] - target_logit[r];
  }
}

template <typename T>
__global__ void backward_kernel(const T* logits, const int32_t* targets, int64_t vocab_offset,
                                const float* row_max, const float* sum_exp, float scale, T* dlogits,
                                int64_t rows, int64_t vocab) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float m = row_max[r], s = scale / sum_exp[r];
    const int64_t local = static_cast<int64_t>(targets[r]) - vocab_offset;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
      float g = expf(ld(logits, r * vocab + i) - m) * s;
      if (i == local) g -= scale;
      st(dlogits, r * vocab + i, g);
    }
  }
}

}  // namespace

void cross_entropy_local_max(bool bf16, const void* logits, float* row_max, int64_t rows,
                             int64_t vocab) {
  if (rows == 0) return;
  by_type(bf16, [&]<typename T>() {
    local_max_kernel<T><<<grid_blocks(rows, 1), kThreads, 0, cudaStreamLegacy>>>(
        in<T>(logits), row_max, rows, vocab);
  });
}

std::optional<int32_t> cross_entropy_local_sums(bool bf16, const void* logits,
                                                const int32_t* targets, int64_t vocab_offset,
                                                const float* row_max, float* sum_exp,
                                                float* target_logit, int64_t rows, int64_t vocab,
                                                void* scratch) {
  if (rows == 0) return std::nullopt;
  if (scratch != nullptr) reset_ids_outside(scratch);
  by_type(bf16, [&]<typename T>() {
    local_sums_kernel<T><<<grid_blocks(rows, 1), kThreads, 0, cudaStreamLegacy>>>(
        in<T>(logits), targets, vocab_offset, row_max, sum_exp, target_logit, rows, vocab,
        static_cast<unsigned long long*>(scratch));
  });
  return scratch != nullptr ? read_ids_outside(scratch) : std::nullopt;
}

void cross_entropy_losses(const float* row_max, const float* sum_exp, const float* target_logit,
                          float* losses, int64_t rows) {
  if (rows == 0) return;
  const int64_t blocks = (rows + kThreads - 1) / kThreads;
  losses_kernel<<<static_cast<int>(blocks < 65535 * 16 ? blocks : 65535 * 16), kThreads, 0,
                  cudaStreamLegacy>>>(row_max, sum_exp, target_logit, losses, rows);
  CUDA_CHECK(cudaGetLastError());
}

void cross_entropy_backward(bool bf16, const void* logits, const int32_t* targets,
                            int64_t vocab_offset, const float* row_max, const float* sum_exp,
                            float scale, void* dlogits, int64_t rows, int64_t vocab) {
  if (rows == 0) return;
  by_type(bf16, [&]<typename T>() {
    backward_kernel<T><<<grid_blocks(rows, 1), kThreads, 0, cudaStreamLegacy>>>(
        in<T>(logits), targets, vocab_offset, row_max, sum_exp, scale, out<T>(dlogits), rows,
        vocab);
  });
}

}  // namespace linpar::cuda
