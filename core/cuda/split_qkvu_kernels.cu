// The token mixer's q/k/v/u split on the GPU, SiLU and the head layout folded
// into one pass each way. Each CTA takes whole token rows (b, n) of qkvu,
// 4·Dl elements, its threads striding over the row in vectors of kV elements:
// reads (forward) or writes (backward) of the row are contiguous, and each
// head's d elements are contiguous on the other side. kV is a 16-byte vector
// (8 bf16, 4 f32) when d is a multiple of it and every pointer is 16-byte
// aligned, so a vector never straddles two heads; else one element.
#include <cuda_bf16.h>

#include <initializer_list>

#include "core/cuda/cuda_check.h"
#include "core/cuda/kernel_common.cuh"
#include "core/cuda/split_qkvu_kernels.h"

namespace linpar::cuda {

namespace {

constexpr int kMaxThreads = 256;

// Offsets of one token row: in qkvu (4·Dl wide), in u (Dl wide), and of
// (b, h = 0, n, j = 0) in the head layout.
struct RowOffsets {
  int64_t columns, u, heads;
};

__device__ inline RowOffsets row_offsets(const QkvuDims& s, int64_t row) {
  const int64_t width = s.n_heads * s.head_dim, b = row / s.length, n = row % s.length;
  return {row * 4 * width, row * width, (b * s.n_heads * s.length + n) * s.head_dim};
}

// The head tensor of block q (0), k (1) or v (2).
template <typename P>
__device__ inline P head_block(int block, P q, P k, P v) {
  return block == 0 ? q : (block == 1 ? k : v);
}

__device__ inline float silu(float x) { return x / (1.0f + expf(-x)); }
__device__ inline float silu_grad(float dy, float x) {
  const float s = 1.0f / (1.0f + expf(-x));
  return dy * s * (1.0f + x * (1.0f - s));
}

template <typename T, int kV>
__global__ void forward_kernel(QkvuDims s, const T* qkvu, T* q, T* k, T* v, T* u) {
  const int64_t rows = s.batch * s.length;
  const int width = static_cast<int>(s.n_heads * s.head_dim), d = static_cast<int>(s.head_dim);
  const int64_t head_stride = s.length * s.head_dim;  // from head h to h + 1
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const RowOffsets o = row_offsets(s, row);
    for (int e = static_cast<int>(threadIdx.x) * kV; e < 4 * width;
         e += static_cast<int>(blockDim.x) * kV) {
      const int block = e / width, c = e % width;  // column c of block q, k, v or u
      const T* src = qkvu + o.columns + e;
      if (block == 3) {
        copy_vec<kV>(u + o.u + c, src);
        continue;
      }
      T* dst = head_block(block, q, k, v) + o.heads + (c / d) * head_stride + c % d;
      if (block == 2) {
        copy_vec<kV>(dst, src);
        continue;
      }
      float x[kV];
      load_vec<kV>(src, x);
#pragma unroll
      for (int i = 0; i < kV; ++i) x[i] = silu(x[i]);
      store_vec<kV>(dst, x);
    }
  }
}

template <typename T, int kV>
__global__ void backward_kernel(QkvuDims s, const T* dq, const T* dk, const T* dv, const T* du,
                                const T* qkvu, T* d_qkvu) {
  const int64_t rows = s.batch * s.length;
  const int width = static_cast<int>(s.n_heads * s.head_dim), d = static_cast<int>(s.head_dim);
  const int64_t head_stride = s.length * s.head_dim;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const RowOffsets o = row_offsets(s, row);
    for (int e = static_cast<int>(threadIdx.x) * kV; e < 4 * width;
         e += static_cast<int>(blockDim.x) * kV) {
      const int block = e / width, c = e % width;
      T* dst = d_qkvu + o.columns + e;
      if (block == 3) {
        copy_vec<kV>(dst, du + o.u + c);
        continue;
      }
      const T* src = head_block(block, dq, dk, dv) + o.heads + (c / d) * head_stride + c % d;
      if (block == 2) {
        copy_vec<kV>(dst, src);
        continue;
      }
      float g[kV], x[kV];
      load_vec<kV>(src, g);
      load_vec<kV>(qkvu + o.columns + e, x);  // the raw q or k, before SiLU
#pragma unroll
      for (int i = 0; i < kV; ++i) g[i] = silu_grad(g[i], x[i]);
      store_vec<kV>(dst, g);
    }
  }
}

// Calls f.template operator()<T, kV>() with T the element type and kV the
// vector width the operands allow, on a launch shape for rows of 4·Dl.
template <typename F>
void launch(bool bf16, const QkvuDims& s, std::initializer_list<const void*> pointers, F&& f) {
  const int64_t rows = s.batch * s.length, width = 4 * s.n_heads * s.head_dim;
  if (rows == 0 || width == 0) return;
  bool aligned = true;
  for (const void* p : pointers) aligned = aligned && aligned16(p);
  auto go = [&]<typename T>() {
    const bool vectors = aligned && s.head_dim % kVec16<T> == 0;
    const int64_t per_thread = vectors ? kVec16<T> : 1;
    // Enough threads for one row, in whole warps, at most kMaxThreads.
    const int64_t wanted = (width / per_thread + 31) / 32 * 32;
    const int threads = static_cast<int>(wanted < kMaxThreads ? wanted : kMaxThreads);
    const int blocks = grid_blocks(rows, 1);
    if (vectors)
      f.template operator()<T, kVec16<T>>(blocks, threads);
    else
      f.template operator()<T, 1>(blocks, threads);
  };
  if (bf16)
    go.template operator()<__nv_bfloat16>();
  else
    go.template operator()<float>();
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void split_qkvu_forward(bool bf16, const QkvuDims& dims, const void* qkvu, void* q, void* k,
                        void* v, void* u) {
  launch(bf16, dims, {qkvu, q, k, v, u}, [&]<typename T, int kV>(int blocks, int threads) {
    forward_kernel<T, kV><<<blocks, threads, 0, cudaStreamLegacy>>>(
        dims, in<T>(qkvu), out<T>(q), out<T>(k), out<T>(v), out<T>(u));
  });
}

void split_qkvu_backward(bool bf16, const QkvuDims& dims, const void* dq, const void* dk,
                         const void* dv, const void* du, const void* qkvu, void* d_qkvu) {
  launch(bf16, dims, {dq, dk, dv, du, qkvu, d_qkvu},
         [&]<typename T, int kV>(int blocks, int threads) {
           backward_kernel<T, kV><<<blocks, threads, 0, cudaStreamLegacy>>>(
               dims, in<T>(dq), in<T>(dk), in<T>(dv), in<T>(du), in<T>(qkvu), out<T>(d_qkvu));
         });
}

}  // namespace linpar::cuda
