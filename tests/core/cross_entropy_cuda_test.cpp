// The CUDA cross-entropy against the CPU reference on fresh random inputs: the
// whole-vocabulary forward and backward, and the vocabulary-parallel phases on
// three uneven slices combined as the group would combine them (vocab_offset
// ≠ 0, targets other slices hold), vocabularies of 7, one past a block and
// not a multiple of it, f32 and bf16 logits, outputs poisoned with NaN first.
// The reference runs in f64 on the same (GPU-representable) logits: the f32
// row statistics are held to f32 accuracy (1e-5), bf16 gradients to 1e-2. A
// target outside the vocabulary raises the CPU's user error. Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/cuda/cuda_runtime.h"
#include "core/ops/cross_entropy.h"
#include "core/rng.h"
#include "gpu_compare.h"
#include "gradcheck.h"

namespace linpar {

using namespace testing;

namespace {

// Columns [begin, end) of a CPU [rows, V] tensor, contiguous.
Tensor columns(const Tensor& t, int64_t begin, int64_t end) {
  const int64_t rows = t.dim(0), vocab = t.dim(1);
  Tensor out = Tensor::empty({rows, end - begin}, t.dtype());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = begin; i < end; ++i)
      out.data<double>()[r * (end - begin) + i - begin] = t.data<double>()[r * vocab + i];
  return out;
}

Tensor f32_stats(int64_t rows) { return poisoned({rows}, DType::F32); }

}  // namespace

TEST(CrossEntropyCuda, ForwardAndBackwardEqualTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 301;
  const int64_t rows = 33;
  for (int64_t vocab : {7, 257, 5003}) {
    for (DType dtype : {DType::F32, DType::BF16}) {
      const Tensor logits = random_tensor({rows, vocab}, seed++, 3.0, DType::F32)
                                .to(dtype)
                                .to(DType::F64);  // GPU-representable, reference in f64
      const Tensor targets = random_ids(rows, vocab, seed++);
      const double scale = 1.0 / static_cast<double>(rows);
      Tensor losses = Tensor::empty({rows}, DType::F64), dlogits = logits.clone();
      cross_entropy_forward(logits, targets, losses);
      cross_entropy_backward(logits, targets, scale, dlogits);

      const Tensor logits_g = logits.to(dtype).to(Device::CUDA),
                   targets_g = targets.to(Device::CUDA);
      Tensor losses_g = f32_stats(rows), dlogits_g = poisoned({rows, vocab}, dtype);
      cross_entropy_forward(logits_g, targets_g, losses_g);
      cross_entropy_backward(logits_g, targets_g, scale, dlogits_g);
      const std::string what = std::string(dtype_name(dtype)) + " vocab " + std::to_string(vocab);
      EXPECT_LT(relative_error(losses_g, losses), 1e-5) << "losses " << what;
      EXPECT_LT(relative_error(dlogits_g, dlogits), gpu_tolerance(dtype)) << "dlogits " << what;
    }
  }
}

