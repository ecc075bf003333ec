// SiLU, products and SRMSNorm on the GPU against the CPU reference on fresh
// random inputs (f32 within 1e-5, bf16 within 1e-2, relative to the result's
// norm), outputs poisoned with NaN first, accumulate paths included, and
// SRMSNorm's head-layout phases (one-element and 16-byte-vector paths). The
// kernels take 16-byte vectors when every pointer is aligned (and, for rows,
// the width is a multiple of a vector) and single elements otherwise, so
// each op also runs on sizes that are not multiples of 8 and on views offset
// by one element (unaligned), with the element before a view checked to stay
// poisoned. Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda/cuda_runtime.h"
#include "core/ops/activation.h"
#include "core/ops/layout.h"
#include "core/ops/srmsnorm.h"
#include "gpu_compare.h"
#include "gradcheck.h"

namespace linpar {

using namespace testing;

namespace {

// A CPU f32 tensor of `shape` at `offset` inside a fresh random buffer,
// rounded to `dtype`, and the same on the GPU in `dtype` (same offset).
struct Operand {
  Tensor cpu, gpu;
};
Operand random_operand(const Shape& shape, int64_t offset, uint64_t seed, DType dtype) {
  const Tensor full =
      random_tensor({shape_numel(shape) + offset}, seed, 1.5, DType::F32).to(dtype).to(DType::F32);
  return {view_of(full, offset, shape), view_of(full.to(dtype).to(Device::CUDA), offset, shape)};
}

}  // namespace

TEST(PointwiseCuda, SiluAndProductsEqualTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 11;
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Shape shape{3, 1001};
    auto input = [&] {
      return random_tensor(shape, seed++, 2.0, DType::F32).to(dtype).to(DType::F32);
    };
    auto gpu = [&](const Tensor& t) { return t.to(dtype).to(Device::CUDA); };
    const Tensor x = input(), dy = input(), a = input(), b = input();
    Tensor y = Tensor::empty(shape, DType::F32), dx = y.clone(), p = y.clone(), da = y.clone(),
           db = y.clone();
    silu_forward(x, y);
    silu_backward(dy, x, dx);
    mul_forward(a, b, p);
    mul_backward(dy, a, b, da, db);
    Tensor yg = poisoned(shape, dtype), dxg = poisoned(shape, dtype), pg = poisoned(shape, dtype),
           dag = poisoned(shape, dtype), dbg = poisoned(shape, dtype);
    silu_forward(gpu(x), yg);
    silu_backward(gpu(dy), gpu(x), dxg);
    mul_forward(gpu(a), gpu(b), pg);
    mul_backward(gpu(dy), gpu(a), gpu(b), dag, dbg);
    EXPECT_LT(relative_error(yg, y), gpu_tolerance(dtype)) << dtype_name(dtype);
    EXPECT_LT(relative_error(dxg, dx), gpu_tolerance(dtype)) << dtype_name(dtype);
    EXPECT_LT(relative_error(pg, p), gpu_tolerance(dtype)) << dtype_name(dtype);
    EXPECT_LT(relative_error(dag, da), gpu_tolerance(dtype)) << dtype_name(dtype);
    EXPECT_LT(relative_error(dbg, db), gpu_tolerance(dtype)) << dtype_name(dtype);
  }
}

TEST(PointwiseCuda, SrmsnormEqualsTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 31;
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (int64_t width : {7, 1000, 2048}) {
      const int64_t rows = 33;
      const Shape shape{rows, width};
      auto input = [&] {
        return random_tensor(shape, seed++, 1.5, DType::F32).to(dtype).to(DType::F32);
      };
      auto gpu = [&](const Tensor& t) { return t.to(dtype).to(Device::CUDA); };
      const Tensor x = input(), dy = input(), dx0 = input();
      Tensor y = Tensor::empty(shape, DType::F32), rstd = Tensor::empty({rows}, DType::F32);
      srmsnorm_forward(x, 1e-6, y, rstd);
      Tensor dx = dx0.clone();
      srmsnorm_backward(dy, y, rstd, dx, /*accumulate=*/true);

      Tensor yg = poisoned(shape, dtype), rstd_g = poisoned({rows}, DType::F32);
      srmsnorm_forward(gpu(x), 1e-6, yg, rstd_g);
      Tensor dxg = gpu(dx0);
      // The backward reads the CPU's y (in the GPU dtype) so both see one input.
      srmsnorm_backward(gpu(dy), gpu(y), rstd.to(Device::CUDA), dxg, true);
      const std::string what = std::string(dtype_name(dtype)) + " width " + std::to_string(width);
      EXPECT_LT(relative_error(yg, y), gpu_tolerance(dtype)) << "y " << what;
      EXPECT_LT(relative_error(rstd_g, rstd), 1e-5) << "rstd " << what;
      EXPECT_LT(relative_error(dxg, dx), dtype == DType::F32 ? 1e-5 : 2e-2) << "dx " << what;
    }
  }
}

