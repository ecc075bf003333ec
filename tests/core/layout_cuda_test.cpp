// The CUDA head-layout copies against the CPU reference: exact (pure copies),
// f32 and bf16, head widths below, at and above a warp, the q/k/v/u blocks the
// token mixer cuts from one projection (u as a [B, 1, N, W] view), outputs
// poisoned with NaN first, and heads_to_columns leaving the other columns as
// they were. Skips without a GPU.
#include <gtest/gtest.h>

#include <string>

#include "core/cuda/cuda_runtime.h"
#include "core/ops/layout.h"
#include "gpu_compare.h"
#include "gradcheck.h"

namespace linpar {

using namespace testing;

namespace {
struct Case {
  int64_t batch, length, heads, head_dim;
};
const Case kCases[] = {{2, 5, 3, 7}, {1, 33, 4, 32}, {3, 17, 2, 130}};
}  // namespace

TEST(LayoutCuda, HeadsFromColumnsEqualsTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 501;
  for (const Case& c : kCases) {
    const int64_t Dl = c.heads * c.head_dim, width = 4 * Dl + 3;  // q, k, v, u and a spare tail
    for (DType dtype : {DType::F32, DType::BF16}) {
      const Tensor x = random_tensor({c.batch, c.length, width}, seed++, 1.0, DType::F32)
                           .to(dtype)
                           .to(DType::F32);
      const Tensor xg = x.to(dtype).to(Device::CUDA);
      const std::string what = std::string(dtype_name(dtype)) + " d " + std::to_string(c.head_dim);
      for (int64_t block = 0; block < 3; ++block) {  // q, k, v
        const Shape heads{c.batch, c.heads, c.length, c.head_dim};
        Tensor y = Tensor::empty(heads, DType::F32), yg = poisoned(heads, dtype);
        heads_from_columns(x, block * Dl, y);
        heads_from_columns(xg, block * Dl, yg);
        EXPECT_EQ(relative_error(yg, y), 0.0) << "block " << block << " " << what;
      }
      // u: the fourth block as one head of width Dl, into a [B, N, Dl] tensor's view.
      Tensor u = Tensor::empty({c.batch, c.length, Dl}, DType::F32);
      Tensor ug = poisoned({c.batch, c.length, Dl}, dtype);
      Tensor u_view = u.reshape({c.batch, 1, c.length, Dl}),
             ug_view = ug.reshape({c.batch, 1, c.length, Dl});
      heads_from_columns(x, 3 * Dl, u_view);
      heads_from_columns(xg, 3 * Dl, ug_view);
      EXPECT_EQ(relative_error(ug, u), 0.0) << "u " << what;
    }
  }
}

TEST(LayoutCuda, HeadsToColumnsEqualsTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 601;
  for (const Case& c : kCases) {
    const int64_t Dl = c.heads * c.head_dim, width = 4 * Dl + 3;
    for (DType dtype : {DType::F32, DType::BF16}) {
      auto input = [&](const Shape& s) {
        return random_tensor(s, seed++, 1.0, DType::F32).to(dtype).to(DType::F32);
      };
      // The columns start random: what no block writes must survive.
      Tensor x = input({c.batch, c.length, width});
      Tensor xg = x.to(dtype).to(Device::CUDA);
      const std::string what = std::string(dtype_name(dtype)) + " d " + std::to_string(c.head_dim);
      for (int64_t block : {2, 0}) {  // v then q; k, u and the tail stay as they were
        const Tensor y = input({c.batch, c.heads, c.length, c.head_dim});
        heads_to_columns(y, block * Dl, x);
        heads_to_columns(y.to(dtype).to(Device::CUDA), block * Dl, xg);
        EXPECT_EQ(relative_error(xg, x), 0.0) << "block " << block << " " << what;
      }
      const Tensor u = input({c.batch, c.length, Dl});
      heads_to_columns(u.reshape({c.batch, 1, c.length, Dl}), 3 * Dl, x);
      heads_to_columns(u.to(dtype).to(Device::CUDA).reshape({c.batch, 1, c.length, Dl}), 3 * Dl,
                       xg);
      EXPECT_EQ(relative_error(xg, x), 0.0) << "u " << what;
    }
  }
}

}  // namespace linpar
