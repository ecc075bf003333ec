// AdamW (and plain SGD) on the GPU takes the CPU's steps: f32 values, grads
// and moments within f32 rounding after several steps, weight decay only where
// the parameter asks for it; the gradient norm and clipping agree. Skips
// without a GPU.
#include <gtest/gtest.h>

#include "core/cuda/cuda_runtime.h"
#include "gpu_compare.h"
#include "gradcheck.h"
#include "model/optimizer.h"

namespace linpar {

using namespace testing;

namespace {

ParameterSet two_parameters(Device device) {
  ParameterSet params;
  params.add_values("w", random_tensor({33, 17}, 1, 0.5, DType::F32), /*weight_decay=*/true);
  params.add_values("theta", random_tensor({45}, 2, 0.5, DType::F32), /*weight_decay=*/false);
  params.place(device, DType::F32);
  return params;
}

void set_gradients(ParameterSet& params, uint64_t seed) {
  for (Parameter& p : params.all()) p.grad.copy_from(random_tensor(p.grad.shape(), seed++, 1.0, DType::F32));
}

}  // namespace

TEST(OptimizerCuda, AdamWAndSgdStepsEqualTheCpu) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  for (bool sgd : {false, true}) {
    AdamWConfig config;
    config.weight_decay = 0.1;
    config.plain_sgd = sgd;
    ParameterSet cpu = two_parameters(Device::CPU), gpu = two_parameters(Device::CUDA);
    AdamW on_cpu(config, cpu), on_gpu(config, gpu);
    for (int step = 0; step < 5; ++step) {
      set_gradients(cpu, 100 + 10 * step);
      set_gradients(gpu, 100 + 10 * step);
      const double norm_cpu = clip_grad_norm(cpu, 5.0), norm_gpu = clip_grad_norm(gpu, 5.0);
      EXPECT_NEAR(norm_gpu, norm_cpu, 1e-6 * norm_cpu) << "step " << step;
      on_cpu.step(1e-2);
      on_gpu.step(1e-2);
    }
    for (size_t i = 0; i < cpu.all().size(); ++i) {
      EXPECT_LT(relative_error(gpu.all()[i].value, cpu.all()[i].value), 1e-6) << cpu.all()[i].name << " sgd " << sgd;
      if (!sgd) {
        EXPECT_LT(relative_error(on_gpu.first_moments()[i], on_cpu.first_moments()[i]), 1e-6);
        EXPECT_LT(relative_error(on_gpu.second_moments()[i], on_cpu.second_moments()[i]), 1e-6);
      }
    }
  }
}

// Mixed precision: the compute copies follow the f32 values.
TEST(OptimizerCuda, ComputeCopiesFollowTheValues) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  ParameterSet params;
  params.add_values("w", random_tensor({8, 9}, 3, 0.5, DType::F32), true);
  params.place(Device::CUDA, DType::BF16);
  Parameter& w = params.get("w");
  ASSERT_TRUE(w.compute.defined());
  EXPECT_EQ(w.compute.dtype(), DType::BF16);
  EXPECT_EQ(w.value.dtype(), DType::F32);
  AdamW adamw(AdamWConfig{}, params);
  EXPECT_TRUE(adamw.writes_compute_copies());  // the update writes them in its own pass
  set_gradients(params, 7);
  adamw.step(1e-1);
  EXPECT_EQ(relative_error(w.compute, w.value.to(DType::BF16)), 0.0);
  params.refresh_compute();  // and an explicit refresh agrees
  EXPECT_EQ(relative_error(w.compute, w.value.to(DType::BF16)), 0.0);
}

}  // namespace linpar
