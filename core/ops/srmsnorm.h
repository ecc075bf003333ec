// SRMSNorm (simple RMS norm, no learned gain; TransNormerLLM §3.4).
#pragma once

#include "core/tensor.h"

namespace linpar {

// x: [rows, D] -> y: [rows, D], rstd: [rows];  y = x / sqrt(mean(x²) + eps)
void srmsnorm_forward(const Tensor& x, double eps, Tensor& y, Tensor& rstd);
// dx = rstd · (dy − y · mean(dy ⊙ y)), overwritten (or accumulated).
void srmsnorm_backward(const Tensor& dy, const Tensor& y, const Tensor& rstd, Tensor& dx,
                       bool accumulate = false);

int64_t srmsnorm_forward_flops(int64_t rows, int64_t width);
int64_t srmsnorm_backward_flops(int64_t rows, int64_t width);

}  // namespace linpar