TEST(CrossEntropyCuda, VocabularyParallelPhasesEqualTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 401;
  const int64_t rows = 21, vocab = 1000;
  const std::vector<int64_t> bounds = {0, 300, 701, 1000};  // three uneven slices
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Tensor logits =
        random_tensor({rows, vocab}, seed++, 3.0, DType::F32).to(dtype).to(DType::F64);
    const Tensor targets = random_ids(rows, vocab, seed++),
                 targets_g = targets.to(Device::CUDA);
    const double scale = 0.5;
    const std::string what(dtype_name(dtype));

    // Each slice's phases against the CPU's, then combined as the group
    // would: max over slices, then sums over slices.
    std::vector<Tensor> slices, slices_g;
    std::vector<double> row_max(rows, -1e300), sum_exp(rows, 0.0), target_logit(rows, 0.0);
    for (size_t s = 0; s + 1 < bounds.size(); ++s) {
      slices.push_back(columns(logits, bounds[s], bounds[s + 1]));
      slices_g.push_back(slices.back().to(dtype).to(Device::CUDA));
      Tensor max_s = Tensor::empty({rows}, DType::F64), max_g = f32_stats(rows);
      cross_entropy_local_max(slices[s], max_s);
      cross_entropy_local_max(slices_g[s], max_g);
      EXPECT_EQ(relative_error(max_g, max_s), 0.0) << "row_max slice " << s << " " << what;
      for (int64_t r = 0; r < rows; ++r) row_max[r] = std::max(row_max[r], max_s.data<double>()[r]);
    }
    const Tensor max_all = Tensor::from_vector<double>({rows}, row_max);
    const Tensor max_all_g = max_all.to(DType::F32).to(Device::CUDA);
    for (size_t s = 0; s < slices.size(); ++s) {
      Tensor sum_s = Tensor::empty({rows}, DType::F64), tl_s = sum_s.clone();
      Tensor sum_g = f32_stats(rows), tl_g = f32_stats(rows);
      cross_entropy_local_sums(slices[s], targets, bounds[s], max_all, sum_s, tl_s);
      cross_entropy_local_sums(slices_g[s], targets_g, bounds[s], max_all_g, sum_g, tl_g);
      EXPECT_LT(relative_error(sum_g, sum_s), 1e-5) << "sum_exp slice " << s << " " << what;
      EXPECT_EQ(relative_error(tl_g, tl_s), 0.0) << "target_logit slice " << s << " " << what;
      for (int64_t r = 0; r < rows; ++r) {
        sum_exp[r] += sum_s.data<double>()[r];
        target_logit[r] += tl_s.data<double>()[r];
      }
    }
    // The combined statistics give the whole-vocabulary losses.
    Tensor losses = Tensor::empty({rows}, DType::F64), losses_g = f32_stats(rows);
    cross_entropy_forward(logits, targets, losses);
    const Tensor sum_all = Tensor::from_vector<double>({rows}, sum_exp);
    const Tensor sum_all_g = sum_all.to(DType::F32).to(Device::CUDA);
    cross_entropy_losses(
        max_all_g, sum_all_g,
        Tensor::from_vector<double>({rows}, target_logit).to(DType::F32).to(Device::CUDA),
        losses_g);
    EXPECT_LT(relative_error(losses_g, losses), 1e-5) << "losses " << what;

    // Each slice's gradient is its columns of the whole gradient.
    Tensor dlogits = logits.clone();
    cross_entropy_backward(logits, targets, scale, dlogits);
    for (size_t s = 0; s < slices.size(); ++s) {
      Tensor d_g = poisoned(slices[s].shape(), dtype);
      cross_entropy_backward_sharded(slices_g[s], targets_g, bounds[s], max_all_g, sum_all_g, scale,
                                     d_g);
      EXPECT_LT(relative_error(d_g, columns(dlogits, bounds[s], bounds[s + 1])),
                gpu_tolerance(dtype))
          << "dlogits slice " << s << " " << what;
    }
  }
}

TEST(CrossEntropyCuda, TargetOutsideTheVocabularyIsTheCpusUserError) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  const int64_t rows = 40, vocab = 300;
  const Tensor logits = random_tensor({rows, vocab}, 7, 1.0, DType::F32);
  for (int32_t bad : {300, -1}) {
    std::vector<int32_t> ids(rows, 5);
    ids[17] = bad;
    ids[30] = 1000;  // later rows do not change the report
    const Tensor targets = Tensor::from_vector<int32_t>({rows}, ids);
    auto message = [](auto&& call) -> std::string {
      try {
        call();
      } catch (const UserError& e) {
        return e.what();
      }
      return "no error";
    };
    Tensor losses = Tensor::empty({rows}, DType::F32), dlogits = logits.clone();
    const std::string want = message([&] { cross_entropy_forward(logits, targets, losses); });
    EXPECT_NE(want, "no error");
    EXPECT_EQ(message([&] { cross_entropy_backward(logits, targets, 1.0, dlogits); }), want);
    const Tensor targets_g = targets.to(Device::CUDA);
    for (DType dtype : {DType::F32, DType::BF16}) {
      const Tensor logits_g = logits.to(dtype).to(Device::CUDA);
      Tensor losses_g = f32_stats(rows), dlogits_g = poisoned({rows, vocab}, dtype);
      EXPECT_EQ(message([&] { cross_entropy_forward(logits_g, targets_g, losses_g); }), want)
          << dtype_name(dtype);
      EXPECT_EQ(message([&] { cross_entropy_backward(logits_g, targets_g, 1.0, dlogits_g); }), want)
          << dtype_name(dtype);
    }
  }
}

}  // namespace linpar
