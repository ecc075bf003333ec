// cuBLASLt behind linear_forward/linear_backward: CUDA tensors give the CPU
// reference's results (f32 within 1e-5, bf16 within 1e-2, relative to the
// result's norm) on fresh random inputs of odd and larger shapes, every output
// written (poisoned with NaN first). Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/cuda/cuda_runtime.h"
#include "core/ops/gemm.h"
#include "gpu_compare.h"
#include "gradcheck.h"

namespace linpar {

using namespace testing;

TEST(GemmCuda, LinearForwardAndBackwardEqualTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  struct Shape3 {
    int64_t rows, in, out;
  };
  uint64_t seed = 1;
  for (const Shape3 s : {Shape3{37, 129, 65}, Shape3{512, 1024, 768}, Shape3{1, 64, 8}}) {
    for (DType dtype : {DType::F32, DType::BF16}) {
      // Inputs rounded to the GPU dtype first, so both sides see the same values.
      const Tensor x = random_tensor({s.rows, s.in}, seed++, 1.0, DType::F32).to(dtype).to(DType::F32);
      const Tensor w = random_tensor({s.out, s.in}, seed++, 0.05, DType::F32).to(dtype).to(DType::F32);
      const Tensor dy = random_tensor({s.rows, s.out}, seed++, 1.0, DType::F32).to(dtype).to(DType::F32);
      const Tensor dw0 = random_tensor({s.out, s.in}, seed++, 1.0, DType::F32).to(dtype).to(DType::F32);
      Tensor y = Tensor::empty({s.rows, s.out}, DType::F32), dx = Tensor::empty({s.rows, s.in}, DType::F32);
      Tensor dw = dw0.clone();
      linear_forward(x, w, y);
      linear_backward(dy, x, w, dx, dw);

      const Tensor xg = x.to(dtype).to(Device::CUDA), wg = w.to(dtype).to(Device::CUDA),
                   dyg = dy.to(dtype).to(Device::CUDA);
      Tensor yg = poisoned({s.rows, s.out}, dtype), dxg = poisoned({s.rows, s.in}, dtype);
      Tensor dwg = dw0.to(dtype).to(Device::CUDA);  // accumulated into: not poisoned
      linear_forward(xg, wg, yg);
      linear_backward(dyg, xg, wg, dxg, dwg);
      const double tolerance = dtype == DType::F32 ? 1e-5 : 1e-2;
      const std::string what = std::to_string(s.rows) + "x" + std::to_string(s.in) + "x" +
                               std::to_string(s.out) + " " + std::string(dtype_name(dtype));
      EXPECT_LT(relative_error(yg, y), tolerance) << "y " << what;
      EXPECT_LT(relative_error(dxg, dx), tolerance) << "dx " << what;
      EXPECT_LT(relative_error(dwg, dw), tolerance) << "dw " << what;
    }
  }
}

}  // namespace linpar
