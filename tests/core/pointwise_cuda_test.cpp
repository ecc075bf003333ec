// SiLU, products and SRMSNorm on the GPU against the CPU reference on fresh
// random inputs (f32 within 1e-5, bf16 within 1e-2, relative to the result's
// norm), outputs poisoned with NaN first, accumulate paths included, and
// SRMSNorm's head-layout phases (one-element and 16-byte-vector paths). Skips
// without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/cuda/cuda_runtime.h"
#include "core/ops/activation.h"
#include "core/ops/layout.h"
#include "core/ops/srmsnorm.h"
#include "gpu_compare.h"
#include "gradcheck.h"

namespace linpar {

using namespace testing;

TEST(PointwiseCuda, SiluAndProductsEqualTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 11;
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Shape shape{3, 1001};
    auto input = [&] { return random_tensor(shape, seed++, 2.0, DType::F32).to(dtype).to(DType::F32); };
    auto gpu = [&](const Tensor& t) { return t.to(dtype).to(Device::CUDA); };
    const Tensor x = input(), dy = input(), a = input(), b = input();
    Tensor y = Tensor::empty(shape, DType::F32), dx = y.clone(), p = y.clone(), da = y.clone(), db = y.clone();
    silu_forward(x, y);
    silu_backward(dy, x, dx);
    mul_forward(a, b, p);
    mul_backward(dy, a, b, da, db);
    Tensor yg = poisoned(shape, dtype), dxg = poisoned(shape, dtype), pg = poisoned(shape, dtype),
           dag = poisoned(shape, dtype), dbg = poisoned(shape, dtype);
    silu_forward(gpu(x), yg);
    silu_backward(gpu(dy), gpu(x), dxg);
    mul_forward(gpu(a), gpu(b), pg);
    mul_backward(gpu(dy), gpu(a), gpu(b), dag, dbg);
    EXPECT_LT(relative_error(yg, y), gpu_tolerance(dtype)) << dtype_name(dtype);
    EXPECT_LT(relative_error(dxg, dx), gpu_tolerance(dtype)) << dtype_name(dtype);
    EXPECT_LT(relative_error(pg, p), gpu_tolerance(dtype)) << dtype_name(dtype);
    EXPECT_LT(relative_error(dag, da), gpu_tolerance(dtype)) << dtype_name(dtype);
    EXPECT_LT(relative_error(dbg, db), gpu_tolerance(dtype)) << dtype_name(dtype);
  }
}

TEST(PointwiseCuda, SrmsnormEqualsTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 31;
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (int64_t width : {7, 1000, 2048}) {
      const int64_t rows = 33;
      const Shape shape{rows, width};
      auto input = [&] { return random_tensor(shape, seed++, 1.5, DType::F32).to(dtype).to(DType::F32); };
      auto gpu = [&](const Tensor& t) { return t.to(dtype).to(Device::CUDA); };
      const Tensor x = input(), dy = input(), dx0 = input();
      Tensor y = Tensor::empty(shape, DType::F32), rstd = Tensor::empty({rows}, DType::F32);
      srmsnorm_forward(x, 1e-6, y, rstd);
      Tensor dx = dx0.clone();
      srmsnorm_backward(dy, y, rstd, dx, /*accumulate=*/true);

      Tensor yg = poisoned(shape, dtype), rstd_g = poisoned({rows}, DType::F32);
      srmsnorm_forward(gpu(x), 1e-6, yg, rstd_g);
      Tensor dxg = gpu(dx0);
      // The backward reads the CPU's y (in the GPU dtype) so both see one input.
      srmsnorm_backward(gpu(dy), gpu(y), rstd.to(Device::CUDA), dxg, true);
      const std::string what = std::string(dtype_name(dtype)) + " width " + std::to_string(width);
      EXPECT_LT(relative_error(yg, y), gpu_tolerance(dtype)) << "y " << what;
      EXPECT_LT(relative_error(rstd_g, rstd), 1e-5) << "rstd " << what;
      EXPECT_LT(relative_error(dxg, dx), dtype == DType::F32 ? 1e-5 : 2e-2) << "dx " << what;
    }
  }
}

TEST(PointwiseCuda, SrmsnormHeadLayoutPhasesEqualTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  struct Case {
    int64_t batch, heads, length, head_dim;
  };
  // d 7 and 130: one element per thread; 8, 32, 128: 16-byte vectors (for
  // bf16 at 8 and up, for f32 at every multiple of 4); 16 × 128 is a
  // tnl-1b-wide row (2048), more than one vector per thread in f32.
  const Case cases[] = {
      {2, 3, 5, 7}, {1, 4, 33, 32}, {3, 2, 17, 130}, {2, 4, 9, 8}, {1, 16, 20, 128}};
  uint64_t seed = 41;
  for (const Case& c : cases) {
    for (DType dtype : {DType::F32, DType::BF16}) {
      const int64_t rows = c.batch * c.length, width = c.heads * c.head_dim;
      const int64_t full_width = 2 * width;  // a row spread over two TP ranks
      const Shape heads{c.batch, c.heads, c.length, c.head_dim}, columns{c.batch, c.length, width};
      auto input = [&](const Shape& s) {
        return random_tensor(s, seed++, 1.5, DType::F32).to(dtype).to(DType::F32);
      };
      auto gpu = [&](const Tensor& t) { return t.to(dtype).to(Device::CUDA); };
      const std::string what = std::string(dtype_name(dtype)) + " H " + std::to_string(c.heads) +
                               " d " + std::to_string(c.head_dim);
      const Tensor x = input(heads), dy = input(columns);

      Tensor sums = Tensor::empty({rows}, DType::F32), y = Tensor::empty(columns, DType::F32),
             rstd = sums.clone(), dots = sums.clone(), dx = Tensor::empty(heads, DType::F32);
      srmsnorm_row_sums_heads(x, sums);
      srmsnorm_apply_heads(x, sums, full_width, 1e-6, y, rstd);
      // The backward reads y in the GPU dtype on both sides.
      const Tensor y_rounded = y.to(dtype).to(DType::F32);
      srmsnorm_row_dots(dy, y_rounded, dots);
      srmsnorm_backward_apply_heads(dy, y_rounded, rstd, dots, full_width, dx);

      Tensor sums_g = poisoned({rows}, DType::F32), yg = poisoned(columns, dtype),
             rstd_g = poisoned({rows}, DType::F32), dxg = poisoned(heads, dtype);
      srmsnorm_row_sums_heads(gpu(x), sums_g);
      // Each phase gets the CPU's statistics, so it is compared on its own.
      srmsnorm_apply_heads(gpu(x), sums.to(Device::CUDA), full_width, 1e-6, yg, rstd_g);
      srmsnorm_backward_apply_heads(gpu(dy), gpu(y_rounded), rstd.to(Device::CUDA),
                                    dots.to(Device::CUDA), full_width, dxg);
      EXPECT_LT(relative_error(sums_g, sums), 1e-5) << "sums " << what;
      EXPECT_LT(relative_error(yg, y), gpu_tolerance(dtype)) << "y " << what;
      EXPECT_LT(relative_error(rstd_g, rstd), 1e-5) << "rstd " << what;
      EXPECT_LT(relative_error(dxg, dx), gpu_tolerance(dtype)) << "dx " << what;
    }
  }
}

}  // namespace linpar
