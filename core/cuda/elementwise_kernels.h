// Launchers for the CUDA elementwise kernels (raw device pointers; host code
// reaches them through core/ops/elementwise.h).
#pragma once

#include <cstdint>

namespace linpar::cuda {

void axpy_f32(float alpha, const float* x, float* y, int64_t n);
void axpy_bf16(float alpha, const uint16_t* x, uint16_t* y, int64_t n);  // bf16 bits, f32 math
void scale_f32(float alpha, float* x, int64_t n);

}  // namespace linpar::cuda
