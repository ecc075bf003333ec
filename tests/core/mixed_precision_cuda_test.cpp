// The pieces of mixed-precision training on the GPU against the CPU: f32 ↔
// bf16 conversion (bit-exact: both round to nearest even), Σx² into one f64
// total, bf16 scaling, bf16 products accumulating into an f32 weight gradient,
// and the caching allocator's reuse and accounting. Skips without a GPU.
#include <gtest/gtest.h>

#include "core/cuda/cuda_runtime.h"
#include "core/ops/elementwise.h"
#include "core/ops/gemm.h"
#include "gpu_compare.h"
#include "gradcheck.h"

namespace linpar {

using namespace testing;

TEST(MixedPrecisionCuda, ConversionRoundsLikeTheCpu) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  const Tensor x = random_tensor({3, 1001}, 5, 3.0, DType::F32);
  Tensor down = poisoned({3, 1001}, DType::BF16);
  convert(x.to(Device::CUDA), down);
  const Tensor want = x.to(DType::BF16);
  const Tensor got = down.to(Device::CPU);
  for (int64_t i = 0; i < x.numel(); ++i)
    ASSERT_EQ(got.data<bf16>()[i].bits, want.data<bf16>()[i].bits) << "element " << i;
  Tensor up = poisoned({3, 1001}, DType::F32);
  convert(down, up);
  EXPECT_EQ(relative_error(up, want.to(DType::F32)), 0.0);
  // Tensor::to(DType) on the GPU gives the same.
  EXPECT_EQ(relative_error(x.to(Device::CUDA).to(DType::BF16), want), 0.0);
}

TEST(MixedPrecisionCuda, SumOfSquaresAndScaleEqualTheCpu) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  const Tensor a = random_tensor({1000, 37}, 7, 1.0, DType::F32);
  const Tensor b = random_tensor({5}, 8, 2.0, DType::F32).to(DType::BF16);
  const Tensor c = random_tensor({300000}, 9, 0.5, DType::F32);
  const Tensor ag = a.to(Device::CUDA), bg = b.to(Device::CUDA), cg = c.to(Device::CUDA);
  const double want = sum_squares(a) + sum_squares(b.to(DType::F32)) + sum_squares(c);
  const double got = sum_squares(std::vector<const Tensor*>{&ag, &bg, &cg});
  EXPECT_NEAR(got, want, 1e-6 * want);
  Tensor scaled = bg.clone();
  scale(0.5, scaled);  // halving is exact in bf16
  Tensor half = b.to(DType::F32);
  scale(0.5, half);
  EXPECT_EQ(relative_error(scaled, half), 0.0);
}

TEST(MixedPrecisionCuda, Bf16ProductsAccumulateIntoAnF32WeightGradient) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  const int64_t rows = 300, in = 96, out = 40;
  // bf16-representable inputs, so both sides multiply the same numbers.
  const Tensor x = random_tensor({rows, in}, 1, 1.0, DType::F32).to(DType::BF16).to(DType::F32);
  const Tensor w = random_tensor({out, in}, 2, 0.1, DType::F32).to(DType::BF16).to(DType::F32);
  const Tensor dy = random_tensor({rows, out}, 3, 1.0, DType::F32).to(DType::BF16).to(DType::F32);
  const Tensor dw0 = random_tensor({out, in}, 4, 1.0, DType::F32);
  Tensor dx, dw = dw0.clone();
  linear_backward(dy, x, w, dx, dw);
  Tensor dwg = dw0.to(Device::CUDA), none;  // f32, accumulated into
  linear_backward(dy.to(DType::BF16).to(Device::CUDA), x.to(DType::BF16).to(Device::CUDA),
                  w.to(DType::BF16).to(Device::CUDA), none, dwg);
  // f32 accumulation of exact bf16 products: f32 accuracy, not bf16's.
  EXPECT_LT(relative_error(dwg, dw), 1e-5);
}

TEST(MixedPrecisionCuda, TheCachingAllocatorReusesFreedBlocks) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  const cuda::MemoryStats before = cuda::memory_stats();
  void* first = nullptr;
  {
    Tensor t = Tensor::empty({1 << 20}, DType::F32, Device::CUDA);  // 4 MiB
    first = t.raw_data();
    EXPECT_GE(cuda::memory_stats().in_use_bytes, before.in_use_bytes + (4u << 20));
  }
  EXPECT_EQ(cuda::memory_stats().in_use_bytes, before.in_use_bytes);
  Tensor again = Tensor::empty({1 << 20}, DType::F32, Device::CUDA);
  EXPECT_EQ(again.raw_data(), first);  // the same block, no cudaMalloc
  EXPECT_GE(cuda::memory_stats().peak_in_use_bytes, before.in_use_bytes + (4u << 20));
  cuda::release_cached_memory();
  EXPECT_EQ(cuda::memory_stats().cached_bytes, 0u);
}

}  // namespace linpar
