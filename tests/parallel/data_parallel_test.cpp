// Data parallelism under mpirun: dp2 (and dp4) training equals one process
// step by step under DDP and every ZeRO stage, the counted DP bytes equal the
// closed-form volumes, and checkpoints move between layouts and stages.
#include "parallel/data_parallel.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "model/checkpoint.h"
#include "parallel/trainer.h"
#include "temp_dir.h"
#include "training_run.h"

namespace linpar {

namespace {

using namespace linpar::testing;

// In f32: every step's loss and gradient norm, and (plain DP) every averaged
// gradient of the first step, within 1e-5 relative. In f64, where summation
// order no longer shows, the parameters after 4 AdamW steps within 1e-10 (in
// f32, Adam's m/√v turns reduction-order rounding of near-zero gradients into
// differences of order lr, so parameters are compared where arithmetic is exact
// enough to say something).
void check_equivalence(int zero) {
  const int n = world_size();
  ProcessGrid single({1, 1, 1, 1}, MPI_COMM_SELF);  // every rank computes the reference itself
  ProcessGrid grid({n, 1, 1, 1}, MPI_COMM_WORLD);
  for (DType dtype : {DType::F32, DType::F64}) {
    TrainOptions reference_options = quick_options(1, 0), options = quick_options(n, zero);
    reference_options.dtype = options.dtype = dtype;
    options.bucket_bytes = 64 << 10;  // several buckets in flight during backward
    const TrainingRun reference = train(reference_options, single, 4);
    const TrainingRun parallel = train(options, grid, 4);
    if (dtype == DType::F32) {
      expect_same_losses(reference, parallel, 1e-5);
      if (zero == 0) {  // the first step's gradients: same weights, only summation order differs
        expect_same_tensors(train(reference_options, single, 1).grads,
                            train(options, grid, 1).grads, 1e-5, "gradient");
      }
    } else {
      expect_same_losses(reference, parallel, 1e-10);
      expect_same_tensors(reference.params, parallel.params, 1e-10, "parameter");
    }
  }
}

// Bytes sent per step, summed over the n ranks of the DP group, for P f32
// parameters in a single bucket: plain DP n · 2(n−1)/n · 4P. ZeRO over
// parameter groups of shards S_g = ⌈s_g/n⌉ (parallel/zero.h), m
// micro-batches, the squared norm's all-reduce 2(n−1)·8/n: stage 1
// n · [Σ (n−1)·4S_g reduce-scatter + Σ (n−1)·4S_g all-gather + norm]; stage 2
// the reduce-scatters m times; stage 3 those and 2m all-gathers, none after
// the update.
void check_bytes() {
  const int64_t n = world_size();
  ProcessGrid grid({static_cast<int>(n), 1, 1, 1}, MPI_COMM_WORLD);
  const ModelConfig config = preset_config("tnl-tiny");
  const int64_t P = config.parameter_count();
  TrainOptions plain = quick_options(static_cast<int>(n), 0);
  plain.bucket_bytes = int64_t{1} << 40;
  EXPECT_EQ(train(plain, grid, 1).steps[0].comm_bytes[0], n * (2 * (n - 1) * 4 * P / n));
  TransNormerLLM model(config, 1);
  int64_t shards = 0;
  for (const std::vector<Parameter*>& group : model.parameter_groups()) {
    int64_t s = 0;
    for (const Parameter* p : group) s += p->value.numel();
    shards += (s + n - 1) / n;
  }
  ASSERT_GT(model.parameter_groups().size(), 2u);
  const int64_t per_pass = (n - 1) * 4 * shards, norm = 2 * (n - 1) * 8 / n;
  const int64_t m = 2;  // micro-batches per step
  const int64_t expected[] = {0, per_pass + per_pass + norm, m * per_pass + per_pass + norm,
                              m * per_pass + 2 * m * per_pass + norm};
  for (int zero : {1, 2, 3}) {
    TrainOptions o = quick_options(static_cast<int>(n), zero);
    o.layout.global_batch = m * n * o.layout.micro_batch;
    EXPECT_EQ(train(o, grid, 1).steps[0].comm_bytes[0], n * expected[zero]) << "zero " << zero;
  }
}

}  // namespace

TEST(DataParallelNp2, EqualsOneProcess) { check_equivalence(0); }
TEST(DataParallelNp2, Zero1EqualsOneProcess) { check_equivalence(1); }
TEST(DataParallelNp2, Zero2EqualsOneProcess) { check_equivalence(2); }
TEST(DataParallelNp2, Zero3EqualsOneProcess) { check_equivalence(3); }
TEST(DataParallelNp2, CountedBytesEqualClosedForm) { check_bytes(); }
TEST(DataParallelNp4, EqualsOneProcess) { check_equivalence(0); }
TEST(DataParallelNp4, Zero1EqualsOneProcess) { check_equivalence(1); }
TEST(DataParallelNp4, Zero2EqualsOneProcess) { check_equivalence(2); }
TEST(DataParallelNp4, Zero3EqualsOneProcess) { check_equivalence(3); }
TEST(DataParallelNp4, CountedBytesEqualClosedForm) { check_bytes(); }

TEST(DataParallelNp2, BucketsStartDuringBackward) {
  ProcessGrid grid({2, 1, 1, 1}, MPI_COMM_WORLD);
  TransNormerLLM model(preset_config("tnl-tiny"), 1);
  GradientBuckets buckets(model.params(), grid.dp(), 16 << 10, model.parameter_groups());
  EXPECT_GT(buckets.bucket_count(), 3u);
  std::vector<int32_t> ids(2 * 16);
  for (size_t i = 0; i < ids.size(); ++i)
    ids[i] = static_cast<int32_t>((i * 31 + grid.rank()) % 256);
  Tensor tokens = Tensor::from_vector<int32_t>({2, 16}, ids);
  TransNormerLLM::Cache cache;
  model.params().zero_grad();
  model.forward(tokens, tokens, cache);
  // The buckets' hooks, and the count of all-reduces started once layer 0's
  // backward has finished.
  struct Watch final : ParameterHooks {
    GradientBuckets* buckets;
    const TransNormerLLM* model;
    Communicator* dp;
    int64_t calls_at_last_layer = -1;
    void after_backward(int group, bool last) override {
      buckets->after_backward(group, last);
      if (model->parameter_groups()[static_cast<size_t>(group)].front()->name.rfind("layers.0.",
                                                                                    0) == 0)
        calls_at_last_layer = dp->counters().calls[static_cast<int>(CollectiveKind::AllReduce)];
    }
  } watch;
  watch.buckets = &buckets;
  watch.model = &model;
  watch.dp = &grid.dp();
  model.set_parameter_hooks(&watch);
  model.backward(cache, 1.0);
  const int64_t calls_at_last_layer = watch.calls_at_last_layer;
  // Buckets of the LM head and layer 1 were started before layer 0's backward ended.
  EXPECT_GT(calls_at_last_layer, 0);
  buckets.finish();
}

TEST(DataParallelNp2, CheckpointsMoveBetweenLayouts) {
  // dp2 (plain and every ZeRO stage) saves after 2 steps; one process loads
  // and trains 2 more; the result equals 4 uninterrupted single-process steps.
  ProcessGrid single({1, 1, 1, 1}, MPI_COMM_SELF);
  ProcessGrid grid({2, 1, 1, 1}, MPI_COMM_WORLD);
  const TrainingRun reference = train(quick_options(1, 0), single, 4);
  for (int zero : {0, 1, 2, 3}) {
    testing::TempDir dir;  // a different path per rank; rank 0's is the one used
    const std::string ckpt = rank0_path(dir / "ckpt");
    TrainOptions options = quick_options(2, zero);
    options.ckpt_dir = ckpt;
    {
      Trainer trainer(options, grid);
      trainer.train_step();
      trainer.train_step();
      trainer.save();
    }
    if (grid.rank() == 0) {
      Trainer resumed(quick_options(1, 0), single);
      resumed.load(latest_checkpoint(ckpt), true);
      TrainingRun run;
      run.steps = {reference.steps[0], reference.steps[1], resumed.train_step(),
                   resumed.train_step()};
      for (const Parameter& p : resumed.model().params().all()) {
        run.params.push_back(p.value.to(DType::F64).to_vector<double>());
      }
      // Losses and gradient norms to 1e-5; parameters to 1e-4 of their largest
      // value: the dp2 half sums the batch's gradient in another order, and
      // AdamW's m/√v turns those last-bit differences in near-zero gradients
      // into ~1e-5 steps (measured 1.05e-5 on one machine's OpenBLAS kernels).
      expect_same_losses(reference, run, 1e-5);
      expect_same_tensors(reference.params, run.params, 1e-4, "parameter");
      // And back: one process's checkpoint loads under this stage on dp2 (below).
      TrainOptions single_options = quick_options(1, 0);
      single_options.ckpt_dir = ckpt + "_single";
      Trainer writer(single_options, single);
      writer.train_step();
      writer.train_step();
      writer.save();
    }
    MPI_Barrier(MPI_COMM_WORLD);
    Trainer loaded(quick_options(2, zero), grid);
    loaded.load(latest_checkpoint(ckpt + "_single"), true);
    const StepResult third = loaded.train_step();
    EXPECT_LT(relative(third.loss, reference.steps[2].loss), 1e-5) << "zero " << zero;
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

}  // namespace linpar
