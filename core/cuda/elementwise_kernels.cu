#include <cuda_bf16.h>

#include "core/cuda/cuda_check.h"
#include "core/cuda/elementwise_kernels.h"

namespace linpar::cuda {

namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) {
  int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

// Grid-stride loops so any n works with a bounded grid.
__global__ void axpy_f32_kernel(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    y[i] += alpha * x[i];
  }
}

__global__ void axpy_bf16_kernel(float alpha, const __nv_bfloat16* x, __nv_bfloat16* y, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    y[i] = __float2bfloat16(__bfloat162float(y[i]) + alpha * __bfloat162float(x[i]));
  }
}

__global__ void scale_f32_kernel(float alpha, float* x, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    x[i] *= alpha;
  }
}

}  // namespace

void axpy_f32(float alpha, const float* x, float* y, int64_t n) {
  if (n == 0) return;
  axpy_f32_kernel<<<blocks_for(n), kThreads>>>(alpha, x, y, n);
  CUDA_CHECK(cudaGetLastError());
}

void axpy_bf16(float alpha, const uint16_t* x, uint16_t* y, int64_t n) {
  if (n == 0) return;
  axpy_bf16_kernel<<<blocks_for(n), kThreads>>>(alpha, reinterpret_cast<const __nv_bfloat16*>(x),
                                                reinterpret_cast<__nv_bfloat16*>(y), n);
  CUDA_CHECK(cudaGetLastError());
}

void scale_f32(float alpha, float* x, int64_t n) {
  if (n == 0) return;
  scale_f32_kernel<<<blocks_for(n), kThreads>>>(alpha, x, n);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace linpar::cuda
