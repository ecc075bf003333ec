// Lightning attention forward + backward on the GPU at the tnl-1b heads and
// head dimension (16 heads of 128), batch 1, bf16 operands, for sequence
// lengths given on the command line. FLOPs are those of the block-wise
// algorithm with 64-token blocks (the op plan's count). Prints:
//   lightning N fwd_ms bwd_ms tflops(fwd+bwd)
// Usage: lightning_bench [N ...]
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bench/cuda_timing.h"
#include "core/cuda/cuda_check.h"
#include "core/ops/lightning_attention.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace {

using linpar::bench::median_ms;

using linpar::DType;
using linpar::Device;
using linpar::Tensor;

Tensor random_bf16(const linpar::Shape& shape, uint64_t seed, double std) {
  Tensor t = Tensor::empty(shape, DType::F32);
  linpar::CounterRng rng(seed, "lightning_bench");
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(std * rng.normal(static_cast<uint64_t>(i)));
  return t.to(DType::BF16).to(Device::CUDA);
}


}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> lengths;
  for (int i = 1; i < argc; ++i) lengths.push_back(std::atoll(argv[i]));
  if (lengths.empty()) lengths = {2048, 8192};
  const int64_t B = 1, H = 16, d = 128;
  std::vector<double> slopes;
  for (int64_t h = 0; h < H; ++h) slopes.push_back(std::pow(2.0, -8.0 * static_cast<double>(h + 1) / H));
  for (int64_t N : lengths) {
    const Tensor q = random_bf16({B, H, N, d}, 1, 0.09), k = random_bf16({B, H, N, d}, 2, 0.09),
                 v = random_bf16({B, H, N, d}, 3, 1.0), d_o = random_bf16({B, H, N, d}, 4, 1.0);
    Tensor o = Tensor::empty({B, H, N, d}, DType::BF16, Device::CUDA), none;
    Tensor dq = Tensor::empty(q.shape(), DType::BF16, Device::CUDA), dk = dq.clone(), dv = dq.clone();
    const int reps = N <= 8192 ? 5 : 3;
    const double fwd = median_ms([&] { linpar::lightning_attention_forward(q, k, v, slopes, 64, none, o, none); }, reps);
    const double bwd = median_ms([&] {
      linpar::lightning_attention_backward(q, k, v, slopes, 64, none, d_o, none, dq, dk, dv, none);
    }, reps);
    const double flops = static_cast<double>(linpar::lightning_attention_forward_flops(B, H, N, d, d, 64, false, false) +
                                             linpar::lightning_attention_backward_flops(B, H, N, d, d, 64, false, false, false));
    std::printf("lightning %ld %.3f %.3f %.2f\n", static_cast<long>(N), fwd, bwd, flops / ((fwd + bwd) * 1e9));
  }
  return 0;
}
