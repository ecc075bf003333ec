#include "core/ops/gemm.h"

#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/gemm_cublaslt.h"
#endif

#include <cblas.h>

#include "core/op_stats.h"
#include "core/op_timing.h"
#include "core/ops/dispatch.h"

namespace linpar {

template <>
void gemm<float>(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
  count_flops(2 * m * n * k);
}

template <>
void gemm<double>(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                  const double* a, int64_t lda, const double* b, int64_t ldb, double beta,
                  double* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
  count_flops(2 * m * n * k);
}

namespace {
// CUDA tensors (f32 or bf16) go to cuBLASLt with the same row-major calls.
bool on_gpu(const Tensor& t) { return t.device() == Device::CUDA; }
void gpu_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const Tensor& a,
              int64_t lda, const Tensor& b, int64_t ldb, float beta, Tensor& c, int64_t ldc) {
#ifdef LINPAR_HAVE_CUDA
  // bf16 operands may accumulate into an f32 output (weight gradients).
  LINPAR_CHECK(a.device() == Device::CUDA && b.device() == Device::CUDA && c.device() == Device::CUDA &&
                   a.dtype() == b.dtype() &&
                   (b.dtype() == c.dtype() || (b.dtype() == DType::BF16 && c.dtype() == DType::F32)),
               "linear on the GPU: operands {} {}, {} {}, {} {}", device_name(a.device()),
               dtype_name(a.dtype()), device_name(b.device()), dtype_name(b.dtype()),
               device_name(c.device()), dtype_name(c.dtype()));
  cuda::gemm(trans_a, trans_b, m, n, k, 1.0f, a.raw_data(), lda, b.raw_data(), ldb, beta,
             c.raw_data(), ldc, a.dtype(), c.dtype());
#else
  (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k, (void)a, (void)lda, (void)b, (void)ldb,
      (void)beta, (void)c, (void)ldc;
  user_error("--device cuda: this linpar was built without CUDA");
#endif
}
}  // namespace

void linear_forward(const Tensor& x, const Tensor& w, Tensor& y) {
  LINPAR_OP_TIME("linear_forward", x.device());
  count_traffic(OpKind::Matmul, {&x, &w}, {&y});
  count_product(x.numel() / w.dim(1), w.dim(0), w.dim(1));
  if (plan_only(x, 2 * x.numel() * w.dim(0))) return;
  if (on_gpu(x)) {
    const int64_t out = w.dim(0), in = w.dim(1), rows = x.numel() / in;
    LINPAR_CHECK(x.dim(-1) == in && y.numel() == rows * out, "linear_forward: x {} w {} y {}",
                 shape_string(x.shape()), shape_string(w.shape()), shape_string(y.shape()));
    gpu_gemm(false, true, rows, out, in, x, in, w, in, 0.0f, y, out);
    return;
  }
  check_cpu_float("linear_forward", x);
  check_same("linear_forward", x, w);
  int64_t out = w.dim(0), in = w.dim(1), rows = x.numel() / in;
  LINPAR_CHECK(x.dim(-1) == in, "linear_forward: x {} vs w {}", shape_string(x.shape()),
               shape_string(w.shape()));
  LINPAR_CHECK(y.numel() == rows * out, "linear_forward: y {}", shape_string(y.shape()));
  LINPAR_DISPATCH_FLOAT(x.dtype(), "linear_forward", [&]<typename T>() {
    gemm<T>(false, true, rows, out, in, T(1), x.data<T>(), in, w.data<T>(), in, T(0), y.data<T>(),
            out);
  });
}

void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor& dx, Tensor& dw,
                     bool accumulate_dx) {
  LINPAR_OP_TIME("linear_backward", dy.device());
  // dW is accumulated (read and written); dx too when accumulate_dx.
  count_traffic(OpKind::Matmul,
                {&dy, dw.defined() ? &x : nullptr, dx.defined() ? &w : nullptr,
                 accumulate_dx ? &dx : nullptr, &dw},
                {&dx, &dw});
  // The forward's shape [rows, in]·[in, out]; dx and dW each as many FLOPs.
  count_product(x.numel() / w.dim(1), w.dim(0), w.dim(1));
  if (plan_only(dy, (dx.defined() ? 2 : 0) * x.numel() * w.dim(0) +
                        (dw.defined() ? 2 : 0) * x.numel() * w.dim(0))) {
    return;
  }
  if (on_gpu(dy)) {
    const int64_t out = w.dim(0), in = w.dim(1), rows = x.numel() / in;
    LINPAR_CHECK(dy.numel() == rows * out, "linear_backward: dy {}", shape_string(dy.shape()));
    if (dx.defined()) gpu_gemm(false, false, rows, in, out, dy, out, w, in, accumulate_dx ? 1.0f : 0.0f, dx, in);
    if (dw.defined()) gpu_gemm(true, false, out, in, rows, dy, out, x, in, 1.0f, dw, in);
    return;
  }
  check_cpu_float("linear_backward", dy);
  int64_t out = w.dim(0), in = w.dim(1), rows = x.numel() / in;
  LINPAR_CHECK(dy.numel() == rows * out, "linear_backward: dy {}", shape_string(dy.shape()));
  LINPAR_DISPATCH_FLOAT(dy.dtype(), "linear_backward", [&]<typename T>() {
    if (dx.defined()) {
      gemm<T>(false, false, rows, in, out, T(1), dy.data<T>(), out, w.data<T>(), in,
              accumulate_dx ? T(1) : T(0), dx.data<T>(), in);
    }
    if (dw.defined()) {
      gemm<T>(true, false, out, in, rows, T(1), dy.data<T>(), out, x.data<T>(), in, T(1),
              dw.data<T>(), in);
    }
  });
}

}  // namespace linpar
