// Lightning attention: block-wise equals the quadratic definition (any length,
// partial blocks, decays near 0 and 1, with and without a state), chunks chain
// through KV_in/KV_out in forward and backward, finite-difference gradients in
// f64, and the FLOP formulas equal what ran.
#include "core/ops/lightning_attention.h"

#include <gtest/gtest.h>

#include "core/op_stats.h"
#include "gradcheck.h"

namespace linpar {

using testing::dot;
using testing::max_gradient_error;
using testing::random_tensor;

namespace {

struct Case {
  int64_t batch, heads, length, dk, dv, block;
};

std::vector<double> slopes_for(int64_t heads, double first) {
  // Spread slopes over decades: from `first` down to first·10^-(heads-1).
  std::vector<double> s;
  for (int64_t h = 0; h < heads; ++h) s.push_back(first * std::pow(10.0, -static_cast<double>(h)));
  return s;
}

double max_relative_difference(const Tensor& a, const Tensor& b) {
  double worst = 0, scale = 0;
  for (int64_t i = 0; i < a.numel(); ++i) scale = std::max(scale, std::abs(a.data<double>()[i]));
  for (int64_t i = 0; i < a.numel(); ++i) {
    worst = std::max(worst,
                     std::abs(a.data<double>()[i] - b.data<double>()[i]) / std::max(scale, 1e-300));
  }
  return worst;
}

}  // namespace

TEST(LightningAttention, BlockwiseEqualsQuadraticReference) {
  const std::vector<Case> cases = {{2, 2, 16, 4, 4, 4}, {1, 3, 13, 5, 3, 4},  {1, 2, 7, 4, 6, 16},
                                   {2, 1, 9, 3, 3, 1},  {1, 2, 64, 8, 8, 16}, {1, 1, 1, 2, 2, 8}};
  uint64_t seed = 1;
  for (const Case& c : cases) {
    for (double first_slope : {20.0, 1.0, 1e-6}) {  // λ ≈ 0, moderate, λ ≈ 1
      for (bool with_state : {false, true}) {
        const auto slopes = slopes_for(c.heads, first_slope);
        Tensor q = random_tensor({c.batch, c.heads, c.length, c.dk}, seed++);
        Tensor k = random_tensor({c.batch, c.heads, c.length, c.dk}, seed++);
        Tensor v = random_tensor({c.batch, c.heads, c.length, c.dv}, seed++);
        Tensor kv_in =
            with_state ? random_tensor({c.batch, c.heads, c.dk, c.dv}, seed++) : Tensor();
        Tensor o = Tensor::empty(v.shape(), DType::F64), o_ref = o.clone();
        Tensor kv = Tensor::empty({c.batch, c.heads, c.dk, c.dv}, DType::F64), kv_ref = kv.clone();
        lightning_attention_forward(q, k, v, slopes, c.block, kv_in, o, kv);
        linear_attention_reference_forward(q, k, v, slopes, kv_in, o_ref, kv_ref);
        EXPECT_LT(max_relative_difference(o, o_ref), 1e-12)
            << "N " << c.length << " b " << c.block << " slope " << first_slope << " state "
            << with_state;
        EXPECT_LT(max_relative_difference(kv, kv_ref), 1e-12)
            << "N " << c.length << " b " << c.block;
      }
    }
  }
}

TEST(LightningAttention, Float32MatchesFloat64) {
  const auto slopes = slopes_for(2, 0.5);
  Tensor q = random_tensor({1, 2, 37, 8}, 50), k = random_tensor({1, 2, 37, 8}, 51),
         v = random_tensor({1, 2, 37, 8}, 52);
  Tensor o64 = Tensor::empty(v.shape(), DType::F64), o32 = Tensor::empty(v.shape(), DType::F32),
         none;
  lightning_attention_forward(q, k, v, slopes, 8, none, o64, none);
  lightning_attention_forward(q.to(DType::F32), k.to(DType::F32), v.to(DType::F32), slopes, 8, none,
                              o32, none);
  EXPECT_LT(max_relative_difference(o64, o32.to(DType::F64)), 1e-5);
}

TEST(LightningAttention, ChunksChainThroughTheState) {
  // [0, N) in one call equals [0, m) then [m, N) with KV_in = KV_out of the first
  // chunk (m not a multiple of the block), forward and backward.
  const int64_t B = 2, H = 2, N = 23, m = 10, dk = 6, d = 4, block = 4;
  const auto slopes = slopes_for(H, 0.3);
  Tensor q = random_tensor({B, H, N, dk}, 60), k = random_tensor({B, H, N, dk}, 61),
         v = random_tensor({B, H, N, d}, 62), d_o = random_tensor({B, H, N, d}, 63);
  auto part = [](const Tensor& t, int64_t begin, int64_t end) {
    Tensor out = Tensor::empty({t.dim(0), t.dim(1), end - begin, t.dim(3)}, DType::F64);
    for (int64_t bh = 0; bh < t.dim(0) * t.dim(1); ++bh) {
      for (int64_t n = begin; n < end; ++n) {
        for (int64_t c = 0; c < t.dim(3); ++c) {
          out.data<double>()[(bh * (end - begin) + n - begin) * t.dim(3) + c] =
              t.data<double>()[(bh * t.dim(2) + n) * t.dim(3) + c];
        }
      }
    }
    return out;
  };
  Tensor none;
  Tensor o = Tensor::empty(v.shape(), DType::F64);
  lightning_attention_forward(q, k, v, slopes, block, none, o, none);
  Tensor q1 = part(q, 0, m), k1 = part(k, 0, m), v1 = part(v, 0, m);
  Tensor q2 = part(q, m, N), k2 = part(k, m, N), v2 = part(v, m, N);
  Tensor o1 = Tensor::empty(v1.shape(), DType::F64), o2 = Tensor::empty(v2.shape(), DType::F64);
  Tensor state = Tensor::empty({B, H, dk, d}, DType::F64);
  lightning_attention_forward(q1, k1, v1, slopes, block, none, o1, state);
  lightning_attention_forward(q2, k2, v2, slopes, block, state, o2, none);
  EXPECT_LT(max_relative_difference(part(o, 0, m), o1), 1e-13);
  EXPECT_LT(max_relative_difference(part(o, m, N), o2), 1e-13);

  Tensor dq = Tensor::empty(q.shape(), DType::F64), dk_ = dq.clone(),
         dv = Tensor::empty(v.shape(), DType::F64);
  lightning_attention_backward(q, k, v, slopes, block, none, d_o, none, dq, dk_, dv, none);
  Tensor dq2 = Tensor::empty(q2.shape(), DType::F64), dk2 = dq2.clone(),
         dv2 = Tensor::empty(v2.shape(), DType::F64);
  Tensor d_state = Tensor::empty({B, H, dk, d}, DType::F64);
  lightning_attention_backward(q2, k2, v2, slopes, block, state, part(d_o, m, N), none, dq2, dk2,
                               dv2, d_state);
  Tensor dq1 = Tensor::empty(q1.shape(), DType::F64), dk1 = dq1.clone(),
         dv1 = Tensor::empty(v1.shape(), DType::F64);
  lightning_attention_backward(q1, k1, v1, slopes, block, none, part(d_o, 0, m), d_state, dq1, dk1,
                               dv1, none);
  EXPECT_LT(max_relative_difference(part(dq, 0, m), dq1), 1e-12);
  EXPECT_LT(max_relative_difference(part(dk_, 0, m), dk1), 1e-12);
  EXPECT_LT(max_relative_difference(part(dv, 0, m), dv1), 1e-12);
  EXPECT_LT(max_relative_difference(part(dq, m, N), dq2), 1e-12);
  EXPECT_LT(max_relative_difference(part(dk_, m, N), dk2), 1e-12);
  EXPECT_LT(max_relative_difference(part(dv, m, N), dv2), 1e-12);
}

TEST(LightningAttention, FiniteDifferenceGradients) {
  const std::vector<Case> cases = {{1, 2, 7, 3, 2, 3}, {2, 1, 5, 4, 3, 8}, {1, 1, 9, 2, 2, 1}};
  uint64_t seed = 100;
  for (const Case& c : cases) {
    for (double first_slope : {2.0, 1e-6}) {
      const auto slopes = slopes_for(c.heads, first_slope);
      Tensor q = random_tensor({c.batch, c.heads, c.length, c.dk}, seed++);
      Tensor k = random_tensor({c.batch, c.heads, c.length, c.dk}, seed++);
      Tensor v = random_tensor({c.batch, c.heads, c.length, c.dv}, seed++);
      Tensor kv_in = random_tensor({c.batch, c.heads, c.dk, c.dv}, seed++);
      Tensor r = random_tensor({c.batch, c.heads, c.length, c.dv}, seed++);
      Tensor s = random_tensor({c.batch, c.heads, c.dk, c.dv}, seed++);
      Tensor o = Tensor::empty(v.shape(), DType::F64),
             kv_out = Tensor::empty(kv_in.shape(), DType::F64);
      auto loss = [&] {
        lightning_attention_forward(q, k, v, slopes, c.block, kv_in, o, kv_out);
        return dot(o, r) + dot(kv_out, s);  // dL/do = r, dL/dkv_out = s
      };
      Tensor dq = Tensor::empty(q.shape(), DType::F64), dk = dq.clone(),
             dv = Tensor::empty(v.shape(), DType::F64);
      Tensor d_kv_in = Tensor::empty(kv_in.shape(), DType::F64);
      lightning_attention_backward(q, k, v, slopes, c.block, kv_in, r, s, dq, dk, dv, d_kv_in);
      EXPECT_LT(max_gradient_error(loss, q, dq), 1e-6) << "dq N " << c.length;
      EXPECT_LT(max_gradient_error(loss, k, dk), 1e-6) << "dk N " << c.length;
      EXPECT_LT(max_gradient_error(loss, v, dv), 1e-6) << "dv N " << c.length;
      EXPECT_LT(max_gradient_error(loss, kv_in, d_kv_in), 1e-6) << "dkv_in N " << c.length;
    }
  }
}

TEST(LightningAttention, CountedFlopsEqualTheFormulas) {
  const int64_t B = 2, H = 3, N = 29, dk = 6, dv = 4, block = 8;
  const auto slopes = slopes_for(H, 0.5);
  Tensor q = random_tensor({B, H, N, dk}, 200), k = random_tensor({B, H, N, dk}, 201),
         v = random_tensor({B, H, N, dv}, 202), d_o = random_tensor({B, H, N, dv}, 203);
  Tensor state = random_tensor({B, H, dk, dv}, 204);
  Tensor o = Tensor::empty(v.shape(), DType::F64), none;
  for (bool has_in : {false, true}) {
    for (bool has_out : {false, true}) {
      Tensor kv_in = has_in ? state : Tensor();
      Tensor kv_out = has_out ? Tensor::empty(state.shape(), DType::F64) : Tensor();
      {
        FlopScope scope;
        lightning_attention_forward(q, k, v, slopes, block, kv_in, o, kv_out);
        EXPECT_EQ(scope.flops(),
                  lightning_attention_forward_flops(B, H, N, dk, dv, block, has_in, has_out));
      }
      Tensor dq = Tensor::empty(q.shape(), DType::F64), dk_ = dq.clone(),
             dv_ = Tensor::empty(v.shape(), DType::F64);
      Tensor d_in = has_out ? Tensor::empty(state.shape(), DType::F64) : Tensor();
      FlopScope scope;
      lightning_attention_backward(q, k, v, slopes, block, kv_in, d_o, has_in ? state : none, dq,
                                   dk_, dv_, d_in);
      EXPECT_EQ(scope.flops(), lightning_attention_backward_flops(B, H, N, dk, dv, block, has_in,
                                                                  has_in, has_out));
    }
  }
}

TEST(LightningAttention, RejectsMismatchedShapes) {
  Tensor q = random_tensor({1, 2, 5, 3}, 1), v = random_tensor({1, 2, 4, 3}, 2);
  Tensor o = Tensor::empty({1, 2, 5, 3}, DType::F64), none;
  EXPECT_THROW(lightning_attention_forward(q, q, v, {0.1, 0.2}, 4, none, o, none), InternalError);
  Tensor v_ok = random_tensor({1, 2, 5, 3}, 3);
  EXPECT_THROW(lightning_attention_forward(q, q, v_ok, {0.1}, 4, none, o, none), InternalError);
}

}  // namespace linpar
