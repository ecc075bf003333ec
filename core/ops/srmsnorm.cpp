#include "core/ops/srmsnorm.h"

#include <cmath>

#include "core/op_stats.h"
#include "core/op_timing.h"
#include "core/ops/dispatch.h"
#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/pointwise_kernels.h"
#endif

namespace linpar {

int64_t srmsnorm_forward_flops(int64_t rows, int64_t width) { return rows * 3 * width; }
int64_t srmsnorm_backward_flops(int64_t rows, int64_t width) { return rows * 5 * width; }

void srmsnorm_row_sums(const Tensor& x, Tensor& sums) {
  LINPAR_OP_TIME("srmsnorm_row_sums", x.device());
  const int64_t width = x.dim(-1), rows = x.numel() / width;
  LINPAR_CHECK(sums.numel() == rows, "srmsnorm_row_sums: sums {}", shape_string(sums.shape()));
  if (x.device() == Device::CUDA) {
    const bool bf16 = cuda_operands("srmsnorm_row_sums", {&x});
    check_cuda_f32("srmsnorm_row_sums", "sums", sums);
    LINPAR_CUDA_OR_FAIL("srmsnorm_row_sums",
                        cuda::srmsnorm_row_sums(bf16, x.raw_data(), sums.device_data<float>(), rows, width));
    count_flops(2 * rows * width);
    return;
  }
  check_cpu_float("srmsnorm_row_sums", x);
  LINPAR_DISPATCH_FLOAT(x.dtype(), "srmsnorm_row_sums", [&]<typename T>() {
    const T* xp = x.data<T>();
    T* sp = sums.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      T sum_sq = 0;
      for (int64_t i = 0; i < width; ++i) sum_sq += xp[r * width + i] * xp[r * width + i];
      sp[r] = sum_sq;
    }
  });
  count_flops(2 * rows * width);
}

void srmsnorm_apply(const Tensor& x, const Tensor& sums, int64_t full_width, double eps, Tensor& y,
                    Tensor& rstd) {
  LINPAR_OP_TIME("srmsnorm_apply", x.device());
  const int64_t width = x.dim(-1), rows = x.numel() / width;
  LINPAR_CHECK(y.numel() == x.numel() && rstd.numel() == rows, "srmsnorm_apply: y {} rstd {}",
               shape_string(y.shape()), shape_string(rstd.shape()));
  if (x.device() == Device::CUDA) {
    const bool bf16 = cuda_operands("srmsnorm_apply", {&x, &y});
    check_cuda_f32("srmsnorm_apply", "sums", sums);
    check_cuda_f32("srmsnorm_apply", "rstd", rstd);
    LINPAR_CUDA_OR_FAIL("srmsnorm_apply",
                        cuda::srmsnorm_apply(bf16, x.raw_data(), sums.device_data<float>(), full_width,
                                             static_cast<float>(eps), y.raw_data(),
                                             rstd.device_data<float>(), rows, width));
    count_flops(rows * width);
    return;
  }
  LINPAR_DISPATCH_FLOAT(x.dtype(), "srmsnorm_apply", [&]<typename T>() {
    const T* xp = x.data<T>();
    const T* sp = sums.data<T>();
    T* yp = y.data<T>();
    T* rp = rstd.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      const T inv = T(1) / std::sqrt(sp[r] / static_cast<T>(full_width) + static_cast<T>(eps));
      rp[r] = inv;
      for (int64_t i = 0; i < width; ++i) yp[r * width + i] = xp[r * width + i] * inv;
    }
  });
  count_flops(rows * width);
}

void srmsnorm_forward(const Tensor& x, double eps, Tensor& y, Tensor& rstd) {
  if (x.device() != Device::CUDA) check_cpu_float("srmsnorm_forward", x);
  const int64_t width = x.dim(-1), rows = x.numel() / width;
  // Row statistics are f32 on the GPU, in x's dtype on the CPU.
  Tensor sums = Tensor::empty({rows}, x.device() == Device::CUDA ? DType::F32 : x.dtype(), x.device());
  srmsnorm_row_sums(x, sums);
  srmsnorm_apply(x, sums, width, eps, y, rstd);
}

