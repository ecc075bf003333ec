// Elementwise updates used everywhere (residual adds, gradient accumulation),
// with a CPU reference and a CUDA kernel side by side, dispatched on the
// tensor's device.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace linpar {

// y += alpha · x  (same shape, dtype and device; f32/f64 on CPU, f32/bf16 on CUDA)
void axpy(double alpha, const Tensor& x, Tensor& y);
// x *= alpha
void scale(double alpha, Tensor& x);
// Σ x² over all elements, accumulated in double (gradient norms).
double sum_squares(const Tensor& x);
// The same over several tensors; CUDA tensors add into one device total read
// back once (a gradient norm over a hundred parameters costs one round trip).
double sum_squares(const std::vector<const Tensor*>& tensors);
// dst = src converted element by element (same shape and device; on CUDA
// f32 ↔ bf16, the mixed-precision weight copies).
void convert(const Tensor& src, Tensor& dst);

int64_t axpy_flops(int64_t n);

}  // namespace linpar
