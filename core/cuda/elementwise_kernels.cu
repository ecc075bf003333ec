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

__global__ void scale_bf16_kernel(float alpha, __nv_bfloat16* x, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    x[i] = __float2bfloat16(alpha * __bfloat162float(x[i]));
  }
}

__global__ void f32_to_bf16_kernel(const float* src, __nv_bfloat16* dst, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = __float2bfloat16_rn(src[i]);
  }
}

__global__ void bf16_to_f32_kernel(const __nv_bfloat16* src, float* dst, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = __bfloat162float(src[i]);
  }
}

__device__ float as_float(float v) { return v; }
__device__ float as_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// Each block reduces its grid-stride share in f32 (warp shuffles, then one
// warp over the warps' sums) and adds it to the f64 total: the f32 partials
// stay short (≤ n / grid terms) and the cross-block sum is exact enough.
template <typename T>
__global__ void sum_squares_kernel(const T* x, int64_t n, double* total) {
  float sum = 0.f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = as_float(x[i]);
    sum += v * v;
  }
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_down_sync(0xffffffffu, sum, offset);
  __shared__ float warp_sums[kThreads / 32];
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x < 32) {
    sum = threadIdx.x < kThreads / 32 ? warp_sums[threadIdx.x] : 0.f;
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_down_sync(0xffffffffu, sum, offset);
    if (threadIdx.x == 0) atomicAdd(total, static_cast<double>(sum));
  }
}

__global__ void adamw_kernel(AdamWStep s, float* value, const float* grad, float* m, float* v,
                             __nv_bfloat16* compute, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = s.grad_scale != 1.f ? grad[i] * s.grad_scale : grad[i], w = value[i];
    float updated;
    if (s.plain_sgd) {
      updated = w - s.lr * (g + s.weight_decay * w);
    } else {
      const float mi = s.beta1 * m[i] + (1.f - s.beta1) * g;
      const float vi = s.beta2 * v[i] + (1.f - s.beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      const float m_hat = mi / s.bias1, v_hat = vi / s.bias2;
      updated = w - s.lr * (m_hat / (sqrtf(v_hat) + s.eps) + s.weight_decay * w);
    }
    value[i] = updated;
    if (compute != nullptr) compute[i] = __float2bfloat16_rn(updated);
  }
}

// Fewer blocks for reductions: each adds one atomic.
int reduction_blocks(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 1024 ? blocks : 1024);
}

}  // namespace

void scale_bf16(float alpha, uint16_t* x, int64_t n) {
  if (n == 0) return;
  scale_bf16_kernel<<<blocks_for(n), kThreads>>>(alpha, reinterpret_cast<__nv_bfloat16*>(x), n);
  CUDA_CHECK(cudaGetLastError());
}

void convert_f32_to_bf16(const float* src, uint16_t* dst, int64_t n) {
  if (n == 0) return;
  f32_to_bf16_kernel<<<blocks_for(n), kThreads>>>(src, reinterpret_cast<__nv_bfloat16*>(dst), n);
  CUDA_CHECK(cudaGetLastError());
}

void convert_bf16_to_f32(const uint16_t* src, float* dst, int64_t n) {
  if (n == 0) return;
  bf16_to_f32_kernel<<<blocks_for(n), kThreads>>>(reinterpret_cast<const __nv_bfloat16*>(src), dst, n);
  CUDA_CHECK(cudaGetLastError());
}

void sum_squares_f32(const float* x, int64_t n, double* total) {
  if (n == 0) return;
  sum_squares_kernel<<<reduction_blocks(n), kThreads>>>(x, n, total);
  CUDA_CHECK(cudaGetLastError());
}

void sum_squares_bf16(const uint16_t* x, int64_t n, double* total) {
  if (n == 0) return;
  sum_squares_kernel<<<reduction_blocks(n), kThreads>>>(reinterpret_cast<const __nv_bfloat16*>(x), n,
                                                        total);
  CUDA_CHECK(cudaGetLastError());
}

void adamw_f32(const AdamWStep& step, float* value, const float* grad, float* m, float* v,
               uint16_t* compute, int64_t n) {
  if (n == 0) return;
  adamw_kernel<<<blocks_for(n), kThreads>>>(step, value, grad, m, v,
                                            reinterpret_cast<__nv_bfloat16*>(compute), n);
  CUDA_CHECK(cudaGetLastError());
}

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
