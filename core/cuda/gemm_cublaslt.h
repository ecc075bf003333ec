// Matrix products on the GPU through cuBLASLt, with the row-major semantics of
// the CPU gemm (core/ops/gemm.h): C[m,n] = alpha·op(A)[m,k]·op(B)[k,n] + beta·C.
// f32 operands compute in f32 (no TF32: the reference path); bf16 operands and
// output accumulate in f32 (tensor cores). Queued on the legacy default stream,
// the stream the NCCL backend orders its collectives after.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace linpar::cuda {

// `dtype` is A's and B's; C's is `c_dtype` when given: bf16 A and B may
// accumulate into an f32 C (mixed precision's f32 weight gradients).
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a,
          int64_t lda, const void* b, int64_t ldb, float beta, void* c, int64_t ldc, DType dtype,
          DType c_dtype);
inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const void* a, int64_t lda, const void* b, int64_t ldb, float beta, void* c,
                 int64_t ldc, DType dtype) {
  gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, dtype, dtype);
}

}  // namespace linpar::cuda
