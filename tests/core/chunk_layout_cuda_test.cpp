// The chunk-layout permutation on the GPU (core/cuda/chunk_layout_kernels.h,
// Ulysses' re-arrangement around its all-to-alls) copies exactly what the CPU
// functions of core/ops/chunk_layout.h copy, for 2- and 4-byte elements, in
// both splits and both directions. Skips without a GPU.
#include <gtest/gtest.h>

#include "core/cuda/cuda_runtime.h"
#include "core/ops/chunk_layout.h"
#include "gpu_compare.h"
#include "gradcheck.h"
#ifdef LINPAR_HAVE_CUDA
#include "core/cuda/chunk_layout_kernels.h"
#endif

namespace linpar {

using namespace testing;

TEST(ChunkLayoutCuda, PermutationsEqualTheCpuCopies) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
#ifdef LINPAR_HAVE_CUDA
  const int64_t T = 3, B = 2, Hs = 2, C = 5;
  uint64_t seed = 40;
  // d = 7: element by element; d = 64: rows of 128 or 256 bytes, 16 at a time.
  for (const int64_t d : {int64_t{7}, int64_t{64}}) {
    for (DType dtype : {DType::F32, DType::BF16}) {
      for (bool heads_split : {true, false}) {
        const Shape x_shape = heads_split ? Shape{B, T * Hs, C, d} : Shape{B, Hs, T * C, d};
        const Shape blocks_shape{T, B, Hs, C, d};
        const Tensor x = random_tensor(x_shape, seed++, 1.0, DType::F32).to(dtype);
        const Tensor blocks = random_tensor(blocks_shape, seed++, 1.0, DType::F32).to(dtype);
        Tensor want_blocks = Tensor::empty(blocks_shape, dtype),
               want_x = Tensor::empty(x_shape, dtype);
        if (heads_split) {
          heads_to_blocks(x, want_blocks);
          blocks_to_heads(blocks, want_x);
        } else {
          sequence_to_blocks(x, want_blocks);
          blocks_to_sequence(blocks, want_x);
        }
        Tensor got_blocks = poisoned(blocks_shape, dtype), got_x = poisoned(x_shape, dtype);
        const Tensor x_gpu = x.to(Device::CUDA), blocks_gpu = blocks.to(Device::CUDA);
        const cuda::ChunkBlocks shape{T, B, Hs, C, d};
        cuda::permute_chunk_blocks(shape, heads_split, true, dtype_size(dtype), x_gpu.raw_data(),
                                   got_blocks.raw_data());
        cuda::permute_chunk_blocks(shape, heads_split, false, dtype_size(dtype),
                                   blocks_gpu.raw_data(), got_x.raw_data());
        const std::string what = std::string(dtype_name(dtype)) + (heads_split ? " heads" : " sequence") +
                                 " d " + std::to_string(d);
        EXPECT_EQ(relative_error(got_blocks, want_blocks), 0.0) << "to blocks, " << what;
        EXPECT_EQ(relative_error(got_x, want_x), 0.0) << "from blocks, " << what;
      }
    }
  }
#endif
}

}  // namespace linpar
