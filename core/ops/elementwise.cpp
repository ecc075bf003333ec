#include "core/ops/elementwise.h"

#include "core/op_stats.h"
#include "core/op_timing.h"
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
  LINPAR_OP_TIME("axpy", y.device());
  count_traffic(OpKind::Memory, {&x, &y}, {&y});
  check_same("axpy", x, y);
  LINPAR_CHECK(x.numel() == y.numel(), "axpy: {} vs {}", shape_string(x.shape()),
               shape_string(y.shape()));
  if (plan_only(y, axpy_flops(y.numel()))) return;
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
  LINPAR_OP_TIME("scale", x.device());
  count_traffic(OpKind::Memory, {&x}, {&x});
  if (plan_only(x, 0)) return;
  if (x.device() == Device::CUDA) {
#ifdef LINPAR_HAVE_CUDA
    if (x.dtype() == DType::F32) {
      cuda::scale_f32(static_cast<float>(alpha), x.device_data<float>(), x.numel());
    } else if (x.dtype() == DType::BF16) {
      cuda::scale_bf16(static_cast<float>(alpha), reinterpret_cast<uint16_t*>(x.device_data<bf16>()),
                       x.numel());
    } else {
      no_cuda_kernel("scale", x.dtype());
    }
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

double sum_squares(const Tensor& x) { return sum_squares(std::vector<const Tensor*>{&x}); }

double sum_squares(const std::vector<const Tensor*>& tensors) {
  // Every element read once (the gradient norm's pass over the gradients).
  int64_t bytes = 0;
  for (const Tensor* x : tensors) bytes += static_cast<int64_t>(x->nbytes());
  count_traffic(OpKind::Memory, bytes, 0);
  double total = 0;
  Tensor device_total;  // f64 [1] on the GPU, made on first use
  for (const Tensor* x : tensors) {
    if (x->is_meta()) continue;  // no values: nothing to add
    if (x->device() == Device::CUDA) {
#ifdef LINPAR_HAVE_CUDA
      if (!device_total.defined()) device_total = Tensor::zeros({1}, DType::F64, Device::CUDA);
      double* acc = device_total.device_data<double>();
      if (x->dtype() == DType::F32) {
        cuda::sum_squares_f32(x->device_data<float>(), x->numel(), acc);
      } else if (x->dtype() == DType::BF16) {
        cuda::sum_squares_bf16(reinterpret_cast<const uint16_t*>(x->device_data<bf16>()), x->numel(), acc);
      } else {
        no_cuda_kernel("sum_squares", x->dtype());
      }
#else
      no_cuda_kernel("sum_squares", x->dtype());
#endif
      continue;
    }
    LINPAR_DISPATCH_FLOAT(x->dtype(), "sum_squares", [&]<typename T>() {
      const T* p = x->data<T>();
      for (int64_t i = 0; i < x->numel(); ++i) total += static_cast<double>(p[i]) * p[i];
    });
  }
  if (device_total.defined()) total += device_total.to_vector<double>()[0];
  return total;
}

void convert(const Tensor& src, Tensor& dst) {
  LINPAR_OP_TIME("convert", src.device());
  count_traffic(OpKind::Memory, {&src}, {&dst});
  LINPAR_CHECK(src.numel() == dst.numel() && src.device() == dst.device(),
               "convert: {} {} into {} {}", device_name(src.device()), shape_string(src.shape()),
               device_name(dst.device()), shape_string(dst.shape()));
  if (plan_only(src, 0)) return;
  if (src.dtype() == dst.dtype()) {
    dst.copy_from(src.reshape(dst.shape()));
    return;
  }
  if (src.device() == Device::CPU) {
    dst.copy_from(src.to(dst.dtype()).reshape(dst.shape()));
    return;
  }
#ifdef LINPAR_HAVE_CUDA
  if (src.dtype() == DType::F32 && dst.dtype() == DType::BF16) {
    cuda::convert_f32_to_bf16(src.device_data<float>(), reinterpret_cast<uint16_t*>(dst.device_data<bf16>()),
                              src.numel());
    return;
  }
  if (src.dtype() == DType::BF16 && dst.dtype() == DType::F32) {
    cuda::convert_bf16_to_f32(reinterpret_cast<const uint16_t*>(src.device_data<bf16>()),
                              dst.device_data<float>(), src.numel());
    return;
  }
#endif
  LINPAR_CHECK(false, "convert on the GPU: {} to {} is not supported", dtype_name(src.dtype()),
               dtype_name(dst.dtype()));
}

}  // namespace linpar
