// The chunk-layout permutations around the SP collectives (core/ops/
// chunk_layout.h: Ulysses' heads ↔ blocks, the K/V all-gather's and LASP-2's
// blocks ↔ sequence) on the GPU at the validation runs' shapes, against a
// device-to-device copy of the same bytes measured in the same run (the
// ceiling a permutation of contiguous runs can reach). Each shape is first
// checked against the CPU copies (bit for bit). Prints per shape and
// direction:
//   chunk_layout <direction> T B Hs C d ms GB/s copy_GB/s fraction_of_copy
// (GB/s counts bytes read plus bytes written). Exit status 1 when a check
// fails. Usage: chunk_layout_bench [reps]
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bench/cuda_timing.h"
#include "core/cuda/chunk_layout_kernels.h"
#include "core/cuda/cuda_check.h"
#include "core/ops/chunk_layout.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace {

using linpar::Device;
using linpar::DType;
using linpar::Shape;
using linpar::Tensor;
using linpar::bench::median_ms;

Tensor random_bf16(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::empty(shape, DType::F32);
  linpar::CounterRng rng(seed, "chunk_layout_bench");
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(rng.normal(static_cast<uint64_t>(i)));
  return t.to(DType::BF16);
}

bool same_bytes(const Tensor& gpu, const Tensor& cpu) {
  const Tensor g = gpu.to(Device::CPU);
  return std::memcmp(g.raw_data(), cpu.raw_data(), static_cast<size_t>(cpu.numel()) * 2) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20;
  // {T, B, Hs, C, d}: tnl-385m (16 heads of 64) and tnl-1b (16 of 128) over
  // 2 ranks at 4096 tokens, micro-batch 2 (the 2-GPU validation runs'), and
  // tnl-1b over 8 ranks at 32K tokens.
  const std::vector<linpar::cuda::ChunkBlocks> shapes = {
      {2, 2, 8, 2048, 64}, {2, 2, 8, 2048, 128}, {8, 1, 2, 4096, 128}};
  bool ok = true;
  for (const linpar::cuda::ChunkBlocks& s : shapes) {
    const Shape heads{s.batch, s.blocks * s.heads, s.length, s.width};
    const Shape blocks{s.blocks, s.batch, s.heads, s.length, s.width};
    const Tensor x = random_bf16(heads, 1), b = random_bf16(blocks, 2);
    Tensor want_blocks = Tensor::empty(blocks, DType::BF16), want_seq = Tensor::empty(
        Shape{s.batch, s.heads, s.blocks * s.length, s.width}, DType::BF16);
    linpar::heads_to_blocks(x, want_blocks);
    linpar::blocks_to_sequence(b, want_seq);
    const Tensor x_gpu = x.to(Device::CUDA), b_gpu = b.to(Device::CUDA);
    Tensor got_blocks = Tensor::empty(blocks, DType::BF16, Device::CUDA);
    Tensor got_seq = Tensor::empty(want_seq.shape(), DType::BF16, Device::CUDA);
    linpar::heads_to_blocks(x_gpu, got_blocks);
    linpar::blocks_to_sequence(b_gpu, got_seq);
    const bool same = same_bytes(got_blocks, want_blocks) && same_bytes(got_seq, want_seq);
    ok = ok && same;
    std::printf("chunk_layout_check %ld %ld %ld %ld %ld %s\n", static_cast<long>(s.blocks), static_cast<long>(s.batch),
                static_cast<long>(s.heads), static_cast<long>(s.length), static_cast<long>(s.width),
                same ? "ok" : "FAILED");
    const size_t bytes = static_cast<size_t>(x.numel()) * 2;
    const double copy_ms = median_ms(
        [&] { CUDA_CHECK(cudaMemcpyAsync(got_blocks.raw_data(), x_gpu.raw_data(), bytes, cudaMemcpyDeviceToDevice, cudaStreamLegacy)); },
        reps);
    const double copy_gbps = 2.0 * static_cast<double>(bytes) / (copy_ms * 1e6);
    const double to_blocks = median_ms([&] { linpar::heads_to_blocks(x_gpu, got_blocks); }, reps);
    const double to_sequence = median_ms([&] { linpar::blocks_to_sequence(b_gpu, got_seq); }, reps);
    for (auto [name, ms] : {std::pair{"heads_to_blocks", to_blocks}, {"blocks_to_sequence", to_sequence}}) {
      const double gbps = 2.0 * static_cast<double>(bytes) / (ms * 1e6);
      std::printf("chunk_layout %s %ld %ld %ld %ld %ld %.4f ms %.1f GB/s copy %.1f GB/s %.2f\n", name,
                  static_cast<long>(s.blocks), static_cast<long>(s.batch), static_cast<long>(s.heads),
                  static_cast<long>(s.length), static_cast<long>(s.width), ms, gbps, copy_gbps, gbps / copy_gbps);
    }
  }
  return ok ? 0 : 1;
}
