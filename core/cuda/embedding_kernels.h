// Launchers for the CUDA embedding kernels (raw device pointers; host code
// reaches them through core/ops/embedding.h). Arithmetic is f32.
#pragma once

#include <cstdint>
#include <optional>

namespace linpar::cuda {

// tokens [rows] index a table [table_rows, width] holding vocabulary rows
// [vocab_offset, vocab_offset + table_rows) of a vocabulary of vocab_size.
struct EmbeddingDims {
  int64_t rows, width, table_rows, vocab_offset, vocab_size;
};

// y[r] = scale · table[tokens[r] − vocab_offset], 0 where another rank holds
// the row; `bf16` selects a bf16 table and y (else f32). `scratch` is 8 bytes
// of device memory. Returns the first token (in row order) outside
// [0, vocab_size), if any (one small copy back after the kernel).
std::optional<int32_t> embedding_forward(bool bf16, const EmbeddingDims& d, const int32_t* tokens,
                                         const void* table, float scale, void* y, void* scratch);

// d_table[tokens[r] − vocab_offset] += scale · dy[r] for the rows the table
// holds, with f32 atomicAdd. dy is bf16 or f32 (`dy_bf16`); d_table is f32, or
// bf16 (`d_table_bf16`, only with a bf16 dy), in which case the sums gather in
// `accumulator` (f32 [table_rows, width] device memory, else unused) and are
// added to d_table with one rounding per element.
void embedding_backward(bool dy_bf16, bool d_table_bf16, const EmbeddingDims& d, const void* dy,
                        const int32_t* tokens, float scale, void* d_table, float* accumulator);

}  // namespace linpar::cuda