void srmsnorm_row_dots(const Tensor& dy, const Tensor& y, Tensor& dots) {
  LINPAR_OP_TIME("srmsnorm_row_dots", dy.device());
  const int64_t width = y.dim(-1), rows = y.numel() / width;
  LINPAR_CHECK(dy.numel() == y.numel() && dots.numel() == rows, "srmsnorm_row_dots shapes");
  if (dy.device() == Device::CUDA) {
    const bool bf16 = cuda_operands("srmsnorm_row_dots", {&dy, &y});
    check_cuda_f32("srmsnorm_row_dots", "dots", dots);
    LINPAR_CUDA_OR_FAIL("srmsnorm_row_dots",
                        cuda::srmsnorm_row_dots(bf16, dy.raw_data(), y.raw_data(),
                                                dots.device_data<float>(), rows, width));
    count_flops(2 * rows * width);
    return;
  }
  check_cpu_float("srmsnorm_row_dots", dy);
  LINPAR_DISPATCH_FLOAT(dy.dtype(), "srmsnorm_row_dots", [&]<typename T>() {
    const T* dyp = dy.data<T>();
    const T* yp = y.data<T>();
    T* dp = dots.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      T dot = 0;
      for (int64_t i = 0; i < width; ++i) dot += dyp[r * width + i] * yp[r * width + i];
      dp[r] = dot;
    }
  });
  count_flops(2 * rows * width);
}

void srmsnorm_backward_apply(const Tensor& dy, const Tensor& y, const Tensor& rstd,
                             const Tensor& dots, int64_t full_width, Tensor& dx, bool accumulate) {
  LINPAR_OP_TIME("srmsnorm_backward_apply", dy.device());
  const int64_t width = y.dim(-1), rows = y.numel() / width;
  LINPAR_CHECK(dx.numel() == y.numel(), "srmsnorm_backward_apply shapes");
  if (dy.device() == Device::CUDA) {
    const bool bf16 = cuda_operands("srmsnorm_backward_apply", {&dy, &y, &dx});
    check_cuda_f32("srmsnorm_backward_apply", "rstd", rstd);
    check_cuda_f32("srmsnorm_backward_apply", "dots", dots);
    LINPAR_CUDA_OR_FAIL("srmsnorm_backward_apply",
                        cuda::srmsnorm_backward_apply(bf16, dy.raw_data(), y.raw_data(),
                                                      rstd.device_data<float>(), dots.device_data<float>(),
                                                      full_width, dx.raw_data(), accumulate, rows, width));
    count_flops(3 * rows * width);
    return;
  }
  LINPAR_DISPATCH_FLOAT(dy.dtype(), "srmsnorm_backward_apply", [&]<typename T>() {
    const T* dyp = dy.data<T>();
    const T* yp = y.data<T>();
    const T* rp = rstd.data<T>();
    const T* dp = dots.data<T>();
    T* dxp = dx.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      const T mean = dp[r] / static_cast<T>(full_width);
      for (int64_t i = 0; i < width; ++i) {
        const int64_t k = r * width + i;
        const T g = rp[r] * (dyp[k] - yp[k] * mean);
        dxp[k] = accumulate ? dxp[k] + g : g;
      }
    }
  });
  count_flops(3 * rows * width);
}

void srmsnorm_backward(const Tensor& dy, const Tensor& y, const Tensor& rstd, Tensor& dx,
                       bool accumulate) {
  if (dy.device() != Device::CUDA) check_cpu_float("srmsnorm_backward", dy);
  const int64_t width = y.dim(-1), rows = y.numel() / width;
  Tensor dots = Tensor::empty({rows}, dy.device() == Device::CUDA ? DType::F32 : dy.dtype(), dy.device());
  srmsnorm_row_dots(dy, y, dots);
  srmsnorm_backward_apply(dy, y, rstd, dots, width, dx, accumulate);
}

}  // namespace linpar
