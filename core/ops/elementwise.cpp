#include "core/ops/elementwise.h"

#include "core/op_stats.h"
#include "core/ops/dispatch.h"
#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/elementwise_kernels.h"
#endif

namespace linpar {

int64_t axpy_flops(int64_t n) { return 2 * n; }

namespace {
[[noreturn]] void no_cuda_kernel(const char* op, DType dtype) {
#ifdef LINPAR_HAVE_CUDA
  LINPAR_CHECK(false, "{}: no CUDA kernel for dtype {}", op, dtype_name(dtype));
#else
  user_error("{}: this linpar was built without CUDA", op);
#endif
}
}  // namespace

void axpy(double alpha, const Tensor& x, Tensor& y) {
  check_same("axpy", x, y);
  LINPAR_CHECK(x.numel() == y.numel(), "axpy: {} vs {}", shape_string(x.shape()),
               shape_string(y.shape()));
  if (y.device() == Device::CUDA) {
#ifdef LINPAR_HAVE_CUDA
    if (y.dtype() == DType::F32) {
      cuda::axpy_f32(static_cast<float>(alpha), x.device_data<float>(), y.device_data<float>(),
                     y.numel());
    } else if (y.dtype() == DType::BF16) {
      cuda::axpy_bf16(static_cast<float>(alpha),
                      reinterpret_cast<const uint16_t*>(x.device_data<bf16>()),
                      reinterpret_cast<uint16_t*>(y.device_data<bf16>()), y.numel());
    } else {
      no_cuda_kernel("axpy", y.dtype());
    }
#else
    no_cuda_kernel("axpy", y.dtype());
#endif
  } else {
    check_cpu_float("axpy", y);
    LINPAR_DISPATCH_FLOAT(y.dtype(), "axpy", [&]<typename T>() {
      const T* xp = x.data<T>();
      T* yp = y.data<T>();
      const T a = static_cast<T>(alpha);
      for (int64_t i = 0; i < y.numel(); ++i) yp[i] += a * xp[i];
    });
  }
  count_flops(axpy_flops(y.numel()));
}

void scale(double alpha, Tensor& x) {
  if (x.device() == Device::CUDA) {
#ifdef LINPAR_HAVE_CUDA
    if (x.dtype() != DType::F32) no_cuda_kernel("scale", x.dtype());
    cuda::scale_f32(static_cast<float>(alpha), x.device_data<float>(), x.numel());
#else
    no_cuda_kernel("scale", x.dtype());
#endif
    return;
  }
  check_cpu_float("scale", x);
  LINPAR_DISPATCH_FLOAT(x.dtype(), "scale", [&]<typename T>() {
    T* p = x.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) p[i] *= static_cast<T>(alpha);
  });
}

double sum_squares(const Tensor& x) {
  Tensor host = x.device() == Device::CPU ? x : x.to(Device::CPU);
  double total = 0;
  LINPAR_DISPATCH_FLOAT(host.dtype(), "sum_squares", [&]<typename T>() {
    const T* p = host.data<T>();
    for (int64_t i = 0; i < host.numel(); ++i) total += static_cast<double>(p[i]) * p[i];
  });
  return total;
}

}  // namespace linpar
