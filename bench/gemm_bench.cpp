// bf16 GEMM rates through linpar's cuBLASLt path at the shapes of the
// TransNormerLLM presets' linear layers (8192 tokens per micro-batch), plus a
// square 8192³ product and a device-to-device copy: the measured ceilings that
// MFU and bandwidth fractions are quoted against. Prints one line per shape:
//   name m n k median_ms tflops
// Usage: gemm_bench [reps]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/cuda_timing.h"
#include "core/cuda/cuda_check.h"
#include "core/cuda/gemm_cublaslt.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace {

using linpar::bench::median_ms;

using linpar::DType;
using linpar::Device;
using linpar::Tensor;

Tensor random_bf16(int64_t rows, int64_t cols, uint64_t seed) {
  Tensor t = Tensor::empty({rows, cols}, DType::F32);
  linpar::CounterRng rng(seed, "gemm_bench");
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(0.1 * rng.normal(static_cast<uint64_t>(i)));
  return t.to(DType::BF16).to(Device::CUDA);
}


}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20;
  struct Case {
    const char* name;
    int64_t m, n, k;
  };
  // y = x·Wᵀ: m tokens, n outputs, k inputs (tnl-1b: D 2048, glu 5632, vocab 64000).
  const std::vector<Case> cases = {{"square_8192", 8192, 8192, 8192},  {"1b_qkvu", 8192, 8192, 2048},
                                   {"1b_out_proj", 8192, 2048, 2048}, {"1b_l1", 8192, 5632, 2048},
                                   {"1b_l3", 8192, 2048, 5632},       {"1b_lm_head", 8192, 64000, 2048},
                                   {"385m_l1", 8192, 2816, 1024}};
  for (const Case& c : cases) {
    // Two input sets, alternated, so repeated runs do not sit in the cache.
    Tensor a[2] = {random_bf16(c.m, c.k, 1), random_bf16(c.m, c.k, 2)};
    Tensor b[2] = {random_bf16(c.n, c.k, 3), random_bf16(c.n, c.k, 4)};
    Tensor out = Tensor::empty({c.m, c.n}, DType::BF16, Device::CUDA);
    int which = 0;
    const double ms = median_ms(
        [&] {
          linpar::cuda::gemm(false, true, c.m, c.n, c.k, 1.0f, a[which].raw_data(), c.k,
                             b[which].raw_data(), c.k, 0.0f, out.raw_data(), c.n, DType::BF16);
          which ^= 1;
        },
        reps);
    std::printf("gemm %s %ld %ld %ld %.4f %.1f\n", c.name, static_cast<long>(c.m),
                static_cast<long>(c.n), static_cast<long>(c.k), ms,
                2.0 * static_cast<double>(c.m) * static_cast<double>(c.n) * static_cast<double>(c.k) / (ms * 1e9));
  }
  // Device-to-device copy of 1 GiB: bytes read + bytes written over time.
  const size_t bytes = size_t{1} << 30;
  void *src = nullptr, *dst = nullptr;
  CUDA_CHECK(cudaMalloc(&src, bytes));
  CUDA_CHECK(cudaMalloc(&dst, bytes));
  CUDA_CHECK(cudaMemset(src, 1, bytes));
  const double ms = median_ms([&] { CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cudaStreamLegacy)); }, reps);
  std::printf("copy d2d %zu %.4f ms %.1f GB/s\n", bytes, ms, 2.0 * static_cast<double>(bytes) / (ms * 1e6));
  cudaFree(src);
  cudaFree(dst);
  return 0;
}
