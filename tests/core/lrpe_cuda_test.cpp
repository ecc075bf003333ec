// The CUDA LRPE against the CPU reference on fresh random inputs: head widths
// of 7, a warp and more than one warp, lengths that are no multiple of the
// backward's tile, position offsets (sequence-parallel chunks) up to a few
// thousand, f32 and bf16 operands, dθ accumulated over two calls into an f32
// or bf16 gradient, outputs poisoned with NaN first. Skips without a GPU.
//
// Precision: both sides form the angle θ·p as one f32 product of the same f32
// θ and the exact position, so against the CPU's f32 path the GPU differs
// only by sincosf's and the sums' rounding (1e-5 holds). Against an f64
// reference the f32 angle itself is off by up to |θ·p|·2⁻²⁴ rad (2.8e-4 at
// θ ≈ 1, p ≈ 4600); that check uses exactly this bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/cuda/cuda_runtime.h"
#include "core/ops/lrpe.h"
#include "gpu_compare.h"
#include "gradcheck.h"

namespace linpar {

using namespace testing;

namespace {

struct Case {
  int64_t batch, heads, length, head_dim, position_offset;
};
const Case kCases[] = {
    {2, 3, 45, 7, 0}, {1, 2, 3000, 16, 1234}, {2, 4, 130, 64, 5}, {1, 1, 70, 40, 4096}};

// The model's initial angles, each scaled by a random factor in about [0.8, 1.2].
Tensor random_theta(int64_t width, uint64_t seed) {
  std::vector<double> theta = lrpe_initial_theta(width);
  const Tensor noise = random_tensor({width}, seed, 0.1);
  for (int64_t c = 0; c < width; ++c)
    theta[static_cast<size_t>(c)] *= std::exp(noise.data<double>()[c]);
  return Tensor::from_vector<double>({width}, theta).to(DType::F32);
}

std::string describe(const Case& c, DType dtype) {
  return std::string(dtype_name(dtype)) + " B " + std::to_string(c.batch) + " H " +
         std::to_string(c.heads) + " N " + std::to_string(c.length) + " d " +
         std::to_string(c.head_dim) + " offset " + std::to_string(c.position_offset);
}

}  // namespace

TEST(LrpeCuda, ForwardEqualsTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 701;
  for (const Case& c : kCases) {
    const Shape shape{c.batch, c.heads, c.length, c.head_dim};
    const Shape rotated{c.batch, c.heads, c.length, 2 * c.head_dim};
    for (DType dtype : {DType::F32, DType::BF16}) {
      const Tensor x = random_tensor(shape, seed++, 1.0, DType::F32).to(dtype).to(DType::F32);
      const Tensor theta = random_theta(c.heads * c.head_dim, seed++).to(dtype).to(DType::F32);
      Tensor y = Tensor::empty(rotated, DType::F32), yg = poisoned(rotated, dtype);
      lrpe_forward(x, theta, c.position_offset, y);
      lrpe_forward(x.to(dtype).to(Device::CUDA), theta.to(dtype).to(Device::CUDA),
                   c.position_offset, yg);
      EXPECT_LT(relative_error(yg, y), gpu_tolerance(dtype)) << describe(c, dtype);

      if (dtype == DType::F32) {
        // Against f64 angles: the f32 product's rounding, |θ·p|·2⁻²⁴, bounds
        // each element's relative error; 1e-6 more for sincosf and the products.
        Tensor y64 = Tensor::empty(rotated, DType::F64);
        lrpe_forward(x.to(DType::F64), theta.to(DType::F64), c.position_offset, y64);
        const std::vector<float> t = theta.to_vector<float>();
        const double max_theta = std::abs(*std::max_element(
            t.begin(), t.end(), [](float a, float b) { return std::abs(a) < std::abs(b); }));
        const double max_angle = max_theta * static_cast<double>(c.position_offset + c.length - 1);
        EXPECT_LT(relative_error(yg, y64), max_angle * std::ldexp(1.0, -24) + 1e-6)
            << "vs f64 " << describe(c, dtype);
      }
    }
  }
}

TEST(LrpeCuda, BackwardEqualsTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 801;
  for (const Case& c : kCases) {
    const Shape shape{c.batch, c.heads, c.length, c.head_dim};
    const Shape rotated{c.batch, c.heads, c.length, 2 * c.head_dim};
    const int64_t width = c.heads * c.head_dim;
    // (operands, dθ): f32; bf16 into an f32 gradient (mixed precision); bf16.
    for (auto [dtype, grad_dtype] :
         {std::pair{DType::F32, DType::F32}, std::pair{DType::BF16, DType::F32},
          std::pair{DType::BF16, DType::BF16}}) {
      auto input = [&](const Shape& s) {
        return random_tensor(s, seed++, 1.0, DType::F32).to(dtype).to(DType::F32);
      };
      auto gpu = [&](const Tensor& t) { return t.to(dtype).to(Device::CUDA); };
      const Tensor x = input(shape), dy1 = input(rotated), dy2 = input(rotated);
      const Tensor theta = random_theta(width, seed++).to(dtype).to(DType::F32);
      const Tensor d_theta0 =
          random_tensor({width}, seed++, 100.0, DType::F32).to(grad_dtype).to(DType::F32);

      // Two calls accumulate into dθ, as q's and k's do in the model.
      Tensor dx = Tensor::empty(shape, DType::F32), d_theta = d_theta0.clone();
      lrpe_backward(dy1, x, theta, c.position_offset, dx, d_theta);
      lrpe_backward(dy2, x, theta, c.position_offset, dx, d_theta);
      Tensor dxg = poisoned(shape, dtype), d_theta_g = d_theta0.to(grad_dtype).to(Device::CUDA);
      lrpe_backward(gpu(dy1), gpu(x), gpu(theta), c.position_offset, dxg, d_theta_g);
      dxg = poisoned(shape, dtype);  // the second call must write all of dx again
      lrpe_backward(gpu(dy2), gpu(x), gpu(theta), c.position_offset, dxg, d_theta_g);
      const std::string what = describe(c, dtype) + " dθ " + std::string(dtype_name(grad_dtype));
      EXPECT_LT(relative_error(dxg, dx), gpu_tolerance(dtype)) << "dx " << what;
      // f32 sums of the same f32 terms in another order (bf16 operands are
      // exact in f32); a bf16 dθ is rounded once per call.
      EXPECT_LT(relative_error(d_theta_g, d_theta), gpu_tolerance(grad_dtype)) << "dθ " << what;
    }
  }
}

}  // namespace linpar
