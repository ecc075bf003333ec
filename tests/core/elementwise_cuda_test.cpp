// axpy, scale and f32 ↔ bf16 conversion on the GPU against the CPU on fresh
// random inputs, outputs poisoned with NaN first (f32 within 1e-5, bf16 within
// 1e-2, conversions bit-exact). The kernels move 16-byte vectors when every
// pointer is aligned and single elements otherwise, finishing a tail that is
// not a whole vector element by element, so each runs on sizes that are not
// multiples of 8 and on views offset by one element (unaligned), and the
// element before a view must stay untouched. Skips without a GPU.
#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "core/cuda/cuda_runtime.h"
#include "core/ops/elementwise.h"
#include "gpu_compare.h"
#include "gradcheck.h"

namespace linpar {

using namespace testing;

namespace {

// 8, 4096: whole vectors only; 5: the tail only; 1001, 6149: vectors, then a
// tail (of 1 for f32 vectors, 1 and 5 for bf16 ones).
constexpr int64_t kSizes[] = {5, 8, 1001, 4096, 6149};

// Fresh random values of `dtype`, as f32 on the CPU.
Tensor random_values(int64_t n, uint64_t seed, DType dtype) {
  return random_tensor({n}, seed, 1.5, DType::F32).to(dtype).to(DType::F32);
}

std::string describe(DType dtype, int64_t n, int64_t offset) {
  return std::string(dtype_name(dtype)) + " n " + std::to_string(n) + " offset " +
         std::to_string(offset);
}

}  // namespace

TEST(ElementwiseCuda, AxpyAndScaleTakeVectorAndElementPaths) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 51;
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (int64_t n : kSizes) {
      for (int64_t offset : {0, 1}) {
        const std::string what = describe(dtype, n, offset);
        const Tensor x_full = random_values(n + offset, seed++, dtype),
                     y_full = random_values(n + offset, seed++, dtype);
        const Tensor x = view_of(x_full, offset, {n}), y0 = view_of(y_full, offset, {n});
        Tensor want_axpy = y0.clone(), want_scale = y0.clone();
        axpy(-0.75, x, want_axpy);
        scale(1.25, want_scale);

        // y starts as y0 at the offset, with NaN before it.
        auto gpu_y = [&] {
          PoisonedView y = poisoned_view({n}, offset, dtype);
          y.view.copy_from(y0.to(dtype).to(Device::CUDA));
          return y;
        };
        PoisonedView got_axpy = gpu_y(), got_scale = gpu_y();
        axpy(-0.75, view_of(x_full.to(dtype).to(Device::CUDA), offset, {n}), got_axpy.view);
        scale(1.25, got_scale.view);
        EXPECT_LT(relative_error(got_axpy.view, want_axpy), gpu_tolerance(dtype))
            << "axpy " << what;
        EXPECT_LT(relative_error(got_scale.view, want_scale), gpu_tolerance(dtype))
            << "scale " << what;
        EXPECT_TRUE(head_untouched(got_axpy)) << "axpy wrote before the view, " << what;
        EXPECT_TRUE(head_untouched(got_scale)) << "scale wrote before the view, " << what;
      }
    }
  }
}

TEST(ElementwiseCuda, ConversionsTakeVectorAndElementPaths) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 71;
  for (int64_t n : kSizes) {
    // Source and destination offsets apart: either one unaligned is enough
    // for the element path.
    for (auto [src_offset, dst_offset] :
         {std::pair<int64_t, int64_t>{0, 0}, {1, 0}, {0, 1}, {1, 1}}) {
      const std::string what =
          describe(DType::F32, n, src_offset) + " dst offset " + std::to_string(dst_offset);
      // f32 values (not rounded): f32 → bf16 must round each like the CPU.
      const Tensor f32_full = random_tensor({n + src_offset}, seed++, 3.0, DType::F32);
      const Tensor f32 = view_of(f32_full, src_offset, {n});
      const Tensor want_bf16 = f32.to(DType::BF16);
      PoisonedView down = poisoned_view({n}, dst_offset, DType::BF16);
      convert(view_of(f32_full.to(Device::CUDA), src_offset, {n}), down.view);
      EXPECT_EQ(relative_error(down.view, want_bf16), 0.0) << "f32 to bf16 " << what;
      EXPECT_TRUE(head_untouched(down)) << "f32 to bf16 wrote before the view, " << what;

      const Tensor bf16_full =
          random_tensor({n + src_offset}, seed++, 3.0, DType::F32).to(DType::BF16);
      const Tensor bf16_values = view_of(bf16_full, src_offset, {n});
      PoisonedView up = poisoned_view({n}, dst_offset, DType::F32);
      convert(view_of(bf16_full.to(Device::CUDA), src_offset, {n}), up.view);
      EXPECT_EQ(relative_error(up.view, bf16_values.to(DType::F32)), 0.0) << "bf16 to f32 " << what;
      EXPECT_TRUE(head_untouched(up)) << "bf16 to f32 wrote before the view, " << what;
    }
  }
}

}  // namespace linpar
