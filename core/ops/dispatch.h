// Dispatch a CPU op template on a floating dtype: the CPU reference runs in f32
// (training) or f64 (gradient checks).
#pragma once

#include "core/error.h"
#include "core/tensor.h"

#include <initializer_list>

// LINPAR_DISPATCH_FLOAT(dtype, "op", [&]<typename T>() { ... });
#define LINPAR_DISPATCH_FLOAT(dtype, op_name, ...)                     \
  do {                                                                 \
    auto linpar_body_ = __VA_ARGS__;                                   \
    switch (dtype) {                                                   \
      case ::linpar::DType::F32:                                       \
        linpar_body_.template operator()<float>();                     \
        break;                                                         \
      case ::linpar::DType::F64:                                       \
        linpar_body_.template operator()<double>();                    \
        break;                                                         \
      default:                                                         \
        LINPAR_CHECK(false, "{}: no CPU kernel for dtype {}", op_name, \
                     ::linpar::dtype_name(dtype));                     \
    }                                                                  \
  } while (0)

namespace linpar {

// Checks shared by every op: same dtype and device, CPU for the reference path.
inline void check_cpu_float(const char* op, const Tensor& t) {
  LINPAR_CHECK(t.defined(), "{}: undefined tensor", op);
  LINPAR_CHECK(t.device() == Device::CPU, "{}: tensor on {}", op, device_name(t.device()));
  LINPAR_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64, "{}: dtype {}", op,
               dtype_name(t.dtype()));
}

inline void check_same(const char* op, const Tensor& a, const Tensor& b) {
  LINPAR_CHECK(a.dtype() == b.dtype() && a.device() == b.device(), "{}: {} {} vs {} {}", op,
               dtype_name(a.dtype()), device_name(a.device()), dtype_name(b.dtype()),
               device_name(b.device()));
}

// GPU operands: every tensor on CUDA with one dtype, f32 or bf16 (the kernels'
// element types); returns whether it is bf16. Per-row statistics travel as
// CUDA f32 tensors (check_cuda_f32).
inline bool cuda_operands(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor& first = **tensors.begin();
  for (const Tensor* t : tensors) {
    LINPAR_CHECK(t->defined() && t->device() == Device::CUDA && t->dtype() == first.dtype() &&
                     (t->dtype() == DType::F32 || t->dtype() == DType::BF16),
                 "{}: GPU operands must be CUDA tensors of one dtype, f32 or bf16 (got {} {})", op,
                 device_name(t->device()), dtype_name(t->dtype()));
  }
  return first.dtype() == DType::BF16;
}

inline void check_cuda_f32(const char* op, const char* what, const Tensor& t) {
  LINPAR_CHECK(t.device() == Device::CUDA && t.dtype() == DType::F32,
               "{}: {} must be a CUDA f32 tensor (got {} {})", op, what, device_name(t.device()),
               dtype_name(t.dtype()));
}

// In a build without CUDA, any CUDA tensor ends here.
#ifdef LINPAR_HAVE_CUDA
#define LINPAR_CUDA_OR_FAIL(op, ...) __VA_ARGS__
#else
#define LINPAR_CUDA_OR_FAIL(op, ...) ::linpar::user_error("{}: this linpar was built without CUDA", op)
#endif

inline void check_shape(const char* op, const char* what, const Tensor& t, const Shape& want) {
  LINPAR_CHECK(t.shape() == want, "{}: {} has shape {}, expected {}", op, what,
               shape_string(t.shape()), shape_string(want));
}

}  // namespace linpar