TEST(PointwiseCuda, SrmsnormHeadLayoutPhasesEqualTheCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  struct Case {
    int64_t batch, heads, length, head_dim;
  };
  // d 7 and 130: one element per thread; 8, 32, 128: 16-byte vectors (for
  // bf16 at 8 and up, for f32 at every multiple of 4); 16 × 128 is a
  // tnl-1b-wide row (2048), more than one vector per thread in f32.
  const Case cases[] = {
      {2, 3, 5, 7}, {1, 4, 33, 32}, {3, 2, 17, 130}, {2, 4, 9, 8}, {1, 16, 20, 128}};
  uint64_t seed = 41;
  for (const Case& c : cases) {
    for (DType dtype : {DType::F32, DType::BF16}) {
      const int64_t rows = c.batch * c.length, width = c.heads * c.head_dim;
      const int64_t full_width = 2 * width;  // a row spread over two TP ranks
      const Shape heads{c.batch, c.heads, c.length, c.head_dim}, columns{c.batch, c.length, width};
      auto input = [&](const Shape& s) {
        return random_tensor(s, seed++, 1.5, DType::F32).to(dtype).to(DType::F32);
      };
      auto gpu = [&](const Tensor& t) { return t.to(dtype).to(Device::CUDA); };
      const std::string what = std::string(dtype_name(dtype)) + " H " + std::to_string(c.heads) +
                               " d " + std::to_string(c.head_dim);
      const Tensor x = input(heads), dy = input(columns);

      Tensor sums = Tensor::empty({rows}, DType::F32), y = Tensor::empty(columns, DType::F32),
             rstd = sums.clone(), dots = sums.clone(), dx = Tensor::empty(heads, DType::F32);
      srmsnorm_row_sums_heads(x, sums);
      srmsnorm_apply_heads(x, sums, full_width, 1e-6, y, rstd);
      // The backward reads y in the GPU dtype on both sides.
      const Tensor y_rounded = y.to(dtype).to(DType::F32);
      srmsnorm_row_dots(dy, y_rounded, dots);
      srmsnorm_backward_apply_heads(dy, y_rounded, rstd, dots, full_width, dx);

      Tensor sums_g = poisoned({rows}, DType::F32), yg = poisoned(columns, dtype),
             rstd_g = poisoned({rows}, DType::F32), dxg = poisoned(heads, dtype);
      srmsnorm_row_sums_heads(gpu(x), sums_g);
      // Each phase gets the CPU's statistics, so it is compared on its own.
      srmsnorm_apply_heads(gpu(x), sums.to(Device::CUDA), full_width, 1e-6, yg, rstd_g);
      srmsnorm_backward_apply_heads(gpu(dy), gpu(y_rounded), rstd.to(Device::CUDA),
                                    dots.to(Device::CUDA), full_width, dxg);
      EXPECT_LT(relative_error(sums_g, sums), 1e-5) << "sums " << what;
      EXPECT_LT(relative_error(yg, y), gpu_tolerance(dtype)) << "y " << what;
      EXPECT_LT(relative_error(rstd_g, rstd), 1e-5) << "rstd " << what;
      EXPECT_LT(relative_error(dxg, dx), gpu_tolerance(dtype)) << "dx " << what;
    }
  }
}

TEST(PointwiseCuda, SiluAndProductsTakeVectorAndElementPaths) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 101;
  for (DType dtype : {DType::F32, DType::BF16}) {
    // 8 and 4096: whole vectors only; 5: the tail only; 1001 and 6149:
    // vectors then a tail (of 1 in f32, 1 and 5 in bf16).
    for (int64_t n : {5, 8, 1001, 4096, 6149}) {
      for (int64_t offset : {0, 1}) {
        const Shape shape{n};
        const std::string what = std::string(dtype_name(dtype)) + " n " + std::to_string(n) +
                                 " offset " + std::to_string(offset);
        const Operand x = random_operand(shape, offset, seed++, dtype),
                      dy = random_operand(shape, offset, seed++, dtype),
                      a = random_operand(shape, offset, seed++, dtype),
                      b = random_operand(shape, offset, seed++, dtype);
        Tensor y = Tensor::empty(shape, DType::F32), dx = y.clone(), p = y.clone(), da = y.clone(),
               db = y.clone(), da_only = y.clone(), none;
        silu_forward(x.cpu, y);
        silu_backward(dy.cpu, x.cpu, dx);
        mul_forward(a.cpu, b.cpu, p);
        mul_backward(dy.cpu, a.cpu, b.cpu, da, db);
        mul_backward(dy.cpu, a.cpu, b.cpu, da_only, none);

        PoisonedView yg = poisoned_view(shape, offset, dtype),
                     dxg = poisoned_view(shape, offset, dtype),
                     pg = poisoned_view(shape, offset, dtype),
                     dag = poisoned_view(shape, offset, dtype),
                     dbg = poisoned_view(shape, offset, dtype),
                     da_only_g = poisoned_view(shape, offset, dtype);
        silu_forward(x.gpu, yg.view);
        silu_backward(dy.gpu, x.gpu, dxg.view);
        mul_forward(a.gpu, b.gpu, pg.view);
        mul_backward(dy.gpu, a.gpu, b.gpu, dag.view, dbg.view);
        Tensor none_g;
        mul_backward(dy.gpu, a.gpu, b.gpu, da_only_g.view, none_g);
        const double tolerance = gpu_tolerance(dtype);
        EXPECT_LT(relative_error(yg.view, y), tolerance) << "silu " << what;
        EXPECT_LT(relative_error(dxg.view, dx), tolerance) << "silu backward " << what;
        EXPECT_LT(relative_error(pg.view, p), tolerance) << "mul " << what;
        EXPECT_LT(relative_error(dag.view, da), tolerance) << "mul backward da " << what;
        EXPECT_LT(relative_error(dbg.view, db), tolerance) << "mul backward db " << what;
        EXPECT_LT(relative_error(da_only_g.view, da_only), tolerance) << "da alone " << what;
        for (const PoisonedView* out : {&yg, &dxg, &pg, &dag, &dbg, &da_only_g})
          EXPECT_TRUE(head_untouched(*out)) << "wrote before the view, " << what;
      }
    }
  }
}

