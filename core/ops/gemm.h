// Matrix products through BLAS (OpenBLAS), row-major, with FLOP counting.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace linpar {

// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C; 2·M·N·K FLOPs.
// op(X) = X or Xᵀ; leading dimensions are row strides of the stored matrices.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// Linear layer without bias, PyTorch's weight layout (so released weights load
// unchanged): x: [rows, in], w: [out, in] -> y: [rows, out];  y = x·Wᵀ
void linear_forward(const Tensor& x, const Tensor& w, Tensor& y);
// dx = dy·W (overwritten, or accumulated when accumulate_dx); dw += dyᵀ·x.
// Either output may be an undefined Tensor to skip it.
void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor& dx, Tensor& dw,
                     bool accumulate_dx = false);

}  // namespace linpar
