#include "core/ops/lrpe.h"

#include <cmath>

#include "core/op_stats.h"
#include "core/op_timing.h"
#include "core/ops/dispatch.h"
#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/lrpe_kernels.h"
#endif

namespace linpar {

// Per input element: angle (1), cos and sin (2), two products (2).
int64_t lrpe_forward_flops(int64_t numel) { return 5 * numel; }
// Per input element: angle, cos, sin (3), dx (3), dθ (5).
int64_t lrpe_backward_flops(int64_t numel) { return 11 * numel; }

#ifdef LINPAR_HAVE_CUDA
namespace {
cuda::LrpeDims lrpe_dims(const Tensor& x, int64_t position_offset) {
  return {x.dim(0), x.dim(1), x.dim(2), x.dim(3), position_offset};
}

void lrpe_backward_cuda(const Tensor& dy, const Tensor& x, const Tensor& theta,
                        int64_t position_offset, Tensor& dx, Tensor& d_theta) {
  const cuda::LrpeDims dims = lrpe_dims(x, position_offset);
  Tensor partials = Tensor::empty({cuda::lrpe_backward_partials(dims)}, DType::F32, Device::CUDA);
  cuda::lrpe_backward(dy.dtype() == DType::BF16, d_theta.dtype() == DType::BF16, dims,
                      dy.raw_data(), x.raw_data(), theta.raw_data(), dx.raw_data(),
                      d_theta.raw_data(), partials.device_data<float>());
}
}  // namespace
#endif

std::vector<double> lrpe_initial_theta(int64_t width) {
  std::vector<double> theta(static_cast<size_t>(width));
  for (int64_t c = 0; c < width; ++c) {
    theta[static_cast<size_t>(c)] =
        std::pow(10000.0, -2.0 * static_cast<double>(c) / static_cast<double>(width));
  }
  return theta;
}

void lrpe_forward(const Tensor& x, const Tensor& theta, int64_t position_offset, Tensor& y) {
  LINPAR_OP_TIME("lrpe_forward", x.device());
  count_traffic(OpKind::Memory, {&x, &theta}, {&y});
  LINPAR_CHECK(x.ndim() == 4, "lrpe_forward: x {}", shape_string(x.shape()));
  const int64_t batch = x.dim(0), heads = x.dim(1), length = x.dim(2), d = x.dim(3);
  check_shape("lrpe_forward", "theta", theta, {heads * d});
  check_shape("lrpe_forward", "y", y, {batch, heads, length, 2 * d});
  if (plan_only(x, lrpe_forward_flops(x.numel()))) return;
  if (x.device() == Device::CUDA) {
    const bool bf16 = cuda_operands("lrpe_forward", {&x, &theta, &y});
    LINPAR_CUDA_OR_FAIL("lrpe_forward",
                        cuda::lrpe_forward(bf16, lrpe_dims(x, position_offset), x.raw_data(),
                                           theta.raw_data(), y.raw_data()));
    count_flops(lrpe_forward_flops(x.numel()));
    return;
  }
  check_cpu_float("lrpe_forward", x);
  LINPAR_DISPATCH_FLOAT(x.dtype(), "lrpe_forward", [&]<typename T>() {
    const T* xp = x.data<T>();
    const T* tp = theta.data<T>();
    T* yp = y.data<T>();
    for (int64_t bh = 0; bh < batch * heads; ++bh) {
      const int64_t h = bh % heads;
      for (int64_t n = 0; n < length; ++n) {
        const T p = static_cast<T>(position_offset + n);
        const T* xr = xp + (bh * length + n) * d;
        T* yr = yp + (bh * length + n) * 2 * d;
        for (int64_t j = 0; j < d; ++j) {
          const T angle = tp[h * d + j] * p;
          yr[j] = xr[j] * std::cos(angle);
          yr[d + j] = xr[j] * std::sin(angle);
        }
      }
    }
  });
  count_flops(lrpe_forward_flops(x.numel()));
}

void lrpe_backward(const Tensor& dy, const Tensor& x, const Tensor& theta, int64_t position_offset,
                   Tensor& dx, Tensor& d_theta) {
  LINPAR_OP_TIME("lrpe_backward", x.device());
  // dθ is accumulated.
  count_traffic(OpKind::Memory, {&dy, &x, &theta, &d_theta}, {&dx, &d_theta});
  LINPAR_CHECK(x.ndim() == 4, "lrpe_backward: x {}", shape_string(x.shape()));
  const int64_t batch = x.dim(0), heads = x.dim(1), length = x.dim(2), d = x.dim(3);
  check_shape("lrpe_backward", "dy", dy, {batch, heads, length, 2 * d});
  if (plan_only(dy, lrpe_backward_flops(x.numel()))) return;
  if (dy.device() == Device::CUDA) {
    // dθ may be f32 while the operands are bf16 (mixed precision keeps f32 gradients).
    cuda_operands("lrpe_backward", {&dy, &x, &theta, &dx});
    LINPAR_CHECK(d_theta.device() == Device::CUDA &&
                     (d_theta.dtype() == DType::F32 || d_theta.dtype() == dy.dtype()),
                 "lrpe_backward: d_theta must be CUDA f32, or {} like dy (got {} {})",
                 dtype_name(dy.dtype()), device_name(d_theta.device()),
                 dtype_name(d_theta.dtype()));
    check_shape("lrpe_backward", "theta", theta, {heads * d});
    check_shape("lrpe_backward", "d_theta", d_theta, {heads * d});
    check_shape("lrpe_backward", "dx", dx, x.shape());
    LINPAR_CUDA_OR_FAIL("lrpe_backward",
                        lrpe_backward_cuda(dy, x, theta, position_offset, dx, d_theta));
    count_flops(lrpe_backward_flops(x.numel()));
    return;
  }
  check_cpu_float("lrpe_backward", dy);
  LINPAR_DISPATCH_FLOAT(x.dtype(), "lrpe_backward", [&]<typename T>() {
    const T* dyp = dy.data<T>();
    const T* xp = x.data<T>();
    const T* tp = theta.data<T>();
    T* dxp = dx.data<T>();
    T* dtp = d_theta.data<T>();
    for (int64_t bh = 0; bh < batch * heads; ++bh) {
      const int64_t h = bh % heads;
      for (int64_t n = 0; n < length; ++n) {
        const T p = static_cast<T>(position_offset + n);
        const T* xr = xp + (bh * length + n) * d;
        const T* dyr = dyp + (bh * length + n) * 2 * d;
        T* dxr = dxp + (bh * length + n) * d;
        for (int64_t j = 0; j < d; ++j) {
          const T angle = tp[h * d + j] * p;
          const T c = std::cos(angle), s = std::sin(angle);
          dxr[j] = dyr[j] * c + dyr[d + j] * s;
          dtp[h * d + j] += p * xr[j] * (dyr[d + j] * c - dyr[j] * s);
        }
      }
    }
  });
  count_flops(lrpe_backward_flops(x.numel()));
}

}  // namespace linpar
