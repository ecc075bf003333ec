// Elementwise updates, conversions, sums of squares and the optimizer step
// on the GPU. axpy, scale and the conversions are memory-bound: each thread
// moves a 16-byte vector per access (4 f32 or 8 bf16; a conversion moves 8
// elements, one bf16 vector and two f32 ones) when every pointer is 16-byte
// aligned, else one element, and finishes the n % kV tail element-wise
// (for_each_vector); arithmetic is f32, bf16 rounds to nearest even.
#include <cuda_bf16.h>

#include "core/cuda/cuda_check.h"
#include "core/cuda/elementwise_kernels.h"
#include "core/cuda/kernel_common.cuh"

namespace linpar::cuda {

namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) { return grid_blocks(n, kThreads); }

// y += alpha · x
template <typename T, int kV>
__global__ void axpy_kernel(float alpha, const T* x, T* y, int64_t n) {
  for_each_vector<kV>(n, [&](int64_t i, auto width) {
    constexpr int w = decltype(width)::value;
    float xv[w], yv[w];
    load_vec<w>(x + i, xv);
    load_vec<w>(y + i, yv);
#pragma unroll
    for (int k = 0; k < w; ++k) yv[k] += alpha * xv[k];
    store_vec<w>(y + i, yv);
  });
}

template <typename T, int kV>
__global__ void scale_kernel(float alpha, T* x, int64_t n) {
  for_each_vector<kV>(n, [&](int64_t i, auto width) {
    constexpr int w = decltype(width)::value;
    float v[w];
    load_vec<w>(x + i, v);
#pragma unroll
    for (int k = 0; k < w; ++k) v[k] *= alpha;
    store_vec<w>(x + i, v);
  });
}

// dst = src, element type converted; kV is 8 (two f32 vectors, one bf16
// vector) or 1.
template <typename Src, typename Dst, int kV>
__global__ void convert_kernel(const Src* src, Dst* dst, int64_t n) {
  for_each_vector<kV>(n, [&](int64_t i, auto width) {
    constexpr int w = decltype(width)::value;
    float v[w];
    if constexpr (w == 1) {
      v[0] = ld(src + i, 0);
      st(dst + i, 0, v[0]);
    } else {
      static_assert(w == 8, "a conversion moves 8 elements per vector");
      if constexpr (sizeof(Src) == 4) {
        load_vec<4>(src + i, v);
        load_vec<4>(src + i + 4, v + 4);
        store_vec<8>(dst + i, v);
      } else {
        load_vec<8>(src + i, v);
        store_vec<4>(dst + i, v);
        store_vec<4>(dst + i + 4, v + 4);
      }
    }
  });
}

// Calls f.template operator()<kV>() with kV = vector (the 16-byte width the
// caller uses) when every pointer is 16-byte aligned, else 1.
template <int kVector, typename F>
void by_vector(std::initializer_list<const void*> pointers, F&& f) {
  if (aligned16(pointers))
    f.template operator()<kVector>();
  else
    f.template operator()<1>();
  CUDA_CHECK(cudaGetLastError());
}

const __nv_bfloat16* as_bf16(const uint16_t* p) {
  return reinterpret_cast<const __nv_bfloat16*>(p);
}
__nv_bfloat16* as_bf16(uint16_t* p) { return reinterpret_cast<__nv_bfloat16*>(p); }

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
    for (int offset = 16; offset > 0; offset /= 2)
      sum += __shfl_down_sync(0xffffffffu, sum, offset);
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

void sum_squares_f32(const float* x, int64_t n, double* total) {
  if (n == 0) return;
  sum_squares_kernel<<<reduction_blocks(n), kThreads>>>(x, n, total);
  CUDA_CHECK(cudaGetLastError());
}

void sum_squares_bf16(const uint16_t* x, int64_t n, double* total) {
  if (n == 0) return;
  sum_squares_kernel<<<reduction_blocks(n), kThreads>>>(reinterpret_cast<const __nv_bfloat16*>(x),
                                                        n, total);
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
  by_vector<kVec16<float>>({x, y}, [&]<int kV>() {
    axpy_kernel<float, kV><<<vector_blocks(n, kV, kThreads), kThreads>>>(alpha, x, y, n);
  });
}

void axpy_bf16(float alpha, const uint16_t* x, uint16_t* y, int64_t n) {
  if (n == 0) return;
  by_vector<kVec16<__nv_bfloat16>>({x, y}, [&]<int kV>() {
    axpy_kernel<__nv_bfloat16, kV>
        <<<vector_blocks(n, kV, kThreads), kThreads>>>(alpha, as_bf16(x), as_bf16(y), n);
  });
}

void scale_f32(float alpha, float* x, int64_t n) {
  if (n == 0) return;
  by_vector<kVec16<float>>({x}, [&]<int kV>() {
    scale_kernel<float, kV><<<vector_blocks(n, kV, kThreads), kThreads>>>(alpha, x, n);
  });
}

void scale_bf16(float alpha, uint16_t* x, int64_t n) {
  if (n == 0) return;
  by_vector<kVec16<__nv_bfloat16>>({x}, [&]<int kV>() {
    scale_kernel<__nv_bfloat16, kV>
        <<<vector_blocks(n, kV, kThreads), kThreads>>>(alpha, as_bf16(x), n);
  });
}

void convert_f32_to_bf16(const float* src, uint16_t* dst, int64_t n) {
  if (n == 0) return;
  by_vector<8>({src, dst}, [&]<int kV>() {
    convert_kernel<float, __nv_bfloat16, kV>
        <<<vector_blocks(n, kV, kThreads), kThreads>>>(src, as_bf16(dst), n);
  });
}

void convert_bf16_to_f32(const uint16_t* src, float* dst, int64_t n) {
  if (n == 0) return;
  by_vector<8>({src, dst}, [&]<int kV>() {
    convert_kernel<__nv_bfloat16, float, kV>
        <<<vector_blocks(n, kV, kThreads), kThreads>>>(as_bf16(src), dst, n);
  });
}

}  // namespace linpar::cuda
