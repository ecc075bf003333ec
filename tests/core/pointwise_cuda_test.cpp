// SiLU, products and SRMSNorm on the GPU against the CPU reference on fresh
// random inputs (f32 within 1e-5, bf16 within 1e-2, relative to the result's
// norm), outputs poisoned with NaN first, accumulate paths included. Skips
// without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/cuda/cuda_runtime.h"
#include "core/ops/activation.h"
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

}  // namespace linpar
