// The fused q/k/v/u split is the composition it replaces, bit for bit: four
// heads_from_columns and SiLU on q and k forward; SiLU's backward on q and k
// and four heads_to_columns backward. f32 and f64, head widths odd, at a
// 16-byte vector and above, and the FLOPs it counts are the composition's.
// Its gradient is checked by finite differences in f64.
#include "core/ops/split_qkvu.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "core/op_stats.h"
#include "core/ops/activation.h"
#include "core/ops/layout.h"
#include "gradcheck.h"

namespace linpar {

using testing::dot;
using testing::max_gradient_error;
using testing::random_tensor;

namespace {

struct Case {
  int64_t batch, length, heads, head_dim;
};
const Case kCases[] = {{2, 5, 3, 7}, {1, 9, 2, 8}, {2, 4, 4, 16}, {1, 3, 1, 130}};

std::string describe(const Case& c, DType dtype) {
  return std::string(dtype_name(dtype)) + " B " + std::to_string(c.batch) + " N " +
         std::to_string(c.length) + " H " + std::to_string(c.heads) + " d " +
         std::to_string(c.head_dim);
}

Tensor nan_filled(const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, DType::F64);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<double>()[i] = std::numeric_limits<double>::quiet_NaN();
  return t.to(dtype);
}

// Element-for-element equality (a NaN anywhere fails).
void expect_identical(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> g = got.to(DType::F64).to_vector<double>();
  const std::vector<double> w = want.to(DType::F64).to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(g[i], w[i]) << what << " at " << i;
}

}  // namespace

TEST(SplitQkvu, ForwardEqualsHeadsFromColumnsThenSilu) {
  uint64_t seed = 1;
  for (const Case& c : kCases) {
    for (DType dtype : {DType::F32, DType::F64}) {
      const int64_t B = c.batch, N = c.length, H = c.heads, d = c.head_dim, Dl = H * d;
      const Shape heads{B, H, N, d}, columns{B, N, Dl};
      const Tensor qkvu = random_tensor({B, N, 4 * Dl}, seed++, 2.0, dtype);

      Tensor q_raw = Tensor::empty(heads, dtype), k_raw = Tensor::empty(heads, dtype);
      Tensor q = Tensor::empty(heads, dtype), k = Tensor::empty(heads, dtype);
      Tensor v = Tensor::empty(heads, dtype), u = Tensor::empty(columns, dtype);
      FlopScope composed;
      heads_from_columns(qkvu, 0, q_raw);
      heads_from_columns(qkvu, Dl, k_raw);
      heads_from_columns(qkvu, 2 * Dl, v);
      Tensor u_view = u.reshape({B, 1, N, Dl});
      heads_from_columns(qkvu, 3 * Dl, u_view);
      silu_forward(q_raw, q);
      silu_forward(k_raw, k);

      Tensor qf = nan_filled(heads, dtype), kf = nan_filled(heads, dtype),
             vf = nan_filled(heads, dtype), uf = nan_filled(columns, dtype);
      FlopScope fused;
      split_qkvu_forward(qkvu, qf, kf, vf, uf);
      const std::string what = describe(c, dtype);
      expect_identical(qf, q, "q " + what);
      expect_identical(kf, k, "k " + what);
      expect_identical(vf, v, "v " + what);
      expect_identical(uf, u, "u " + what);
      EXPECT_EQ(fused.flops(), composed.flops() - fused.flops()) << what;
      EXPECT_EQ(fused.flops(), split_qkvu_forward_flops(B * N * Dl)) << what;
    }
  }
}

