// SiLU, products and SRMSNorm on the GPU: grid-stride elementwise kernels and
// one CTA per row for the row statistics (a block reduction in f32). The
// head-layout SRMSNorm kernels move kV elements per thread: a 16-byte vector
// when the head dim is a multiple of one and the pointers are aligned (a
// vector then stays inside one head), else one element.
#include <cuda_bf16.h>

#include <initializer_list>

#include "core/cuda/cuda_check.h"
#include "core/cuda/kernel_common.cuh"
#include "core/cuda/pointwise_kernels.h"

namespace linpar::cuda {

namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) { return grid_blocks(n, kThreads); }


#define GRID_STRIDE(i, n)                                                          \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <typename T>
__global__ void silu_forward_kernel(const T* x, T* y, int64_t n) {
  GRID_STRIDE(i, n) {
    const float v = ld(x, i);
    st(y, i, v / (1.0f + expf(-v)));
  }
}

template <typename T>
__global__ void silu_backward_kernel(const T* dy, const T* x, T* dx, int64_t n) {
  GRID_STRIDE(i, n) {
    const float v = ld(x, i), s = 1.0f / (1.0f + expf(-v));
    st(dx, i, ld(dy, i) * s * (1.0f + v * (1.0f - s)));
  }
}

template <typename T>
__global__ void mul_forward_kernel(const T* a, const T* b, T* y, int64_t n) {
  GRID_STRIDE(i, n) { st(y, i, ld(a, i) * ld(b, i)); }
}

template <typename T>
__global__ void mul_backward_kernel(const T* dy, const T* a, const T* b, T* da, T* db, int64_t n) {
  GRID_STRIDE(i, n) {
    const float g = ld(dy, i);
    if (da != nullptr) st(da, i, g * ld(b, i));
    if (db != nullptr) st(db, i, g * ld(a, i));
  }
}

// Sum of f(i) over one row by the CTA; every thread gets the total.
template <typename F>
__device__ float row_reduce(int64_t width, F&& f) {
  __shared__ float partial[kThreads / 32];
  float acc = 0.0f;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) acc += f(i);
  for (int offset = 16; offset > 0; offset /= 2) acc += __shfl_down_sync(0xffffffffu, acc, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) partial[warp] = acc;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) total += partial[w];
  __syncthreads();
  return total;
}

template <typename T>
__global__ void row_sums_kernel(const T* x, float* sums, int64_t width) {
  const int64_t row = blockIdx.x;
  const T* xr = x + row * width;
  const float total = row_reduce(width, [&](int64_t i) { const float v = ld(xr, i); return v * v; });
  if (threadIdx.x == 0) sums[row] = total;
}

template <typename T>
__global__ void apply_kernel(const T* x, const float* sums, float inv_full_width, float eps, T* y,
                             float* rstd, int64_t width) {
  const int64_t row = blockIdx.x;
  const float inv = rsqrtf(sums[row] * inv_full_width + eps);
  if (threadIdx.x == 0) rstd[row] = inv;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) st(y, row * width + i, ld(x, row * width + i) * inv);
}

template <typename T>
__global__ void row_dots_kernel(const T* dy, const T* y, float* dots, int64_t width) {
  const int64_t row = blockIdx.x;
  const float total = row_reduce(width, [&](int64_t i) { return ld(dy, row * width + i) * ld(y, row * width + i); });
  if (threadIdx.x == 0) dots[row] = total;
}

template <typename T>
__global__ void backward_apply_kernel(const T* dy, const T* y, const float* rstd, const float* dots,
                                      float inv_full_width, T* dx, bool accumulate, int64_t width) {
  const int64_t row = blockIdx.x;
  const float mean = dots[row] * inv_full_width, r = rstd[row];
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    const int64_t k = row * width + i;
    const float g = r * (ld(dy, k) - ld(y, k) * mean);
    st(dx, k, accumulate ? ld(dx, k) + g : g);
  }
}

