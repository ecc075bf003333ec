// The CUDA embedding lookup and its gradient against the CPU reference on
// fresh random inputs: f32 and bf16 tables, a width of 7 and one past a block,
// a vocabulary slice (vocab_offset ≠ 0, tokens other ranks hold), repeated
// tokens accumulating into an f32 or bf16 gradient, outputs poisoned with NaN
// first; and a token outside the vocabulary raising the CPU's user error.
// Skips without a GPU.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/cuda/cuda_runtime.h"
#include "core/ops/embedding.h"
#include "core/rng.h"
#include "gpu_compare.h"
#include "gradcheck.h"

namespace linpar {

using namespace testing;

namespace {

struct Case {
  int64_t rows, table_rows, width, vocab_offset, vocab_size;
};
// Whole tables and a slice [offset, offset + table_rows) of a larger vocabulary.
const Case kCases[] = {
    {50, 37, 7, 0, -1}, {257, 300, 257, 100, 1000}, {500, 13, 64, 0, -1}, {64, 40, 130, 960, 1000}};

std::string describe(const Case& c, DType dtype) {
  return std::string(dtype_name(dtype)) + " rows " + std::to_string(c.rows) + " table " +
         std::to_string(c.table_rows) + "x" + std::to_string(c.width) + " offset " +
         std::to_string(c.vocab_offset);
}

}  // namespace

TEST(EmbeddingCuda, ForwardEqualsTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 101;
  for (const Case& c : kCases) {
    for (DType dtype : {DType::F32, DType::BF16}) {
      const int64_t vocab = c.vocab_size < 0 ? c.table_rows : c.vocab_size;
      const Tensor tokens = random_ids(c.rows, vocab, seed++);
      const Tensor table = random_tensor({c.table_rows, c.width}, seed++, 1.0, DType::F32)
                               .to(dtype)
                               .to(DType::F32);  // GPU-representable
      const double scale = 2.5;
      Tensor y = Tensor::empty({c.rows, c.width}, DType::F32);
      embedding_forward(tokens, table, scale, y, c.vocab_offset, c.vocab_size);
      Tensor yg = poisoned({c.rows, c.width}, dtype);
      embedding_forward(tokens.to(Device::CUDA), table.to(dtype).to(Device::CUDA), scale, yg,
                        c.vocab_offset, c.vocab_size);
      EXPECT_LT(relative_error(yg, y), gpu_tolerance(dtype)) << describe(c, dtype);
    }
  }
}

TEST(EmbeddingCuda, BackwardAccumulatesLikeTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 201;
  for (const Case& c : kCases) {
    // (dy, d_table): all f32; bf16 dy into an f32 gradient (mixed precision); all bf16.
    for (auto [dy_dtype, grad_dtype] :
         {std::pair{DType::F32, DType::F32}, std::pair{DType::BF16, DType::F32},
          std::pair{DType::BF16, DType::BF16}}) {
      const int64_t vocab = c.vocab_size < 0 ? c.table_rows : c.vocab_size;
      const Tensor tokens = random_ids(c.rows, vocab, seed++);
      const Tensor dy =
          random_tensor({c.rows, c.width}, seed++, 1.0, DType::F32).to(dy_dtype).to(DType::F32);
      const Tensor d_table0 = random_tensor({c.table_rows, c.width}, seed++, 1.0, DType::F32)
                                  .to(grad_dtype)
                                  .to(DType::F32);
      const double scale = 0.75;
      Tensor d_table = d_table0.clone();
      embedding_backward(dy, tokens, scale, d_table, c.vocab_offset);
      Tensor d_table_g = d_table0.to(grad_dtype).to(Device::CUDA);
      embedding_backward(dy.to(dy_dtype).to(Device::CUDA), tokens.to(Device::CUDA), scale,
                         d_table_g, c.vocab_offset);
      // f32 sums of bf16-exact products keep f32 accuracy; a bf16 gradient
      // is rounded once per element at the end.
      EXPECT_LT(relative_error(d_table_g, d_table), gpu_tolerance(grad_dtype))
          << describe(c, dy_dtype) << " into " << dtype_name(grad_dtype);
    }
  }
}

TEST(EmbeddingCuda, Bf16GradientNeedsBf16Dy) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  const Tensor tokens = random_ids(5, 11, 3).to(Device::CUDA);
  const Tensor dy = random_tensor({5, 7}, 4, 1.0, DType::F32).to(Device::CUDA);
  Tensor d_table = Tensor::zeros({11, 7}, DType::BF16, Device::CUDA);
  EXPECT_THROW(embedding_backward(dy, tokens, 1.0, d_table), InternalError);
}

TEST(EmbeddingCuda, TokenOutsideTheVocabularyIsTheCpusUserError) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  const Tensor table = random_tensor({40, 7}, 5, 1.0, DType::F32);
  for (DType dtype : {DType::F32, DType::BF16}) {
    // Sharded (offset 20 of 60) and whole-table lookups; the first bad token
    // in row order is the one reported (row 3: 60 or 40; row 9: −2).
    for (auto [offset, vocab_size] : {std::pair<int64_t, int64_t>{20, 60}, {0, -1}}) {
      const int32_t too_big = static_cast<int32_t>(vocab_size < 0 ? 40 : vocab_size);
      std::vector<int32_t> ids(64, 25);
      ids[3] = too_big;
      ids[9] = -2;
      const Tensor tokens = Tensor::from_vector<int32_t>({64}, ids);
      auto message = [&](const Tensor& tk, const Tensor& tb, Tensor& y) -> std::string {
        try {
          embedding_forward(tk, tb, 1.0, y, offset, vocab_size);
        } catch (const UserError& e) {
          return e.what();
        }
        return "no error";
      };
      Tensor y = Tensor::empty({64, 7}, DType::F32), yg = poisoned({64, 7}, dtype);
      const std::string want = message(tokens, table, y);
      EXPECT_NE(want, "no error");
      EXPECT_EQ(message(tokens.to(Device::CUDA), table.to(dtype).to(Device::CUDA), yg), want)
          << dtype_name(dtype) << " offset " << offset;
      // The lone −1 is reported as well.
      std::vector<int32_t> one(9, 1);
      one[8] = -1;
      Tensor y1 = poisoned({9, 7}, dtype);
      EXPECT_THROW(embedding_forward(Tensor::from_vector<int32_t>({9}, one).to(Device::CUDA),
                                     table.to(dtype).to(Device::CUDA), 1.0, y1, offset, vocab_size),
                   UserError);
    }
  }
}

}  // namespace linpar
