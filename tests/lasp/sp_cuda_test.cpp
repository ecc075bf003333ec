// Sequence parallelism on GPUs, under `mpirun -np 2` (one GPU per rank, NCCL
// SP group): every --sp-kind trains tnl-tiny with --sp 2 as one CPU process
// trains it (f32: losses within 1e-4 over 4 steps), moving as many SP bytes
// as the same layout on CPU ranks; in bf16 (f32 states) the losses follow the
// CPU within bf16 tolerance. Skips without a GPU.
#include <gtest/gtest.h>

#include "core/cuda/cuda_runtime.h"
#include "lasp/factory.h"
#include "parallel/training_run.h"

namespace linpar {

namespace {

using namespace linpar::testing;  // NOLINT: test helpers

const SequenceParallelKind kAllKinds[] = {SequenceParallelKind::Lasp, SequenceParallelKind::Lasp2,
                                          SequenceParallelKind::AllGather,
                                          SequenceParallelKind::Ulysses};

TrainOptions sp_options(int sp, SequenceParallelKind kind, Device device, DType dtype) {
  TrainOptions o = quick_options(1, 0);
  o.layout.sp = sp;
  o.layout.sp_kind = kind;
  o.device = device;
  o.dtype = dtype;
  o.model.attention_block = 5;  // as the CPU SP tests (the CUDA kernels tile on their own)
  return o;
}

}  // namespace

TEST(SpTrainingCudaNp2, EveryKindOnTwoGpusTracksOneCpuProcess) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  ProcessGrid alone({1, 1, 1, 1}, MPI_COMM_SELF);
  ProcessGrid cpu_ranks({1, 1, 1, 2}, MPI_COMM_WORLD);
  ProcessGrid gpus({1, 1, 1, 2}, MPI_COMM_WORLD, Device::CUDA);
  // Without SP the kind plays no part: one reference for all.
  const TrainingRun want =
      train(sp_options(1, SequenceParallelKind::Lasp, Device::CPU, DType::F32), alone, 4);
  for (SequenceParallelKind kind : kAllKinds) {
    const char* name = sp_kind_name(kind);
    const TrainingRun got = train(sp_options(2, kind, Device::CUDA, DType::F32), gpus, 4,
                                  lasp::make_sequence_attention);
    ASSERT_EQ(got.steps.size(), want.steps.size());
    for (size_t s = 0; s < want.steps.size(); ++s) {
      EXPECT_LT(relative(got.steps[s].loss, want.steps[s].loss), 1e-4) << name << " step " << s + 1;
      EXPECT_LT(relative(got.steps[s].grad_norm, want.steps[s].grad_norm), 1e-3)
          << name << " step " << s + 1;
    }
    // f32 states and f32 tokens: the same SP traffic as on CPU ranks.
    const TrainingRun on_cpu = train(sp_options(2, kind, Device::CPU, DType::F32), cpu_ranks, 1,
                                     lasp::make_sequence_attention);
    EXPECT_GT(got.steps[0].comm_bytes[3], 0) << name;
    EXPECT_EQ(got.steps[0].comm_bytes[3], on_cpu.steps[0].comm_bytes[3]) << name;
  }
}

TEST(SpTrainingCudaNp2, Bf16EveryKindOnTwoGpusTracksOneCpuProcess) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  ProcessGrid alone({1, 1, 1, 1}, MPI_COMM_SELF);
  ProcessGrid gpus({1, 1, 1, 2}, MPI_COMM_WORLD, Device::CUDA);
  const TrainingRun want =
      train(sp_options(1, SequenceParallelKind::Lasp, Device::CPU, DType::F32), alone, 4);
  for (SequenceParallelKind kind : kAllKinds) {
    const TrainingRun got = train(sp_options(2, kind, Device::CUDA, DType::BF16), gpus, 4,
                                  lasp::make_sequence_attention);
    for (size_t s = 0; s < want.steps.size(); ++s) {
      EXPECT_LT(relative(got.steps[s].loss, want.steps[s].loss), 1e-2)
          << sp_kind_name(kind) << " step " << s + 1;
    }
  }
}

}  // namespace linpar
