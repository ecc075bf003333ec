// LRPE on the GPU. Forward: a grid-stride loop over x's elements. Backward:
// one CTA per (batch·head, tile of kTileRows positions), 32 × kRowGroups
// threads: lanes over the head's channels, row groups over the tile's
// positions; each CTA writes dx and one partial dθ per channel (its row
// groups' sums added in order), and a second kernel adds a channel's partials
// in tile order to d_theta. The angle θ·p is one f32 product of f32 θ and
// the exact f32 position (__fmul_rn: never fused into the range reduction),
// bit-equal to the CPU's f32 path; sincosf is the full-range (not fast-math)
// one, so large angles keep their f32 accuracy.
#include <cuda_bf16.h>

#include "core/cuda/cuda_check.h"
#include "core/cuda/kernel_common.cuh"
#include "core/cuda/lrpe_kernels.h"

namespace linpar::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kRowGroups = 8;      // threadIdx.y
constexpr int64_t kTileRows = 64;  // positions per backward CTA

int blocks_for(int64_t n) { return grid_blocks(n, kThreads); }


__device__ inline float position(const LrpeDims& d, int64_t n) {
  return static_cast<float>(d.position_offset + n);
}

template <typename T>
__global__ void forward_kernel(LrpeDims d, const T* x, const T* theta, T* y) {
  const int64_t numel = d.batch * d.heads * d.length * d.head_dim;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = i % d.head_dim, row = i / d.head_dim;  // row = (b·H + h)·N + n
    const int64_t n = row % d.length, h = (row / d.length) % d.heads;
    const float angle = __fmul_rn(ld(theta, h * d.head_dim + j), position(d, n));
    float s, c;
    sincosf(angle, &s, &c);
    const float v = ld(x, i);
    st(y, row * 2 * d.head_dim + j, v * c);
    st(y, row * 2 * d.head_dim + d.head_dim + j, v * s);
  }
}

int64_t tiles_of(const LrpeDims& d) { return (d.length + kTileRows - 1) / kTileRows; }

// partials: [batch·heads, tiles, head_dim]
template <typename T>
__global__ void backward_kernel(LrpeDims d, int64_t tiles, const T* dy, const T* x, const T* theta,
                                T* dx, float* partials) {
  __shared__ float group_sums[kRowGroups][32];
  const int64_t bh = blockIdx.x / tiles, tile = blockIdx.x % tiles, h = bh % d.heads;
  const int64_t n_end = min(d.length, (tile + 1) * kTileRows), D = d.head_dim;
  for (int64_t j0 = 0; j0 < D; j0 += 32) {
    const int64_t j = j0 + threadIdx.x;
    float sum = 0.0f;
    if (j < D) {
      const float th = ld(theta, h * D + j);
      for (int64_t n = tile * kTileRows + threadIdx.y; n < n_end; n += kRowGroups) {
        const float p = position(d, n);
        float s, c;
        sincosf(__fmul_rn(th, p), &s, &c);
        const int64_t row = bh * d.length + n;
        const float g_cos = ld(dy, row * 2 * D + j), g_sin = ld(dy, row * 2 * D + D + j);
        st(dx, row * D + j, g_cos * c + g_sin * s);
        sum += p * ld(x, row * D + j) * (g_sin * c - g_cos * s);
      }
    }
    group_sums[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && j < D) {
      float total = 0.0f;
      for (int g = 0; g < kRowGroups; ++g) total += group_sums[g][threadIdx.x];
      partials[blockIdx.x * D + j] = total;
    }
    __syncthreads();
  }
}

// d_theta[h·D + j] += Σ over (b, tile) of partials[(b·H + h)·tiles + tile, j]
template <typename G>
__global__ void reduce_partials_kernel(LrpeDims d, int64_t tiles, const float* partials,
                                       G* d_theta) {
  const int64_t channels = d.heads * d.head_dim;
  for (int64_t ch = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; ch < channels;
       ch += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t h = ch / d.head_dim, j = ch % d.head_dim;
    float total = 0.0f;
    for (int64_t b = 0; b < d.batch; ++b) {
      const float* p = partials + (b * d.heads + h) * tiles * d.head_dim + j;
      for (int64_t t = 0; t < tiles; ++t) total += p[t * d.head_dim];
    }
    st(d_theta, ch, ld(d_theta, ch) + total);
  }
}

}  // namespace

void lrpe_forward(bool bf16, const LrpeDims& d, const void* x, const void* theta, void* y) {
  const int64_t numel = d.batch * d.heads * d.length * d.head_dim;
  if (numel == 0) return;
  if (bf16) {
    forward_kernel<<<blocks_for(numel), kThreads, 0, cudaStreamLegacy>>>(
        d, static_cast<const __nv_bfloat16*>(x), static_cast<const __nv_bfloat16*>(theta),
        static_cast<__nv_bfloat16*>(y));
  } else {
    forward_kernel<<<blocks_for(numel), kThreads, 0, cudaStreamLegacy>>>(
        d, static_cast<const float*>(x), static_cast<const float*>(theta), static_cast<float*>(y));
  }
  CUDA_CHECK(cudaGetLastError());
}

int64_t lrpe_backward_partials(const LrpeDims& d) {
  return d.batch * d.heads * tiles_of(d) * d.head_dim;
}

void lrpe_backward(bool bf16, bool d_theta_bf16, const LrpeDims& d, const void* dy, const void* x,
                   const void* theta, void* dx, void* d_theta, float* partials) {
  if (d.batch * d.heads * d.length * d.head_dim == 0) return;
  const int64_t tiles = tiles_of(d);
  const dim3 block(32, kRowGroups);
  const int64_t blocks = d.batch * d.heads * tiles;
  if (blocks > 0x7fffffff) internal_error(__FILE__, __LINE__, "lrpe_backward: too many tiles");
  if (bf16) {
    backward_kernel<<<static_cast<unsigned>(blocks), block, 0, cudaStreamLegacy>>>(
        d, tiles, static_cast<const __nv_bfloat16*>(dy), static_cast<const __nv_bfloat16*>(x),
        static_cast<const __nv_bfloat16*>(theta), static_cast<__nv_bfloat16*>(dx), partials);
  } else {
    backward_kernel<<<static_cast<unsigned>(blocks), block, 0, cudaStreamLegacy>>>(
        d, tiles, static_cast<const float*>(dy), static_cast<const float*>(x),
        static_cast<const float*>(theta), static_cast<float*>(dx), partials);
  }
  CUDA_CHECK(cudaGetLastError());
  const int reduce_blocks = blocks_for(d.heads * d.head_dim);
  if (d_theta_bf16) {
    reduce_partials_kernel<<<reduce_blocks, kThreads, 0, cudaStreamLegacy>>>(
        d, tiles, partials, static_cast<__nv_bfloat16*>(d_theta));
  } else {
    reduce_partials_kernel<<<reduce_blocks, kThreads, 0, cudaStreamLegacy>>>(
        d, tiles, partials, static_cast<float*>(d_theta));
  }
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace linpar::cuda