// Row (b, n) of the head layout [B, H, N, d]: where its element 0 lives, and
// the offset of element i = h·d + j from there.
__device__ inline int64_t head_row_base(const HeadRows& l, int64_t row) {
  const int64_t b = row / l.length, n = row % l.length;
  return (b * l.heads * l.length + n) * l.head_dim;
}
__device__ inline int64_t head_offset(const HeadRows& l, int i) {
  const int d = static_cast<int>(l.head_dim);
  return (i / d) * l.length * l.head_dim + i % d;
}

template <typename T, int kV>
__global__ void row_sums_heads_kernel(HeadRows l, const T* x, float* sums) {
  const int64_t row = blockIdx.x;
  const T* xr = x + head_row_base(l, row);
  const float total = row_reduce(l.heads * l.head_dim / kV, [&](int64_t v) {
    float e[kV];
    load_vec<kV>(xr + head_offset(l, static_cast<int>(v) * kV), e);
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < kV; ++i) sum += e[i] * e[i];
    return sum;
  });
  if (threadIdx.x == 0) sums[row] = total;
}

template <typename T, int kV>
__global__ void apply_heads_kernel(HeadRows l, const T* x, const float* sums, float inv_full_width,
                                   float eps, T* y, float* rstd) {
  const int64_t row = blockIdx.x, width = l.heads * l.head_dim;
  const float inv = rsqrtf(sums[row] * inv_full_width + eps);
  if (threadIdx.x == 0) rstd[row] = inv;
  const T* xr = x + head_row_base(l, row);
  for (int i = static_cast<int>(threadIdx.x) * kV; i < width;
       i += static_cast<int>(blockDim.x) * kV) {
    float e[kV];
    load_vec<kV>(xr + head_offset(l, i), e);
#pragma unroll
    for (int k = 0; k < kV; ++k) e[k] *= inv;
    store_vec<kV>(y + row * width + i, e);
  }
}

template <typename T, int kV>
__global__ void backward_apply_heads_kernel(HeadRows l, const T* dy, const T* y, const float* rstd,
                                            const float* dots, float inv_full_width, T* dx) {
  const int64_t row = blockIdx.x, width = l.heads * l.head_dim;
  const float mean = dots[row] * inv_full_width, r = rstd[row];
  T* dxr = dx + head_row_base(l, row);
  for (int i = static_cast<int>(threadIdx.x) * kV; i < width;
       i += static_cast<int>(blockDim.x) * kV) {
    float g[kV], yv[kV];
    load_vec<kV>(dy + row * width + i, g);
    load_vec<kV>(y + row * width + i, yv);
#pragma unroll
    for (int k = 0; k < kV; ++k) g[k] = r * (g[k] - yv[k] * mean);
    store_vec<kV>(dxr + head_offset(l, i), g);
  }
}

template <typename T>
const T* in(const void* p) { return static_cast<const T*>(p); }
template <typename T>
T* out(void* p) { return static_cast<T*>(p); }

// Calls f.template operator()<T>() with T the element type.
template <typename F>
void by_type(bool bf16, F&& f) {
  if (bf16) f.template operator()<__nv_bfloat16>();
  else f.template operator()<float>();
  CUDA_CHECK(cudaGetLastError());
}

// Calls f.template operator()<T, kV>() with T the element type and kV the
// widest vector the head layout and every pointer allow.
template <typename F>
void by_type_and_vector(bool bf16, const HeadRows& l, std::initializer_list<const void*> pointers,
                        F&& f) {
  bool aligned = true;
  for (const void* p : pointers) aligned = aligned && aligned16(p);
  by_type(bf16, [&]<typename T>() {
    if (aligned && l.head_dim % kVec16<T> == 0)
      f.template operator()<T, kVec16<T>>();
    else
      f.template operator()<T, 1>();
  });
}

}  // namespace

