// Finite-difference checks (f64) of every pointwise/normalisation op's
// hand-written backward, plus the FLOP counts they report.
#include <gtest/gtest.h>

#include "core/op_stats.h"
#include "core/ops/activation.h"
#include "core/ops/cross_entropy.h"
#include "core/ops/embedding.h"
#include "core/ops/gemm.h"
#include "core/ops/lrpe.h"
#include "core/ops/srmsnorm.h"
#include "gradcheck.h"

namespace linpar {

using testing::dot;
using testing::max_gradient_error;
using testing::random_tensor;

constexpr double kTolerance = 1e-6;

TEST(OpsGradient, SrmsNorm) {
  Tensor x = random_tensor({5, 16}, 1), r = random_tensor({5, 16}, 2);
  Tensor y = Tensor::empty({5, 16}, DType::F64), rstd = Tensor::empty({5}, DType::F64);
  auto loss = [&] {
    srmsnorm_forward(x, 1e-6, y, rstd);
    return dot(y, r);
  };
  loss();
  Tensor dx = Tensor::empty({5, 16}, DType::F64);
  srmsnorm_backward(r, y, rstd, dx);
  EXPECT_LT(max_gradient_error(loss, x, dx), kTolerance);
  // Output rows have unit RMS (up to eps).
  double sum_sq = 0;
  for (int i = 0; i < 16; ++i) sum_sq += y.data<double>()[i] * y.data<double>()[i];
  EXPECT_NEAR(sum_sq / 16, 1.0, 1e-5);
}

TEST(OpsGradient, SiluAndGatingProduct) {
  Tensor x = random_tensor({40}, 3), r = random_tensor({40}, 4);
  Tensor y = Tensor::empty({40}, DType::F64);
  auto silu_loss = [&] {
    silu_forward(x, y);
    return dot(y, r);
  };
  silu_loss();
  Tensor dx = Tensor::empty({40}, DType::F64);
  silu_backward(r, x, dx);
  EXPECT_LT(max_gradient_error(silu_loss, x, dx), kTolerance);

  Tensor a = random_tensor({40}, 5), b = random_tensor({40}, 6);
  auto mul_loss = [&] {
    mul_forward(a, b, y);
    return dot(y, r);
  };
  Tensor da = Tensor::empty({40}, DType::F64), db = Tensor::empty({40}, DType::F64);
  mul_backward(r, a, b, da, db);
  EXPECT_LT(max_gradient_error(mul_loss, a, da), kTolerance);
  EXPECT_LT(max_gradient_error(mul_loss, b, db), kTolerance);
}

TEST(OpsGradient, LinearLayerBothGradients) {
  Tensor x = random_tensor({6, 8}, 7), w = random_tensor({5, 8}, 8), r = random_tensor({6, 5}, 9);
  Tensor y = Tensor::empty({6, 5}, DType::F64);
  auto loss = [&] {
    linear_forward(x, w, y);
    return dot(y, r);
  };
  Tensor dx = Tensor::empty({6, 8}, DType::F64), dw = Tensor::zeros({5, 8}, DType::F64);
  linear_backward(r, x, w, dx, dw);
  EXPECT_LT(max_gradient_error(loss, x, dx), kTolerance);
  EXPECT_LT(max_gradient_error(loss, w, dw), kTolerance);
}

TEST(OpsGradient, SgluChannelMixerComposition) {
  // SGLU(x) = ((x W1ᵀ) ⊙ (x W2ᵀ)) W3ᵀ through the same op calls the model makes.
  Tensor x = random_tensor({4, 6}, 10), w1 = random_tensor({10, 6}, 11),
         w2 = random_tensor({10, 6}, 12), w3 = random_tensor({6, 10}, 13),
         r = random_tensor({4, 6}, 14);
  Tensor a1 = Tensor::empty({4, 10}, DType::F64), a2 = a1.clone(), g = a1.clone();
  Tensor y = Tensor::empty({4, 6}, DType::F64);
  auto loss = [&] {
    linear_forward(x, w1, a1);
    linear_forward(x, w2, a2);
    mul_forward(a1, a2, g);
    linear_forward(g, w3, y);
    return dot(y, r);
  };
  loss();
  Tensor dg = Tensor::empty({4, 10}, DType::F64), dw3 = Tensor::zeros({6, 10}, DType::F64);
  linear_backward(r, g, w3, dg, dw3);
  Tensor da1 = dg.clone(), da2 = dg.clone();
  mul_backward(dg, a1, a2, da1, da2);
  Tensor dx = Tensor::empty({4, 6}, DType::F64), dw1 = Tensor::zeros({10, 6}, DType::F64),
         dw2 = Tensor::zeros({10, 6}, DType::F64);
  linear_backward(da1, x, w1, dx, dw1);
  linear_backward(da2, x, w2, dx, dw2, /*accumulate_dx=*/true);
  EXPECT_LT(max_gradient_error(loss, x, dx), kTolerance);
  EXPECT_LT(max_gradient_error(loss, w1, dw1), kTolerance);
  EXPECT_LT(max_gradient_error(loss, w2, dw2), kTolerance);
  EXPECT_LT(max_gradient_error(loss, w3, dw3), kTolerance);
}

TEST(OpsGradient, EmbeddingWithRepeatedTokens) {
  Tensor table = random_tensor({7, 5}, 15), r = random_tensor({6, 5}, 16);
  Tensor tokens = Tensor::from_vector<int32_t>({6}, {1, 3, 1, 6, 0, 3});
  Tensor y = Tensor::empty({6, 5}, DType::F64);
  auto loss = [&] {
    embedding_forward(tokens, table, 2.5, y);
    return dot(y, r);
  };
  Tensor d_table = Tensor::zeros({7, 5}, DType::F64);
  embedding_backward(r, tokens, 2.5, d_table);
  EXPECT_LT(max_gradient_error(loss, table, d_table), kTolerance);
  Tensor bad = Tensor::from_vector<int32_t>({1}, {7});
  Tensor y1 = Tensor::empty({1, 5}, DType::F64);
  EXPECT_THROW(embedding_forward(bad, table, 1.0, y1), UserError);
}

TEST(OpsGradient, CrossEntropy) {
  Tensor logits = random_tensor({5, 9}, 17, 3.0);
  Tensor targets = Tensor::from_vector<int32_t>({5}, {0, 8, 3, 3, 5});
  Tensor losses = Tensor::empty({5}, DType::F64);
  auto loss = [&] {
    cross_entropy_forward(logits, targets, losses);
    double total = 0;
    for (int i = 0; i < 5; ++i) total += losses.data<double>()[i];
    return total / 5;
  };
  Tensor d_logits = Tensor::empty({5, 9}, DType::F64);
  cross_entropy_backward(logits, targets, 1.0 / 5, d_logits);
  EXPECT_LT(max_gradient_error(loss, logits, d_logits), kTolerance);
  // Uniform logits give log V per token.
  Tensor flat = Tensor::zeros({1, 9}, DType::F64), one = Tensor::from_vector<int32_t>({1}, {4});
  Tensor l1 = Tensor::empty({1}, DType::F64);
  cross_entropy_forward(flat, one, l1);
  EXPECT_NEAR(l1.data<double>()[0], std::log(9.0), 1e-12);
}

TEST(OpsGradient, LrpeInputAndAngles) {
  const int64_t B = 2, H = 2, N = 5, d = 3;
  Tensor x = random_tensor({B, H, N, d}, 18), r = random_tensor({B, H, N, 2 * d}, 19);
  std::vector<double> theta0 = lrpe_initial_theta(H * d);
  Tensor theta = Tensor::from_vector<double>({H * d}, theta0);
  Tensor y = Tensor::empty({B, H, N, 2 * d}, DType::F64);
  const int64_t offset = 7;  // positions 7..11, as on a second sequence chunk
  auto loss = [&] {
    lrpe_forward(x, theta, offset, y);
    return dot(y, r);
  };
  Tensor dx = Tensor::empty({B, H, N, d}, DType::F64), d_theta = Tensor::zeros({H * d}, DType::F64);
  lrpe_backward(r, x, theta, offset, dx, d_theta);
  EXPECT_LT(max_gradient_error(loss, x, dx), kTolerance);
  EXPECT_LT(max_gradient_error(loss, theta, d_theta), kTolerance);
  EXPECT_DOUBLE_EQ(theta0[0], 1.0);
  EXPECT_NEAR(theta0[H * d - 1], std::pow(10000.0, -2.0 * 5 / 6), 1e-15);
}

TEST(OpsFlops, CountedFlopsMatchTheOpsOwnFormulas) {
  Tensor x = random_tensor({3, 8}, 20), w = random_tensor({4, 8}, 21);
  Tensor y = Tensor::empty({3, 4}, DType::F64), rstd = Tensor::empty({3}, DType::F64);
  FlopScope scope;
  linear_forward(x, w, y);
  EXPECT_EQ(scope.flops(), 2 * 3 * 4 * 8);
  Tensor n = Tensor::empty({3, 8}, DType::F64);
  srmsnorm_forward(x, 1e-6, n, rstd);
  EXPECT_EQ(scope.flops(), 2 * 3 * 4 * 8 + srmsnorm_forward_flops(3, 8));
}

}  // namespace linpar
