// Dispatch a CPU op template on a floating dtype: the CPU reference runs in f32
// (training) or f64 (gradient checks).
#pragma once

#include "core/error.h"
#include "core/tensor.h"

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

inline void check_shape(const char* op, const char* what, const Tensor& t, const Shape& want) {
  LINPAR_CHECK(t.shape() == want, "{}: {} has shape {}, expected {}", op, what,
               shape_string(t.shape()), shape_string(want));
}

}  // namespace linpar
