#include "core/ops/srmsnorm.h"

#include <cmath>

#include "core/op_stats.h"
#include "core/ops/dispatch.h"

namespace linpar {

int64_t srmsnorm_forward_flops(int64_t rows, int64_t width) { return rows * 3 * width; }
int64_t srmsnorm_backward_flops(int64_t rows, int64_t width) { return rows * 5 * width; }

void srmsnorm_forward(const Tensor& x, double eps, Tensor& y, Tensor& rstd) {
  check_cpu_float("srmsnorm_forward", x);
  const int64_t width = x.dim(-1), rows = x.numel() / width;
  LINPAR_CHECK(y.numel() == x.numel() && rstd.numel() == rows, "srmsnorm_forward: y {} rstd {}",
               shape_string(y.shape()), shape_string(rstd.shape()));
  LINPAR_DISPATCH_FLOAT(x.dtype(), "srmsnorm_forward", [&]<typename T>() {
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    T* rp = rstd.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = xp + r * width;
      T* yr = yp + r * width;
      T sum_sq = 0;
      for (int64_t i = 0; i < width; ++i) sum_sq += xr[i] * xr[i];
      T inv = T(1) / std::sqrt(sum_sq / static_cast<T>(width) + static_cast<T>(eps));
      rp[r] = inv;
      for (int64_t i = 0; i < width; ++i) yr[i] = xr[i] * inv;
    }
  });
  count_flops(srmsnorm_forward_flops(rows, width));
}

void srmsnorm_backward(const Tensor& dy, const Tensor& y, const Tensor& rstd, Tensor& dx,
                       bool accumulate) {
  check_cpu_float("srmsnorm_backward", dy);
  const int64_t width = y.dim(-1), rows = y.numel() / width;
  LINPAR_CHECK(dy.numel() == y.numel() && dx.numel() == y.numel(), "srmsnorm_backward shapes");
  LINPAR_DISPATCH_FLOAT(dy.dtype(), "srmsnorm_backward", [&]<typename T>() {
    const T* dyp = dy.data<T>();
    const T* yp = y.data<T>();
    const T* rp = rstd.data<T>();
    T* dxp = dx.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      const T* dyr = dyp + r * width;
      const T* yr = yp + r * width;
      T* dxr = dxp + r * width;
      T dot = 0;
      for (int64_t i = 0; i < width; ++i) dot += dyr[i] * yr[i];
      const T mean = dot / static_cast<T>(width);
      for (int64_t i = 0; i < width; ++i) {
        T g = rp[r] * (dyr[i] - yr[i] * mean);
        dxr[i] = accumulate ? dxr[i] + g : g;
      }
    }
  });
  count_flops(srmsnorm_backward_flops(rows, width));
}

}  // namespace linpar