TEST(SplitQkvu, BackwardEqualsSiluBackwardThenHeadsToColumns) {
  uint64_t seed = 101;
  for (const Case& c : kCases) {
    for (DType dtype : {DType::F32, DType::F64}) {
      const int64_t B = c.batch, N = c.length, H = c.heads, d = c.head_dim, Dl = H * d;
      const Shape heads{B, H, N, d}, columns{B, N, Dl};
      const Tensor qkvu = random_tensor({B, N, 4 * Dl}, seed++, 2.0, dtype);
      const Tensor dq = random_tensor(heads, seed++, 1.0, dtype),
                   dk = random_tensor(heads, seed++, 1.0, dtype),
                   dv = random_tensor(heads, seed++, 1.0, dtype),
                   du = random_tensor(columns, seed++, 1.0, dtype);

      Tensor q_raw = Tensor::empty(heads, dtype), k_raw = Tensor::empty(heads, dtype);
      heads_from_columns(qkvu, 0, q_raw);
      heads_from_columns(qkvu, Dl, k_raw);
      Tensor dq_raw = Tensor::empty(heads, dtype), dk_raw = Tensor::empty(heads, dtype);
      Tensor d_qkvu = Tensor::empty({B, N, 4 * Dl}, dtype);
      FlopScope composed;
      silu_backward(dq, q_raw, dq_raw);
      silu_backward(dk, k_raw, dk_raw);
      heads_to_columns(dq_raw, 0, d_qkvu);
      heads_to_columns(dk_raw, Dl, d_qkvu);
      heads_to_columns(dv, 2 * Dl, d_qkvu);
      heads_to_columns(du.reshape({B, 1, N, Dl}), 3 * Dl, d_qkvu);

      Tensor fused_out = nan_filled({B, N, 4 * Dl}, dtype);  // every element must be written
      FlopScope fused;
      split_qkvu_backward(dq, dk, dv, du, qkvu, fused_out);
      const std::string what = describe(c, dtype);
      expect_identical(fused_out, d_qkvu, what);
      EXPECT_EQ(fused.flops(), composed.flops() - fused.flops()) << what;
      EXPECT_EQ(fused.flops(), split_qkvu_backward_flops(B * N * Dl)) << what;
    }
  }
}

TEST(SplitQkvu, BackwardIsTheForwardsGradient) {
  const int64_t B = 2, N = 3, H = 2, d = 3, Dl = H * d;
  const Shape heads{B, H, N, d}, columns{B, N, Dl};
  Tensor qkvu = random_tensor({B, N, 4 * Dl}, 201, 1.5);
  const Tensor rq = random_tensor(heads, 202), rk = random_tensor(heads, 203),
               rv = random_tensor(heads, 204), ru = random_tensor(columns, 205);
  Tensor q = Tensor::empty(heads, DType::F64), k = q.clone(), v = q.clone(),
         u = Tensor::empty(columns, DType::F64);
  auto loss = [&] {
    split_qkvu_forward(qkvu, q, k, v, u);
    return dot(q, rq) + dot(k, rk) + dot(v, rv) + dot(u, ru);
  };
  Tensor d_qkvu = Tensor::empty({B, N, 4 * Dl}, DType::F64);
  split_qkvu_backward(rq, rk, rv, ru, qkvu, d_qkvu);
  EXPECT_LT(max_gradient_error(loss, qkvu, d_qkvu, 4 * B * N * Dl), 1e-6);
}

TEST(SplitQkvu, RejectsMismatchedShapes) {
  const Tensor qkvu = random_tensor({1, 4, 4 * 6}, 301, 1.0, DType::F32);
  Tensor q = Tensor::empty({1, 2, 4, 3}, DType::F32), k = q.clone(), v = q.clone();
  Tensor u_wrong = Tensor::empty({1, 4, 5}, DType::F32);
  EXPECT_ANY_THROW(split_qkvu_forward(qkvu, q, k, v, u_wrong));
  Tensor u = Tensor::empty({1, 4, 6}, DType::F32), k_f64 = Tensor::empty({1, 2, 4, 3}, DType::F64);
  EXPECT_ANY_THROW(split_qkvu_forward(qkvu, q, k_f64, v, u));
}

}  // namespace linpar
