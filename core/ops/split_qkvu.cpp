#include "core/ops/split_qkvu.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "core/op_stats.h"
#include "core/op_timing.h"
#include "core/ops/activation.h"
#include "core/ops/dispatch.h"
#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/split_qkvu_kernels.h"
#endif

namespace linpar {

int64_t split_qkvu_forward_flops(int64_t elements) { return 2 * silu_forward_flops(elements); }
int64_t split_qkvu_backward_flops(int64_t elements) { return 2 * silu_backward_flops(elements); }

namespace {

struct Dims {
  int64_t batch, length, heads, head_dim;
  int64_t width() const { return heads * head_dim; }  // Dl
};

// Checks the operands: qkvu and `columns` (qkvu itself or d_qkvu) of shape
// [B, N, 4·Dl], the three head tensors [B, H, N, d] and u [B, N, Dl], one
// dtype and device; returns the dimensions (H and d from the head tensors).
Dims check_operands(const char* op, const Tensor& qkvu, const Tensor& columns,
                    std::initializer_list<const Tensor*> heads, const Tensor& u) {
  const Tensor& q = **heads.begin();
  if (qkvu.device() == Device::CUDA) {
    cuda_operands(op, {&qkvu, &columns, &u});
    for (const Tensor* t : heads) cuda_operands(op, {&qkvu, t});
  } else if (!qkvu.is_meta()) {
    check_cpu_float(op, qkvu);
    check_same(op, qkvu, columns);
    check_same(op, qkvu, u);
    for (const Tensor* t : heads) check_same(op, qkvu, *t);
  }
  LINPAR_CHECK(qkvu.ndim() == 3 && q.ndim() == 4, "{}: qkvu {} vs heads {}", op,
               shape_string(qkvu.shape()), shape_string(q.shape()));
  const Dims s{qkvu.dim(0), qkvu.dim(1), q.dim(1), q.dim(3)};
  check_shape(op, "qkvu", qkvu, {s.batch, s.length, 4 * s.width()});
  check_shape(op, "d_qkvu", columns, {s.batch, s.length, 4 * s.width()});
  for (const Tensor* t : heads)
    check_shape(op, "a head-layout operand", *t, {s.batch, s.heads, s.length, s.head_dim});
  check_shape(op, "u", u, {s.batch, s.length, s.width()});
  return s;
}

// The same expressions as silu_forward / silu_backward (core/ops/activation.cpp),
// so the fused op is bit-equal to the composition.
template <typename T>
T silu(T x) {
  return x / (T(1) + std::exp(-x));
}
template <typename T>
T silu_grad(T dy, T x) {
  T s = T(1) / (T(1) + std::exp(-x));
  return dy * s * (T(1) + x * (T(1) - s));
}

#ifdef LINPAR_HAVE_CUDA
cuda::QkvuDims cuda_dims(const Dims& s) { return {s.batch, s.length, s.heads, s.head_dim}; }
#endif

}  // namespace

void split_qkvu_forward(const Tensor& qkvu, Tensor& q, Tensor& k, Tensor& v, Tensor& u) {
  LINPAR_OP_TIME("split_qkvu_forward", qkvu.device());
  count_traffic(OpKind::Memory, {&qkvu}, {&q, &k, &v, &u});
  const Dims s = check_operands("split_qkvu_forward", qkvu, qkvu, {&q, &k, &v}, u);
  const int64_t Dl = s.width(), d = s.head_dim;
  if (plan_only(qkvu, split_qkvu_forward_flops(q.numel()))) return;
  if (qkvu.device() == Device::CUDA) {
    const bool bf16 = qkvu.dtype() == DType::BF16;
    LINPAR_CUDA_OR_FAIL("split_qkvu_forward",
                        cuda::split_qkvu_forward(bf16, cuda_dims(s), qkvu.raw_data(), q.raw_data(),
                                                 k.raw_data(), v.raw_data(), u.raw_data()));
    count_flops(split_qkvu_forward_flops(q.numel()));
    return;
  }
  LINPAR_DISPATCH_FLOAT(qkvu.dtype(), "split_qkvu_forward", [&]<typename T>() {
    const T* in = qkvu.data<T>();
    T *qp = q.data<T>(), *kp = k.data<T>(), *vp = v.data<T>(), *up = u.data<T>();
    for (int64_t b = 0; b < s.batch; ++b) {
      for (int64_t n = 0; n < s.length; ++n) {
        const T* row = in + (b * s.length + n) * 4 * Dl;
        for (int64_t h = 0; h < s.heads; ++h) {
          const int64_t c = h * d, at = ((b * s.heads + h) * s.length + n) * d;
          for (int64_t j = 0; j < d; ++j) {
            qp[at + j] = silu(row[c + j]);
            kp[at + j] = silu(row[Dl + c + j]);
          }
          std::copy(row + 2 * Dl + c, row + 2 * Dl + c + d, vp + at);
        }
        std::copy(row + 3 * Dl, row + 4 * Dl, up + (b * s.length + n) * Dl);
      }
    }
  });
  count_flops(split_qkvu_forward_flops(q.numel()));
}

void split_qkvu_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& du,
                         const Tensor& qkvu, Tensor& d_qkvu) {
  LINPAR_OP_TIME("split_qkvu_backward", qkvu.device());
  // The raw q and k (SiLU's backward) are read from qkvu: half of it.
  count_traffic(OpKind::Memory, {&dq, &dk, &dv, &du}, {&d_qkvu});
  count_traffic(OpKind::Memory, static_cast<int64_t>(qkvu.nbytes() / 2), 0);
  const Dims s = check_operands("split_qkvu_backward", qkvu, d_qkvu, {&dq, &dk, &dv}, du);
  const int64_t Dl = s.width(), d = s.head_dim;
  if (plan_only(qkvu, split_qkvu_backward_flops(dq.numel()))) return;
  if (qkvu.device() == Device::CUDA) {
    const bool bf16 = qkvu.dtype() == DType::BF16;
    LINPAR_CUDA_OR_FAIL(
        "split_qkvu_backward",
        cuda::split_qkvu_backward(bf16, cuda_dims(s), dq.raw_data(), dk.raw_data(), dv.raw_data(),
                                  du.raw_data(), qkvu.raw_data(), d_qkvu.raw_data()));
    count_flops(split_qkvu_backward_flops(dq.numel()));
    return;
  }
  LINPAR_DISPATCH_FLOAT(qkvu.dtype(), "split_qkvu_backward", [&]<typename T>() {
    const T *dqp = dq.data<T>(), *dkp = dk.data<T>(), *dvp = dv.data<T>(), *dup = du.data<T>();
    const T* raw_rows = qkvu.data<T>();
    T* out = d_qkvu.data<T>();
    for (int64_t b = 0; b < s.batch; ++b) {
      for (int64_t n = 0; n < s.length; ++n) {
        const T* raw = raw_rows + (b * s.length + n) * 4 * Dl;
        T* row = out + (b * s.length + n) * 4 * Dl;
        for (int64_t h = 0; h < s.heads; ++h) {
          const int64_t c = h * d, at = ((b * s.heads + h) * s.length + n) * d;
          for (int64_t j = 0; j < d; ++j) {
            row[c + j] = silu_grad(dqp[at + j], raw[c + j]);
            row[Dl + c + j] = silu_grad(dkp[at + j], raw[Dl + c + j]);
          }
          std::copy(dvp + at, dvp + at + d, row + 2 * Dl + c);
        }
        const T* du_row = dup + (b * s.length + n) * Dl;
        std::copy(du_row, du_row + Dl, row + 3 * Dl);
      }
    }
  });
  count_flops(split_qkvu_backward_flops(dq.numel()));
}

}  // namespace linpar
