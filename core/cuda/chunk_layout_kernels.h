// Launcher for the CUDA chunk-layout permutation behind Ulysses' all-to-alls
// (raw device pointers; the CPU version is core/ops/chunk_layout.h, whose
// four functions this one launcher covers). Pure data movement of
// `element_bytes`-byte elements (2, 4 or 8).
#pragma once

#include <cstddef>
#include <cstdint>

namespace linpar::cuda {

// blocks [T, B, Hs, C, d]; x [B, T·Hs, C, d] when `heads_split` (block j holds
// heads [j·Hs, (j+1)·Hs)), else x [B, Hs, T·C, d] (block i holds tokens
// [i·C, (i+1)·C)). `to_blocks` copies x into blocks, else blocks into x.
struct ChunkBlocks {
  int64_t blocks, batch, heads, length, width;  // T, B, Hs, C, d
};
void permute_chunk_blocks(const ChunkBlocks& shape, bool heads_split, bool to_blocks,
                          size_t element_bytes, const void* from, void* to);

}  // namespace linpar::cuda
