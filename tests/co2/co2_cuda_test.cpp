// CO2 on GPUs: the outer state stays in host memory, the inner steps run on
// the GPU; the same training as CO2 on CPU ranks. Skips without a GPU.
#include <gtest/gtest.h>

#include "co2/outer_loop.h"
#include "core/cuda/cuda_runtime.h"
#include "parallel/training_run.h"

namespace linpar {

using namespace testing;

// CO2 on two GPUs (outer state in host memory, the outer all-reduce over MPI
// on its own thread) trains what CO2 on two CPU ranks trains.
TEST(TrainingCudaNp2, Co2OnTwoGpusTracksCo2OnTheCpu) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  co2::Co2Options c;
  c.tau = 2;
  c.outer_momentum = 0.5;
  ProcessGrid on_cpu({2, 1, 1, 1}, MPI_COMM_WORLD);
  const TrainingRun want = train(quick_options(2, 0), on_cpu, 6, {}, co2::make_outer_loop(c));
  TrainOptions o = quick_options(2, 0);
  o.device = Device::CUDA;
  o.layout.dp = 2;
  ProcessGrid on_gpu({2, 1, 1, 1}, MPI_COMM_WORLD, Device::CUDA);
  const TrainingRun got = train(o, on_gpu, 6, {}, co2::make_outer_loop(c));
  for (size_t s = 0; s < want.steps.size(); ++s) {
    EXPECT_LT(relative(got.steps[s].loss, want.steps[s].loss), 1e-4) << "step " << s + 1;
  }
}

}  // namespace linpar
