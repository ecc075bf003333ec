// The chunk-layout permutation on the GPU: the C·d elements of one
// (block, batch, head) are contiguous on both sides, so the grid is (run,
// CTAs along the run): consecutive threads copy consecutive elements. Rows
// of a multiple of 16 bytes (d = 64 in bf16: 128) are copied 16 bytes per
// thread: 2-byte copies reached a fifth of the copy rate (Ulysses' 384
// permutations took 6.2 ms of a 48 ms tnl-385m step on an H200).
#include <cstdint>

#include "core/cuda/chunk_layout_kernels.h"
#include "core/cuda/cuda_check.h"

namespace linpar::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kPerThread = 4;  // elements per thread per run stretch

template <typename E>
__global__ void permute_kernel(ChunkBlocks s, bool heads_split, bool to_blocks, const E* from,
                               E* to) {
  const int64_t run_index = blockIdx.x;  // (t·B + b)·Hs + h
  const int64_t h = run_index % s.heads, b = (run_index / s.heads) % s.batch,
                t = run_index / (s.heads * s.batch);
  const int64_t run = s.length * s.width;
  const int64_t x_run =
      heads_split ? (b * s.blocks + t) * s.heads + h : (b * s.heads + h) * s.blocks + t;
  const int64_t block_at = run_index * run, x_at = x_run * run;
  const E* src = from + (to_blocks ? x_at : block_at);
  E* dst = to + (to_blocks ? block_at : x_at);
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x; i < run;
       i += static_cast<int64_t>(gridDim.y) * kThreads) {
    dst[i] = src[i];
  }
}

template <typename E>
void launch(const ChunkBlocks& s, bool heads_split, bool to_blocks, const void* from, void* to) {
  const int64_t run = s.length * s.width, stretch = static_cast<int64_t>(kThreads) * kPerThread;
  const int64_t along = (run + stretch - 1) / stretch;
  const dim3 grid(static_cast<unsigned>(s.blocks * s.batch * s.heads),
                  static_cast<unsigned>(along < 65535 ? along : 65535));
  permute_kernel<E><<<grid, kThreads, 0, cudaStreamLegacy>>>(
      s, heads_split, to_blocks, static_cast<const E*>(from), static_cast<E*>(to));
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void permute_chunk_blocks(const ChunkBlocks& s, bool heads_split, bool to_blocks,
                          size_t element_bytes, const void* from, void* to) {
  if (s.blocks * s.batch * s.heads * s.length * s.width == 0) return;
  const int64_t row_bytes = s.width * static_cast<int64_t>(element_bytes);
  const bool aligned = reinterpret_cast<uintptr_t>(from) % 16 == 0 && reinterpret_cast<uintptr_t>(to) % 16 == 0;
  if (row_bytes % 16 == 0 && aligned) {
    // The same permutation of rows of row_bytes / 16 16-byte words.
    ChunkBlocks words = s;
    words.width = row_bytes / 16;
    launch<uint4>(words, heads_split, to_blocks, from, to);
    return;
  }
  switch (element_bytes) {
    case 2:
      launch<uint16_t>(s, heads_split, to_blocks, from, to);
      break;
    case 4:
      launch<uint32_t>(s, heads_split, to_blocks, from, to);
      break;
    case 8:
      launch<uint64_t>(s, heads_split, to_blocks, from, to);
      break;
    default:
      internal_error(__FILE__, __LINE__, "permute_chunk_blocks: element size not 2, 4 or 8");
  }
}

}  // namespace linpar::cuda
