// The CUDA q/k/v/u split against the CPU reference on fresh random inputs:
// f32 within 1e-5, bf16 within 1e-2 (relative to the result's norm), head
// widths that take the one-element path (7, 130) and the 16-byte-vector path
// (8: one bf16 vector per head, 32, 128), rows narrower and wider than a CTA,
// outputs poisoned with NaN first (every element must be written). Skips
// without a GPU.
#include <gtest/gtest.h>

#include <string>

#include "core/cuda/cuda_runtime.h"
#include "core/ops/split_qkvu.h"
#include "gpu_compare.h"
#include "gradcheck.h"

namespace linpar {

using namespace testing;

namespace {

struct Case {
  int64_t batch, length, heads, head_dim;
};
const Case kCases[] = {
    {2, 5, 3, 7}, {1, 33, 4, 32}, {3, 17, 2, 130}, {2, 9, 4, 8}, {1, 40, 16, 128}};

std::string describe(const Case& c, DType dtype) {
  return std::string(dtype_name(dtype)) + " B " + std::to_string(c.batch) + " N " +
         std::to_string(c.length) + " H " + std::to_string(c.heads) + " d " +
         std::to_string(c.head_dim);
}

}  // namespace

TEST(SplitQkvuCuda, ForwardEqualsTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 801;
  for (const Case& c : kCases) {
    const int64_t B = c.batch, N = c.length, Dl = c.heads * c.head_dim;
    const Shape heads{B, c.heads, N, c.head_dim}, columns{B, N, Dl};
    for (DType dtype : {DType::F32, DType::BF16}) {
      // Inputs rounded to the GPU dtype, so both sides read the same values.
      const Tensor qkvu =
          random_tensor({B, N, 4 * Dl}, seed++, 2.0, DType::F32).to(dtype).to(DType::F32);
      Tensor q = Tensor::empty(heads, DType::F32), k = q.clone(), v = q.clone(),
             u = Tensor::empty(columns, DType::F32);
      split_qkvu_forward(qkvu, q, k, v, u);
      Tensor qg = poisoned(heads, dtype), kg = poisoned(heads, dtype), vg = poisoned(heads, dtype),
             ug = poisoned(columns, dtype);
      split_qkvu_forward(qkvu.to(dtype).to(Device::CUDA), qg, kg, vg, ug);
      const std::string what = describe(c, dtype);
      EXPECT_LT(relative_error(qg, q), gpu_tolerance(dtype)) << "q " << what;
      EXPECT_LT(relative_error(kg, k), gpu_tolerance(dtype)) << "k " << what;
      EXPECT_EQ(relative_error(vg, v), 0.0) << "v " << what;  // copies: exact
      EXPECT_EQ(relative_error(ug, u), 0.0) << "u " << what;
    }
  }
}

TEST(SplitQkvuCuda, BackwardEqualsTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 901;
  for (const Case& c : kCases) {
    const int64_t B = c.batch, N = c.length, Dl = c.heads * c.head_dim;
    const Shape heads{B, c.heads, N, c.head_dim}, columns{B, N, Dl}, all{B, N, 4 * Dl};
    for (DType dtype : {DType::F32, DType::BF16}) {
      auto input = [&](const Shape& s, double std) {
        return random_tensor(s, seed++, std, DType::F32).to(dtype).to(DType::F32);
      };
      auto gpu = [&](const Tensor& t) { return t.to(dtype).to(Device::CUDA); };
      const Tensor qkvu = input(all, 2.0), dq = input(heads, 1.0), dk = input(heads, 1.0),
                   dv = input(heads, 1.0), du = input(columns, 1.0);
      Tensor d_qkvu = Tensor::empty(all, DType::F32);
      split_qkvu_backward(dq, dk, dv, du, qkvu, d_qkvu);
      Tensor d_qkvu_g = poisoned(all, dtype);
      split_qkvu_backward(gpu(dq), gpu(dk), gpu(dv), gpu(du), gpu(qkvu), d_qkvu_g);
      EXPECT_LT(relative_error(d_qkvu_g, d_qkvu), gpu_tolerance(dtype)) << describe(c, dtype);
    }
  }
}

}  // namespace linpar
