// Launcher for the CUDA head-layout copies (raw device pointers; host code
// reaches them through core/ops/layout.h). Pure data movement; `bf16` selects
// 2-byte elements (else f32, 4 bytes).
#pragma once

#include <cstdint>

namespace linpar::cuda {

// columns: [batch, length, width], heads: [batch, n_heads, length, head_dim];
// heads[b, h, n, j] ↔ columns[b, n, column + h·head_dim + j]. `to_heads` copies
// columns into heads, else heads into columns (other columns untouched).
struct HeadLayout {
  int64_t batch, length, width, n_heads, head_dim, column;
};
void move_heads(bool bf16, const HeadLayout& layout, void* columns, void* heads, bool to_heads);

}  // namespace linpar::cuda
