// Launchers for the CUDA elementwise kernels (raw device pointers; host code
// reaches them through core/ops/elementwise.h).
#pragma once

#include <cstdint>

namespace linpar::cuda {

void axpy_f32(float alpha, const float* x, float* y, int64_t n);
void axpy_bf16(float alpha, const uint16_t* x, uint16_t* y, int64_t n);  // bf16 bits, f32 math
void scale_f32(float alpha, float* x, int64_t n);
void scale_bf16(float alpha, uint16_t* x, int64_t n);

// Element type conversions (bf16 from f32 rounds to nearest even).
void convert_f32_to_bf16(const float* src, uint16_t* dst, int64_t n);
void convert_bf16_to_f32(const uint16_t* src, float* dst, int64_t n);

// *total += Σ x² (f64 accumulator in device memory; block partial sums in f32).
void sum_squares_f32(const float* x, int64_t n, double* total);
void sum_squares_bf16(const uint16_t* x, int64_t n, double* total);

// One AdamW (or SGD) update of f32 values with f32 gradients and moments, as
// model/optimizer.h defines it; bias corrections and lr come in precomputed.
struct AdamWStep {
  float lr, beta1, beta2, eps, weight_decay, bias1, bias2;
  float grad_scale;  // multiplies each gradient as it is read (clipping)
  bool plain_sgd;
};
// `compute`, when not null, receives the updated values in bf16 (the
// mixed-precision copy, written in the same pass).
void adamw_f32(const AdamWStep& step, float* value, const float* grad, float* m, float* v,
               uint16_t* compute, int64_t n);

}  // namespace linpar::cuda
