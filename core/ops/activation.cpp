#include "core/ops/activation.h"

#include <cmath>

#include "core/op_stats.h"
#include "core/ops/dispatch.h"

namespace linpar {

// FLOP conventions: exp counts as one FLOP, as in the usual model-FLOP tallies.
int64_t silu_forward_flops(int64_t n) { return 4 * n; }
int64_t silu_backward_flops(int64_t n) { return 8 * n; }
int64_t mul_forward_flops(int64_t n) { return n; }
int64_t mul_backward_flops(int64_t n) { return 2 * n; }

void silu_forward(const Tensor& x, Tensor& y) {
  check_cpu_float("silu_forward", x);
  LINPAR_CHECK(y.numel() == x.numel(), "silu_forward: y {}", shape_string(y.shape()));
  LINPAR_DISPATCH_FLOAT(x.dtype(), "silu_forward", [&]<typename T>() {
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) yp[i] = xp[i] / (T(1) + std::exp(-xp[i]));
  });
  count_flops(silu_forward_flops(x.numel()));
}

void silu_backward(const Tensor& dy, const Tensor& x, Tensor& dx) {
  check_cpu_float("silu_backward", dy);
  LINPAR_CHECK(dy.numel() == x.numel() && dx.numel() == x.numel(), "silu_backward shapes");
  LINPAR_DISPATCH_FLOAT(x.dtype(), "silu_backward", [&]<typename T>() {
    const T* dyp = dy.data<T>();
    const T* xp = x.data<T>();
    T* dxp = dx.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      T s = T(1) / (T(1) + std::exp(-xp[i]));
      dxp[i] = dyp[i] * s * (T(1) + xp[i] * (T(1) - s));
    }
  });
  count_flops(silu_backward_flops(x.numel()));
}

void mul_forward(const Tensor& a, const Tensor& b, Tensor& y) {
  check_cpu_float("mul_forward", a);
  LINPAR_CHECK(a.numel() == b.numel() && y.numel() == a.numel(), "mul_forward shapes");
  LINPAR_DISPATCH_FLOAT(a.dtype(), "mul_forward", [&]<typename T>() {
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    T* yp = y.data<T>();
    for (int64_t i = 0; i < a.numel(); ++i) yp[i] = ap[i] * bp[i];
  });
  count_flops(mul_forward_flops(a.numel()));
}

void mul_backward(const Tensor& dy, const Tensor& a, const Tensor& b, Tensor& da, Tensor& db) {
  check_cpu_float("mul_backward", dy);
  LINPAR_DISPATCH_FLOAT(dy.dtype(), "mul_backward", [&]<typename T>() {
    const T* dyp = dy.data<T>();
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    if (da.defined()) {
      T* p = da.data<T>();
      for (int64_t i = 0; i < dy.numel(); ++i) p[i] = dyp[i] * bp[i];
    }
    if (db.defined()) {
      T* p = db.data<T>();
      for (int64_t i = 0; i < dy.numel(); ++i) p[i] = dyp[i] * ap[i];
    }
  });
  // One product per gradient actually formed (the model always forms both).
  count_flops((da.defined() ? dy.numel() : 0) + (db.defined() ? dy.numel() : 0));
}

}  // namespace linpar
