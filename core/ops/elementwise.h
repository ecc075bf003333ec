// Elementwise updates used everywhere (residual adds, gradient accumulation),
// with a CPU reference and a CUDA kernel side by side, dispatched on the
// tensor's device.
#pragma once

#include "core/tensor.h"

namespace linpar {

// y += alpha · x  (same shape, dtype and device; f32/f64 on CPU, f32/bf16 on CUDA)
void axpy(double alpha, const Tensor& x, Tensor& y);
// x *= alpha
void scale(double alpha, Tensor& x);
// Σ x² over all elements, accumulated in double (gradient norms).
double sum_squares(const Tensor& x);

int64_t axpy_flops(int64_t n);

}  // namespace linpar
