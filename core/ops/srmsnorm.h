// SRMSNorm (simple RMS norm, no learned gain; TransNormerLLM §3.4).
#pragma once

#include "core/tensor.h"

namespace linpar {

// x: [rows, D] -> y: [rows, D], rstd: [rows];  y = x / sqrt(mean(x²) + eps)
void srmsnorm_forward(const Tensor& x, double eps, Tensor& y, Tensor& rstd);
// dx = rstd · (dy − y · mean(dy ⊙ y)), overwritten (or accumulated).
void srmsnorm_backward(const Tensor& dy, const Tensor& y, const Tensor& rstd, Tensor& dx,
                       bool accumulate = false);

// The same in two phases, for a row spread over ranks (tensor parallelism):
// per-rank partial sums are summed over the group between the phases, and
// full_width is the whole row's width D.
void srmsnorm_row_sums(const Tensor& x, Tensor& sums);  // Σ x² per row
void srmsnorm_apply(const Tensor& x, const Tensor& sums, int64_t full_width, double eps, Tensor& y,
                    Tensor& rstd);
void srmsnorm_row_dots(const Tensor& dy, const Tensor& y, Tensor& dots);  // Σ dy ⊙ y per row
void srmsnorm_backward_apply(const Tensor& dy, const Tensor& y, const Tensor& rstd,
                             const Tensor& dots, int64_t full_width, Tensor& dx,
                             bool accumulate = false);

// The same phases with the attention's head layout [B, H, N, d] on one side,
// read or written as rows (b, n) of width H·d (the heads side by side, as
// heads_to_columns lays them out): the layout change rides along a pass that
// touches every element anyway, and the columns copy is never formed. Each
// equals heads_to_columns / heads_from_columns (core/ops/layout.h) composed
// with its plain version above. x, dx: [B, H, N, d]; y, dy: [B, N, H·d].
void srmsnorm_row_sums_heads(const Tensor& x, Tensor& sums);
void srmsnorm_apply_heads(const Tensor& x, const Tensor& sums, int64_t full_width, double eps,
                          Tensor& y, Tensor& rstd);
void srmsnorm_backward_apply_heads(const Tensor& dy, const Tensor& y, const Tensor& rstd,
                                   const Tensor& dots, int64_t full_width, Tensor& dx);

int64_t srmsnorm_forward_flops(int64_t rows, int64_t width);
int64_t srmsnorm_backward_flops(int64_t rows, int64_t width);

}  // namespace linpar
