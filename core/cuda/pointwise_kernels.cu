// SiLU, products and SRMSNorm on the GPU, all memory-bound: each thread
// moves kV elements per access, a 16-byte vector (8 bf16, 4 f32) when every
// pointer is 16-byte aligned, else one element; arithmetic is f32.
// Elementwise kernels grid-stride over whole vectors and finish the n % kV
// tail one element at a time. Row kernels (the SRMSNorm phases) take one CTA
// per row, sized to the row (whole warps, at most kThreads), and reduce in a
// fixed order (each thread's vectors in turn, a warp shuffle tree, the warps
// in order), so a row's statistic is the same bits on every run; they use
// vectors when the row width is a multiple of one as well (every row starts
// aligned). The head-layout SRMSNorm kernels use vectors when the head dim is
// a multiple of one (a vector then stays inside one head).
#include <cuda_bf16.h>

#include <initializer_list>

#include "core/cuda/cuda_check.h"
#include "core/cuda/kernel_common.cuh"
#include "core/cuda/pointwise_kernels.h"

namespace linpar::cuda {

namespace {

constexpr int kThreads = 256;

__device__ inline float silu(float x) { return x / (1.0f + expf(-x)); }
__device__ inline float silu_grad(float dy, float x) {
  const float s = 1.0f / (1.0f + expf(-x));
  return dy * s * (1.0f + x * (1.0f - s));
}

template <typename T, int kV>
__global__ void silu_forward_kernel(const T* x, T* y, int64_t n) {
  for_each_vector<kV>(n, [&](int64_t i, auto width) {
    constexpr int w = decltype(width)::value;
    float v[w];
    load_vec<w>(x + i, v);
#pragma unroll
    for (int k = 0; k < w; ++k) v[k] = silu(v[k]);
    store_vec<w>(y + i, v);
  });
}

template <typename T, int kV>
__global__ void silu_backward_kernel(const T* dy, const T* x, T* dx, int64_t n) {
  for_each_vector<kV>(n, [&](int64_t i, auto width) {
    constexpr int w = decltype(width)::value;
    float g[w], v[w];
    load_vec<w>(dy + i, g);
    load_vec<w>(x + i, v);
#pragma unroll
    for (int k = 0; k < w; ++k) g[k] = silu_grad(g[k], v[k]);
    store_vec<w>(dx + i, g);
  });
}

template <typename T, int kV>
__global__ void mul_forward_kernel(const T* a, const T* b, T* y, int64_t n) {
  for_each_vector<kV>(n, [&](int64_t i, auto width) {
    constexpr int w = decltype(width)::value;
    float av[w], bv[w];
    load_vec<w>(a + i, av);
    load_vec<w>(b + i, bv);
#pragma unroll
    for (int k = 0; k < w; ++k) av[k] *= bv[k];
    store_vec<w>(y + i, av);
  });
}

// da = dy ⊙ b, db = dy ⊙ a; a null output skips its product and its read.
template <typename T, int kV>
__global__ void mul_backward_kernel(const T* dy, const T* a, const T* b, T* da, T* db, int64_t n) {
  for_each_vector<kV>(n, [&](int64_t i, auto width) {
    constexpr int w = decltype(width)::value;
    float g[w], other[w];
    load_vec<w>(dy + i, g);
    if (da != nullptr) {
      load_vec<w>(b + i, other);
#pragma unroll
      for (int k = 0; k < w; ++k) other[k] *= g[k];
      store_vec<w>(da + i, other);
    }
    if (db != nullptr) {
      load_vec<w>(a + i, other);
#pragma unroll
      for (int k = 0; k < w; ++k) other[k] *= g[k];
      store_vec<w>(db + i, other);
    }
  });
}

// Sum of f(v) over v in [0, count) by the CTA, in a fixed order; every
// thread gets the total. blockDim.x is a multiple of 32, at most kThreads.
template <typename F>
__device__ float row_reduce(int64_t count, F&& f) {
  __shared__ float partial[kThreads / 32];
  float acc = 0.0f;
  for (int64_t v = threadIdx.x; v < count; v += blockDim.x) acc += f(v);
  for (int offset = 16; offset > 0; offset /= 2) acc += __shfl_down_sync(0xffffffffu, acc, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  if (lane == 0) partial[warp] = acc;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < warps; ++w) total += partial[w];
  __syncthreads();
  return total;
}

// Σ a ⊙ b over the kV elements at p and q.
template <int kV, typename T>
__device__ inline float dot_vec(const T* p, const T* q) {
  float a[kV], b[kV];
  load_vec<kV>(p, a);
  load_vec<kV>(q, b);
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < kV; ++k) sum += a[k] * b[k];
  return sum;
}

template <typename T, int kV>
__global__ void row_sums_kernel(const T* x, float* sums, int64_t width) {
  const T* xr = x + blockIdx.x * width;
  const float total = row_reduce(width / kV, [&](int64_t v) {
    float e[kV];
    load_vec<kV>(xr + v * kV, e);
    float sum = 0.0f;
#pragma unroll
    for (int k = 0; k < kV; ++k) sum += e[k] * e[k];
    return sum;
  });
  if (threadIdx.x == 0) sums[blockIdx.x] = total;
}

template <typename T, int kV>
__global__ void apply_kernel(const T* x, const float* sums, float inv_full_width, float eps, T* y,
                             float* rstd, int64_t width) {
  const int64_t row = blockIdx.x;
  const float inv = rsqrtf(sums[row] * inv_full_width + eps);
  if (threadIdx.x == 0) rstd[row] = inv;
  const T* xr = x + row * width;
  T* yr = y + row * width;
  for (int64_t i = threadIdx.x * static_cast<int64_t>(kV); i < width;
       i += static_cast<int64_t>(blockDim.x) * kV) {
    float e[kV];
    load_vec<kV>(xr + i, e);
#pragma unroll
    for (int k = 0; k < kV; ++k) e[k] *= inv;
    store_vec<kV>(yr + i, e);
  }
}

template <typename T, int kV>
__global__ void row_dots_kernel(const T* dy, const T* y, float* dots, int64_t width) {
  const int64_t base = blockIdx.x * width;
  const float total = row_reduce(
      width / kV, [&](int64_t v) { return dot_vec<kV>(dy + base + v * kV, y + base + v * kV); });
  if (threadIdx.x == 0) dots[blockIdx.x] = total;
}

template <typename T, int kV>
__global__ void backward_apply_kernel(const T* dy, const T* y, const float* rstd, const float* dots,
                                      float inv_full_width, T* dx, bool accumulate, int64_t width) {
  const int64_t row = blockIdx.x, base = row * width;
  const float mean = dots[row] * inv_full_width, r = rstd[row];
  for (int64_t i = threadIdx.x * static_cast<int64_t>(kV); i < width;
       i += static_cast<int64_t>(blockDim.x) * kV) {
    float g[kV], yv[kV];
    load_vec<kV>(dy + base + i, g);
    load_vec<kV>(y + base + i, yv);
#pragma unroll
    for (int k = 0; k < kV; ++k) g[k] = r * (g[k] - yv[k] * mean);
    if (accumulate) {
      float old[kV];
      load_vec<kV>(dx + base + i, old);
#pragma unroll
      for (int k = 0; k < kV; ++k) g[k] += old[k];
    }
    store_vec<kV>(dx + base + i, g);
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

// Calls f.template operator()<T, kV>() with T the element type and kV a
// 16-byte vector when every pointer is 16-byte aligned (null ones count as
// aligned) and `group` (a row width, a head dim; 0 for none) is a multiple of
// one, else 1.
template <typename F>
void by_type_and_vector(bool bf16, int64_t group, std::initializer_list<const void*> pointers,
                        F&& f) {
  const bool aligned = aligned16(pointers);
  by_type(bf16, [&]<typename T>() {
    if (aligned && group % kVec16<T> == 0)
      f.template operator()<T, kVec16<T>>();
    else
      f.template operator()<T, 1>();
  });
}
template <typename F>
void by_type_and_vector(bool bf16, const HeadRows& l, std::initializer_list<const void*> pointers,
                        F&& f) {
  by_type_and_vector(bf16, l.head_dim, pointers, f);
}

// Threads for one CTA per row of `width` elements at kV per thread: enough
// for the row in whole warps, at most kThreads.
int row_threads(int64_t width, int kV) {
  const int64_t wanted = (width / kV + 31) / 32 * 32;
  return static_cast<int>(wanted < 32 ? 32 : (wanted < kThreads ? wanted : kThreads));
}

}  // namespace

void silu_forward(bool bf16, const void* x, void* y, int64_t n) {
  if (n == 0) return;
  by_type_and_vector(bf16, 0, {x, y}, [&]<typename T, int kV>() {
    silu_forward_kernel<T, kV>
        <<<vector_blocks(n, kV, kThreads), kThreads, 0, cudaStreamLegacy>>>(in<T>(x), out<T>(y), n);
  });
}
void silu_backward(bool bf16, const void* dy, const void* x, void* dx, int64_t n) {
  if (n == 0) return;
  by_type_and_vector(bf16, 0, {dy, x, dx}, [&]<typename T, int kV>() {
    silu_backward_kernel<T, kV><<<vector_blocks(n, kV, kThreads), kThreads, 0, cudaStreamLegacy>>>(
        in<T>(dy), in<T>(x), out<T>(dx), n);
  });
}
void mul_forward(bool bf16, const void* a, const void* b, void* y, int64_t n) {
  if (n == 0) return;
  by_type_and_vector(bf16, 0, {a, b, y}, [&]<typename T, int kV>() {
    mul_forward_kernel<T, kV><<<vector_blocks(n, kV, kThreads), kThreads, 0, cudaStreamLegacy>>>(
        in<T>(a), in<T>(b), out<T>(y), n);
  });
}
void mul_backward(bool bf16, const void* dy, const void* a, const void* b, void* da, void* db,
                  int64_t n) {
  if (n == 0) return;
  by_type_and_vector(bf16, 0, {dy, a, b, da, db}, [&]<typename T, int kV>() {
    mul_backward_kernel<T, kV><<<vector_blocks(n, kV, kThreads), kThreads, 0, cudaStreamLegacy>>>(
        in<T>(dy), in<T>(a), in<T>(b), out<T>(da), out<T>(db), n);
  });
}
void srmsnorm_row_sums(bool bf16, const void* x, float* sums, int64_t rows, int64_t width) {
  if (rows == 0) return;
  by_type_and_vector(bf16, width, {x}, [&]<typename T, int kV>() {
    row_sums_kernel<T, kV>
        <<<static_cast<unsigned>(rows), row_threads(width, kV), 0, cudaStreamLegacy>>>(in<T>(x),
                                                                                       sums, width);
  });
}
void srmsnorm_apply(bool bf16, const void* x, const float* sums, int64_t full_width, float eps,
                    void* y, float* rstd, int64_t rows, int64_t width) {
  if (rows == 0) return;
  by_type_and_vector(bf16, width, {x, y}, [&]<typename T, int kV>() {
    apply_kernel<T, kV>
        <<<static_cast<unsigned>(rows), row_threads(width, kV), 0, cudaStreamLegacy>>>(
            in<T>(x), sums, 1.0f / static_cast<float>(full_width), eps, out<T>(y), rstd, width);
  });
}
void srmsnorm_row_dots(bool bf16, const void* dy, const void* y, float* dots, int64_t rows,
                       int64_t width) {
  if (rows == 0) return;
  by_type_and_vector(bf16, width, {dy, y}, [&]<typename T, int kV>() {
    row_dots_kernel<T, kV>
        <<<static_cast<unsigned>(rows), row_threads(width, kV), 0, cudaStreamLegacy>>>(
            in<T>(dy), in<T>(y), dots, width);
  });
}
void srmsnorm_backward_apply(bool bf16, const void* dy, const void* y, const float* rstd,
                             const float* dots, int64_t full_width, void* dx, bool accumulate,
                             int64_t rows, int64_t width) {
  if (rows == 0) return;
  by_type_and_vector(bf16, width, {dy, y, dx}, [&]<typename T, int kV>() {
    backward_apply_kernel<T, kV>
        <<<static_cast<unsigned>(rows), row_threads(width, kV), 0, cudaStreamLegacy>>>(
            in<T>(dy), in<T>(y), rstd, dots, 1.0f / static_cast<float>(full_width), out<T>(dx),
            accumulate, width);
  });
}

void srmsnorm_row_sums_heads(bool bf16, const HeadRows& l, const void* x, float* sums) {
  const int64_t rows = l.batch * l.length;
  if (rows == 0) return;
  by_type_and_vector(bf16, l, {x}, [&]<typename T, int kV>() {
    row_sums_heads_kernel<T, kV>
        <<<static_cast<unsigned>(rows), row_threads(l.heads * l.head_dim, kV), 0,
           cudaStreamLegacy>>>(l, in<T>(x), sums);
  });
}
void srmsnorm_apply_heads(bool bf16, const HeadRows& l, const void* x, const float* sums,
                          int64_t full_width, float eps, void* y, float* rstd) {
  const int64_t rows = l.batch * l.length;
  if (rows == 0) return;
  by_type_and_vector(bf16, l, {x, y}, [&]<typename T, int kV>() {
    apply_heads_kernel<T, kV><<<static_cast<unsigned>(rows), row_threads(l.heads * l.head_dim, kV),
                                0, cudaStreamLegacy>>>(
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
        <<<static_cast<unsigned>(rows), row_threads(l.heads * l.head_dim, kV), 0,
           cudaStreamLegacy>>>(l, in<T>(dy), in<T>(y), rstd, dots,
                               1.0f / static_cast<float>(full_width), out<T>(dx));
  });
}

}  // namespace linpar::cuda
