// Small pieces every elementwise CUDA kernel file uses (.cu files only):
// bounded grids for grid-stride loops, f32 loads/stores of f32 or bf16
// elements, one at a time or as 16-byte vectors (kernels compute in f32
// whatever the storage type), a grid-stride loop over 16-byte vectors
// with an element-wise tail, and the host side's typed views of the void
// pointers the launchers take and its dispatch on the element type.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "core/cuda/cuda_check.h"

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

// 16-byte vectors: kVec16<T> elements of T (4 f32 or 8 bf16) move as one
// uint4, converted to and from f32. A kernel templated on a vector width kV
// calls load_vec / store_vec with kV == 1 (one element) or kV == kVec16<T>;
// the vector path needs p 16-byte aligned (aligned16).
template <typename T>
constexpr int kVec16 = 16 / static_cast<int>(sizeof(T));

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
inline bool aligned16(std::initializer_list<const void*> pointers) {
  for (const void* p : pointers)
    if (!aligned16(p)) return false;
  return true;
}

template <int kV, typename T>
__device__ inline void load_vec(const T* p, float* x) {
  if constexpr (kV == 1) {
    x[0] = ld(p, 0);
  } else if constexpr (sizeof(T) == 4) {
    static_assert(kV == 4, "16-byte vectors hold 4 f32");
    const float4 v = *reinterpret_cast<const float4*>(p);
    x[0] = v.x;
    x[1] = v.y;
    x[2] = v.z;
    x[3] = v.w;
  } else {
    static_assert(kV == 8, "16-byte vectors hold 8 bf16");
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(pairs[i]);
      x[2 * i] = f.x;
      x[2 * i + 1] = f.y;
    }
  }
}

template <int kV, typename T>
__device__ inline void store_vec(T* p, const float* x) {
  if constexpr (kV == 1) {
    st(p, 0, x[0]);
  } else if constexpr (sizeof(T) == 4) {
    static_assert(kV == 4, "16-byte vectors hold 4 f32");
    *reinterpret_cast<float4*>(p) = make_float4(x[0], x[1], x[2], x[3]);
  } else {
    static_assert(kV == 8, "16-byte vectors hold 8 bf16");
    uint4 v;
    __nv_bfloat162* pairs = reinterpret_cast<__nv_bfloat162*>(&v);
#pragma unroll
    for (int i = 0; i < 4; ++i) pairs[i] = __floats2bfloat162_rn(x[2 * i], x[2 * i + 1]);
    *reinterpret_cast<uint4*>(p) = v;
  }
}

// kV elements moved as they are (no conversion).
template <int kV, typename T>
__device__ inline void copy_vec(T* dst, const T* src) {
  if constexpr (kV == 1) {
    *dst = *src;
  } else {
    static_assert(kV * sizeof(T) == 16, "copy_vec moves one element or 16 bytes");
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
  }
}

// A grid-stride loop over n elements in kV-element vectors: body(i, width)
// runs with width kV on elements [i, i + kV) for every whole vector, then
// with width 1 on each of the n % kV tail elements (std::integral_constant,
// so body can pass width on as a template argument). With kV > 1 every
// pointer body touches at element i must be 16-byte aligned at i = 0.
template <int kV, typename Body>
__device__ inline void for_each_vector(int64_t n, Body&& body) {
  const int64_t thread = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x, vectors = n / kV;
  for (int64_t v = thread; v < vectors; v += stride)
    body(v * kV, std::integral_constant<int, kV>{});
  if constexpr (kV > 1) {
    const int64_t i = vectors * kV + thread;  // fewer than kV tail elements, one per thread
    if (i < n) body(i, std::integral_constant<int, 1>{});
  }
}

// Blocks for a for_each_vector launch over n elements at kV per thread.
inline int vector_blocks(int64_t n, int kV, int threads) {
  return grid_blocks((n + kV - 1) / kV, threads);
}

// A launcher's untyped operand as the element type T.
template <typename T>
const T* in(const void* p) {
  return static_cast<const T*>(p);
}
template <typename T>
T* out(void* p) {
  return static_cast<T*>(p);
}

// Calls f.template operator()<T>() with T the element type (bf16 or f32),
// then checks the launch.
template <typename F>
void by_type(bool bf16, F&& f) {
  if (bf16)
    f.template operator()<__nv_bfloat16>();
  else
    f.template operator()<float>();
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace linpar::cuda
