// Launchers for the CUDA SiLU, product and SRMSNorm kernels (raw device
// pointers; host code reaches them through core/ops/activation.h and
// core/ops/srmsnorm.h). `bf16` selects bf16 tensors (else f32); arithmetic,
// and the per-row statistics (sums, rstd, dots), are f32.
#pragma once

#include <cstdint>

namespace linpar::cuda {

void silu_forward(bool bf16, const void* x, void* y, int64_t n);
void silu_backward(bool bf16, const void* dy, const void* x, void* dx, int64_t n);
void mul_forward(bool bf16, const void* a, const void* b, void* y, int64_t n);
// da = dy ⊙ b, db = dy ⊙ a (either may be null).
void mul_backward(bool bf16, const void* dy, const void* a, const void* b, void* da, void* db,
                  int64_t n);

void srmsnorm_row_sums(bool bf16, const void* x, float* sums, int64_t rows, int64_t width);
void srmsnorm_apply(bool bf16, const void* x, const float* sums, int64_t full_width, float eps,
                    void* y, float* rstd, int64_t rows, int64_t width);
void srmsnorm_row_dots(bool bf16, const void* dy, const void* y, float* dots, int64_t rows,
                       int64_t width);
void srmsnorm_backward_apply(bool bf16, const void* dy, const void* y, const float* rstd,
                             const float* dots, int64_t full_width, void* dx, bool accumulate,
                             int64_t rows, int64_t width);

// The same with x (row sums, apply) or dx (backward apply) in the head layout
// [batch, heads, length, head_dim], read as rows (b, n) of width
// heads·head_dim; y and dy stay plain rows.
struct HeadRows {
  int64_t batch, heads, length, head_dim;
};
void srmsnorm_row_sums_heads(bool bf16, const HeadRows& layout, const void* x, float* sums);
void srmsnorm_apply_heads(bool bf16, const HeadRows& layout, const void* x, const float* sums,
                          int64_t full_width, float eps, void* y, float* rstd);
void srmsnorm_backward_apply_heads(bool bf16, const HeadRows& layout, const void* dy, const void* y,
                                   const float* rstd, const float* dots, int64_t full_width,
                                   void* dx);

}  // namespace linpar::cuda