TEST(PointwiseCuda, SrmsnormRowsTakeVectorAndElementPaths) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  uint64_t seed = 201;
  for (DType dtype : {DType::F32, DType::BF16}) {
    // 2048 and 5632: tnl-1b's widths (vectors, several per thread in f32 at
    // 5632); 1001: odd (one element per thread); 12: f32 vectors only.
    for (int64_t width : {2048, 5632, 1001, 12}) {
      for (int64_t offset : {0, 1}) {
        const int64_t rows = 5;
        const Shape shape{rows, width};
        const std::string what = std::string(dtype_name(dtype)) + " width " +
                                 std::to_string(width) + " offset " + std::to_string(offset);
        const Operand x = random_operand(shape, offset, seed++, dtype),
                      dy = random_operand(shape, offset, seed++, dtype),
                      dx0 = random_operand(shape, offset, seed++, dtype);
        Tensor y = Tensor::empty(shape, DType::F32), rstd = Tensor::empty({rows}, DType::F32);
        srmsnorm_forward(x.cpu, 1e-6, y, rstd);
        // The backward reads y in the GPU dtype on both sides, at the offset.
        const Tensor y_full = Tensor::zeros({rows * width + offset}, DType::F32);
        Tensor y_rounded = view_of(y_full, offset, shape);
        y_rounded.copy_from(y.to(dtype).to(DType::F32));
        const Tensor y_gpu = view_of(y_full.to(dtype).to(Device::CUDA), offset, shape);
        Tensor dx = Tensor::empty(shape, DType::F32), dx_acc = dx0.cpu.clone();
        srmsnorm_backward(dy.cpu, y_rounded, rstd, dx, /*accumulate=*/false);
        srmsnorm_backward(dy.cpu, y_rounded, rstd, dx_acc, /*accumulate=*/true);

        PoisonedView yg = poisoned_view(shape, offset, dtype),
                     dxg = poisoned_view(shape, offset, dtype);
        Tensor rstd_g = poisoned({rows}, DType::F32);
        srmsnorm_forward(x.gpu, 1e-6, yg.view, rstd_g);
        srmsnorm_backward(dy.gpu, y_gpu, rstd.to(Device::CUDA), dxg.view, false);
        Tensor dx_acc_g = dx0.gpu;  // accumulates into the (offset) view in place
        srmsnorm_backward(dy.gpu, y_gpu, rstd.to(Device::CUDA), dx_acc_g, true);
        EXPECT_LT(relative_error(yg.view, y), gpu_tolerance(dtype)) << "y " << what;
        EXPECT_LT(relative_error(rstd_g, rstd), 1e-5) << "rstd " << what;
        const double dx_tolerance = dtype == DType::F32 ? 1e-5 : 2e-2;
        EXPECT_LT(relative_error(dxg.view, dx), dx_tolerance) << "dx " << what;
        EXPECT_LT(relative_error(dx_acc_g, dx_acc), dx_tolerance) << "dx accumulated " << what;
        EXPECT_TRUE(head_untouched(yg)) << "y written before the view, " << what;
        EXPECT_TRUE(head_untouched(dxg)) << "dx written before the view, " << what;
      }
    }
  }
}

TEST(PointwiseCuda, SrmsnormRowStatisticsAreDeterministic) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Shape shape{17, 5632};
    const Operand x = random_operand(shape, 0, 301, dtype),
                  dy = random_operand(shape, 0, 302, dtype);
    auto stats = [&] {
      Tensor sums = poisoned({17}, DType::F32), dots = poisoned({17}, DType::F32);
      srmsnorm_row_sums(x.gpu, sums);
      srmsnorm_row_dots(dy.gpu, x.gpu, dots);
      return std::pair{sums.to(Device::CPU).to_vector<float>(),
                       dots.to(Device::CPU).to_vector<float>()};
    };
    const auto first = stats();
    for (int run = 0; run < 3; ++run) EXPECT_EQ(stats(), first) << dtype_name(dtype);
  }
}

}  // namespace linpar
