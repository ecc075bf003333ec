#include "core/ops/activation.h"

#include <cmath>

#include "core/op_stats.h"
#include "core/op_timing.h"
#include "core/ops/dispatch.h"
#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/pointwise_kernels.h"
#endif

namespace linpar {

// FLOP conventions: exp counts as one FLOP, as in the usual model-FLOP tallies.
int64_t silu_forward_flops(int64_t n) { return 4 * n; }
int64_t silu_backward_flops(int64_t n) { return 8 * n; }
int64_t mul_forward_flops(int64_t n) { return n; }
int64_t mul_backward_flops(int64_t n) { return 2 * n; }

void silu_forward(const Tensor& x, Tensor& y) {
  LINPAR_OP_TIME("silu_forward", x.device());
  count_traffic(OpKind::Memory, {&x}, {&y});
  if (plan_only(x, silu_forward_flops(x.numel()))) return;
  if (x.device() == Device::CUDA) {
    const bool bf16 = cuda_operands("silu_forward", {&x, &y});
    LINPAR_CUDA_OR_FAIL("silu_forward", cuda::silu_forward(bf16, x.raw_data(), y.raw_data(), x.numel()));
    count_flops(silu_forward_flops(x.numel()));
    return;
  }
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
  LINPAR_OP_TIME("silu_backward", x.device());
  count_traffic(OpKind::Memory, {&dy, &x}, {&dx});
  if (plan_only(x, silu_backward_flops(x.numel()))) return;
  if (dy.device() == Device::CUDA) {
    const bool bf16 = cuda_operands("silu_backward", {&dy, &x, &dx});
    LINPAR_CUDA_OR_FAIL("silu_backward",
                        cuda::silu_backward(bf16, dy.raw_data(), x.raw_data(), dx.raw_data(), x.numel()));
    count_flops(silu_backward_flops(x.numel()));
    return;
  }
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
  LINPAR_OP_TIME("mul_forward", a.device());
  count_traffic(OpKind::Memory, {&a, &b}, {&y});
  if (plan_only(a, mul_forward_flops(a.numel()))) return;
  if (a.device() == Device::CUDA) {
    const bool bf16 = cuda_operands("mul_forward", {&a, &b, &y});
    LINPAR_CUDA_OR_FAIL("mul_forward",
                        cuda::mul_forward(bf16, a.raw_data(), b.raw_data(), y.raw_data(), a.numel()));
    count_flops(mul_forward_flops(a.numel()));
    return;
  }
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
  LINPAR_OP_TIME("mul_backward", dy.device());
  count_traffic(OpKind::Memory, {&dy, db.defined() ? &a : nullptr, da.defined() ? &b : nullptr},
                {&da, &db});
  if (plan_only(dy, (da.defined() ? dy.numel() : 0) + (db.defined() ? dy.numel() : 0))) return;
  if (dy.device() == Device::CUDA) {
    const bool bf16 = cuda_operands("mul_backward", {&dy, &a, &b});
    if (da.defined()) cuda_operands("mul_backward", {&dy, &da});
    if (db.defined()) cuda_operands("mul_backward", {&dy, &db});
    LINPAR_CUDA_OR_FAIL("mul_backward",
                        cuda::mul_backward(bf16, dy.raw_data(), a.raw_data(), b.raw_data(),
                                           da.defined() ? da.raw_data() : nullptr,
                                           db.defined() ? db.raw_data() : nullptr, dy.numel()));
    count_flops((da.defined() ? dy.numel() : 0) + (db.defined() ? dy.numel() : 0));
    return;
  }
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