void silu_forward(bool bf16, const void* x, void* y, int64_t n) {
  if (n == 0) return;
  by_type(bf16, [&]<typename T>() { silu_forward_kernel<T><<<blocks_for(n), kThreads, 0, cudaStreamLegacy>>>(in<T>(x), out<T>(y), n); });
}
void silu_backward(bool bf16, const void* dy, const void* x, void* dx, int64_t n) {
  if (n == 0) return;
  by_type(bf16, [&]<typename T>() {
    silu_backward_kernel<T><<<blocks_for(n), kThreads, 0, cudaStreamLegacy>>>(in<T>(dy), in<T>(x), out<T>(dx), n);
  });
}
void mul_forward(bool bf16, const void* a, const void* b, void* y, int64_t n) {
  if (n == 0) return;
  by_type(bf16, [&]<typename T>() {
    mul_forward_kernel<T><<<blocks_for(n), kThreads, 0, cudaStreamLegacy>>>(in<T>(a), in<T>(b), out<T>(y), n);
  });
}
void mul_backward(bool bf16, const void* dy, const void* a, const void* b, void* da, void* db, int64_t n) {
  if (n == 0) return;
  by_type(bf16, [&]<typename T>() {
    mul_backward_kernel<T><<<blocks_for(n), kThreads, 0, cudaStreamLegacy>>>(in<T>(dy), in<T>(a), in<T>(b), out<T>(da), out<T>(db), n);
  });
}
void srmsnorm_row_sums(bool bf16, const void* x, float* sums, int64_t rows, int64_t width) {
  if (rows == 0) return;
  by_type(bf16, [&]<typename T>() {
    row_sums_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, cudaStreamLegacy>>>(in<T>(x), sums, width);
  });
}
void srmsnorm_apply(bool bf16, const void* x, const float* sums, int64_t full_width, float eps,
                    void* y, float* rstd, int64_t rows, int64_t width) {
  if (rows == 0) return;
  by_type(bf16, [&]<typename T>() {
    apply_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, cudaStreamLegacy>>>(
        in<T>(x), sums, 1.0f / static_cast<float>(full_width), eps, out<T>(y), rstd, width);
  });
}
void srmsnorm_row_dots(bool bf16, const void* dy, const void* y, float* dots, int64_t rows, int64_t width) {
  if (rows == 0) return;
  by_type(bf16, [&]<typename T>() {
    row_dots_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, cudaStreamLegacy>>>(in<T>(dy), in<T>(y), dots, width);
  });
}
void srmsnorm_backward_apply(bool bf16, const void* dy, const void* y, const float* rstd,
                             const float* dots, int64_t full_width, void* dx, bool accumulate,
                             int64_t rows, int64_t width) {
  if (rows == 0) return;
  by_type(bf16, [&]<typename T>() {
    backward_apply_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, cudaStreamLegacy>>>(
        in<T>(dy), in<T>(y), rstd, dots, 1.0f / static_cast<float>(full_width), out<T>(dx), accumulate, width);
  });
}

void srmsnorm_row_sums_heads(bool bf16, const HeadRows& l, const void* x, float* sums) {
  const int64_t rows = l.batch * l.length;
  if (rows == 0) return;
  by_type_and_vector(bf16, l, {x}, [&]<typename T, int kV>() {
    row_sums_heads_kernel<T, kV>
        <<<static_cast<unsigned>(rows), kThreads, 0, cudaStreamLegacy>>>(l, in<T>(x), sums);
  });
}
void srmsnorm_apply_heads(bool bf16, const HeadRows& l, const void* x, const float* sums,
                          int64_t full_width, float eps, void* y, float* rstd) {
  const int64_t rows = l.batch * l.length;
  if (rows == 0) return;
  by_type_and_vector(bf16, l, {x, y}, [&]<typename T, int kV>() {
    apply_heads_kernel<T, kV><<<static_cast<unsigned>(rows), kThreads, 0, cudaStreamLegacy>>>(
        l, in<T>(x), sums, 1.0f / static_cast<float>(full_width), eps, out<T>(y), rstd);
  });
}
void srmsnorm_backward_apply_heads(bool bf16, const HeadRows& l, const void* dy, const void* y,
                                   const float* rstd, const float* dots, int64_t full_width,
                                   void* dx) {
  const int64_t rows = l.batch * l.length;
  if (rows == 0) return;
  by_type_and_vector(bf16, l, {dy, y, dx}, [&]<typename T, int kV>() {
    backward_apply_heads_kernel<T, kV>
        <<<static_cast<unsigned>(rows), kThreads, 0, cudaStreamLegacy>>>(
            l, in<T>(dy), in<T>(y), rstd, dots, 1.0f / static_cast<float>(full_width), out<T>(dx));
  });
}

}  // namespace linpar::cuda
