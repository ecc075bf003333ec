// Head-layout copies on the GPU: each warp copies whole head rows (one
// (b, h, n) at a time, head_dim contiguous elements on both sides), warps
// striding over the batch · heads · length rows. Elements move as raw 2- or
// 4-byte words: no conversion touches them.
#include <cstdint>

#include "core/cuda/cuda_check.h"
#include "core/cuda/layout_kernels.h"

namespace linpar::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

template <typename Word>
__global__ void move_heads_kernel(HeadLayout l, Word* columns, Word* heads, bool to_heads) {
  const int64_t head_rows = l.batch * l.n_heads * l.length;
  const int lane = threadIdx.x % 32;
  for (int64_t row = blockIdx.x * static_cast<int64_t>(kWarps) + threadIdx.x / 32; row < head_rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    const int64_t n = row % l.length, bh = row / l.length;
    const int64_t h = bh % l.n_heads, b = bh / l.n_heads;
    Word* c = columns + (b * l.length + n) * l.width + l.column + h * l.head_dim;
    Word* hp = heads + row * l.head_dim;
    if (to_heads) {
      for (int64_t j = lane; j < l.head_dim; j += 32) hp[j] = c[j];
    } else {
      for (int64_t j = lane; j < l.head_dim; j += 32) c[j] = hp[j];
    }
  }
}

}  // namespace

void move_heads(bool bf16, const HeadLayout& layout, void* columns, void* heads, bool to_heads) {
  const int64_t head_rows = layout.batch * layout.n_heads * layout.length;
  if (head_rows == 0 || layout.head_dim == 0) return;
  const int64_t wanted = (head_rows + kWarps - 1) / kWarps;
  const int blocks = static_cast<int>(wanted < 65535 * 16 ? wanted : 65535 * 16);
  if (bf16) {
    move_heads_kernel<<<blocks, kThreads, 0, cudaStreamLegacy>>>(
        layout, static_cast<uint16_t*>(columns), static_cast<uint16_t*>(heads), to_heads);
  } else {
    move_heads_kernel<<<blocks, kThreads, 0, cudaStreamLegacy>>>(
        layout, static_cast<uint32_t*>(columns), static_cast<uint32_t*>(heads), to_heads);
  }
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace linpar::cuda
