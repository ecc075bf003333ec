// SRMSNorm's head-layout phases are their plain versions composed with the
// layout copies, bit for bit: row sums and apply reading the attention's
// [B, H, N, d] equal heads_to_columns then the plain phase; the backward
// apply writing [B, H, N, d] equals the plain one then heads_from_columns.
// f32 and f64, a row spread over ranks (full width twice the local one), and
// the FLOPs counted are the plain phases'.
#include "core/ops/srmsnorm.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/op_stats.h"
#include "core/ops/layout.h"
#include "gradcheck.h"

namespace linpar {

using testing::random_tensor;

namespace {

struct Case {
  int64_t batch, length, heads, head_dim;
};
const Case kCases[] = {{2, 5, 3, 7}, {1, 9, 2, 8}, {3, 4, 4, 16}};

void expect_identical(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.numel(), want.numel()) << what;
  const std::vector<double> g = got.to(DType::F64).to_vector<double>();
  const std::vector<double> w = want.to(DType::F64).to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(g[i], w[i]) << what << " at " << i;
}

}  // namespace

TEST(SrmsnormHeads, EachPhaseEqualsTheLayoutCopyComposedWithThePlainPhase) {
  uint64_t seed = 1;
  for (const Case& c : kCases) {
    for (DType dtype : {DType::F32, DType::F64}) {
      const int64_t B = c.batch, N = c.length, H = c.heads, d = c.head_dim, Dl = H * d;
      const int64_t rows = B * N, full_width = 2 * Dl;  // as under TP 2
      const double eps = 1e-6;
      const std::string what = std::string(dtype_name(dtype)) + " d " + std::to_string(d);
      const Shape heads{B, H, N, d}, columns{B, N, Dl};
      const Tensor attention = random_tensor(heads, seed++, 1.5, dtype);

      // Forward: sums and apply from the head layout vs from the columns copy.
      Tensor attention_columns = Tensor::empty(columns, dtype);
      heads_to_columns(attention, 0, attention_columns);
      Tensor sums = Tensor::empty({rows}, dtype), sums_h = Tensor::empty({rows}, dtype);
      FlopScope plain_sums;
      srmsnorm_row_sums(attention_columns, sums);
      FlopScope heads_sums;
      srmsnorm_row_sums_heads(attention, sums_h);
      expect_identical(sums_h, sums, "sums " + what);
      EXPECT_EQ(heads_sums.flops(), plain_sums.flops() - heads_sums.flops()) << what;

      Tensor y = Tensor::empty(columns, dtype), rstd = Tensor::empty({rows}, dtype);
      Tensor y_h = Tensor::empty(columns, dtype), rstd_h = Tensor::empty({rows}, dtype);
      srmsnorm_apply(attention_columns, sums, full_width, eps, y, rstd);
      FlopScope heads_apply;
      srmsnorm_apply_heads(attention, sums, full_width, eps, y_h, rstd_h);
      expect_identical(y_h, y, "y " + what);
      expect_identical(rstd_h, rstd, "rstd " + what);
      EXPECT_EQ(heads_apply.flops(), rows * Dl) << what;

      // Backward: the apply writing the head layout vs the columns then a copy.
      const Tensor dy = random_tensor(columns, seed++, 1.0, dtype);
      Tensor dots = Tensor::empty({rows}, dtype);
      srmsnorm_row_dots(dy, y, dots);
      Tensor dx_columns = Tensor::empty(columns, dtype), dx = Tensor::empty(heads, dtype);
      FlopScope plain_backward;
      srmsnorm_backward_apply(dy, y, rstd, dots, full_width, dx_columns);
      heads_from_columns(dx_columns, 0, dx);
      Tensor dx_h = random_tensor(heads, seed++, 1.0, dtype);  // overwritten, not accumulated
      FlopScope heads_backward;
      srmsnorm_backward_apply_heads(dy, y, rstd, dots, full_width, dx_h);
      expect_identical(dx_h, dx, "dx " + what);
      EXPECT_EQ(heads_backward.flops(), plain_backward.flops() - heads_backward.flops()) << what;
    }
  }
}

}  // namespace linpar
