// CPU reference vs CUDA kernel for the elementwise ops; the CUDA half skips
// cleanly on machines without a GPU (CI), and runs on the GPU machine.
#include "core/ops/elementwise.h"

#include <gtest/gtest.h>

#include "core/cuda/cuda_runtime.h"
#include "core/rng.h"

namespace linpar {

namespace {
Tensor random_tensor(int64_t n, uint64_t seed) {
  CounterRng rng(seed, "elementwise_test");
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = static_cast<float>(rng.normal(static_cast<uint64_t>(i)));
  return Tensor::from_vector<float>({n}, v);
}
}  // namespace

TEST(Elementwise, AxpyCpuMatchesDefinition) {
  Tensor x = random_tensor(1000, 1), y = random_tensor(1000, 2);
  std::vector<float> before = y.to_vector<float>();
  axpy(0.5, x, y);
  for (int64_t i = 0; i < 1000; ++i) {
    EXPECT_FLOAT_EQ(y.data<float>()[i], before[static_cast<size_t>(i)] + 0.5f * x.data<float>()[i]);
  }
}

TEST(Elementwise, AxpyCudaMatchesCpu) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  const int64_t n = 1 << 20;  // spans many blocks of the grid-stride loop
  Tensor x = random_tensor(n, 3), y = random_tensor(n, 4);
  Tensor y_gpu = y.to(Device::CUDA);
  axpy(-1.25, x.to(Device::CUDA), y_gpu);
  axpy(-1.25, x, y);
  std::vector<float> got = y_gpu.to_vector<float>();
  for (int64_t i = 0; i < n; ++i)
    ASSERT_NEAR(got[static_cast<size_t>(i)], y.data<float>()[i],
                1e-5f * (1 + std::abs(y.data<float>()[i])));
}

TEST(Elementwise, AxpyCudaBf16MatchesCpuWithinBf16Rounding) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  const int64_t n = 4096;
  Tensor x = random_tensor(n, 5), y = random_tensor(n, 6);
  Tensor y_gpu = y.to(DType::BF16).to(Device::CUDA);
  axpy(2.0, x.to(DType::BF16).to(Device::CUDA), y_gpu);
  std::vector<float> got = y_gpu.to(Device::CPU).to(DType::F32).to_vector<float>();
  axpy(2.0, x, y);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_NEAR(got[static_cast<size_t>(i)], y.data<float>()[i],
                2e-2f * (1 + std::abs(y.data<float>()[i])));
}

TEST(Elementwise, SumSquaresAccumulatesInDouble) {
  Tensor x = Tensor::from_vector<float>({3}, {1, 2, 3});
  EXPECT_DOUBLE_EQ(sum_squares(x), 14.0);
}

}  // namespace linpar
