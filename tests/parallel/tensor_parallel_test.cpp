// Tensor parallelism under mpirun: tp2, tp4 and dp2×tp2 (with and without
// ZeRO-1) train the same model as one process, TP traffic equals its closed
// form, and checkpoints move between TP layouts.
#include <gtest/gtest.h>

#include "model/checkpoint.h"
#include "temp_dir.h"
#include "training_run.h"

namespace linpar {

namespace {

using namespace linpar::testing;  // NOLINT: test helpers

// This rank's box of a global tensor stored whole (row-major) in `whole`.
std::vector<double> box_of(const std::vector<double>& whole, const Parameter& p) {
  const size_t rank = p.global_shape.size();
  std::vector<double> out;
  out.reserve(static_cast<size_t>(shape_numel(p.box_shape)));
  std::vector<int64_t> index(rank, 0);
  for (int64_t i = 0; i < shape_numel(p.box_shape); ++i) {
    int64_t global = 0;
    for (size_t d = 0; d < rank; ++d) global = global * p.global_shape[d] + p.offset[d] + index[d];
    out.push_back(whole[static_cast<size_t>(global)]);
    for (size_t d = rank; d-- > 0;) {
      if (++index[d] < p.box_shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

struct ShardedRun {
  TrainingRun run;
  std::vector<const Parameter*> params;
  std::unique_ptr<Trainer> trainer;
};

ShardedRun train_sharded(const TrainOptions& o, ProcessGrid& grid, int steps) {
  ShardedRun sharded;
  sharded.trainer = std::make_unique<Trainer>(o, grid);
  for (int s = 0; s < steps; ++s) sharded.run.steps.push_back(sharded.trainer->train_step());
  for (const Parameter& p : sharded.trainer->model().params().all()) {
    sharded.run.params.push_back(p.value.to(DType::F64).to_vector<double>());
    sharded.run.grads.push_back(p.grad.to(DType::F64).to_vector<double>());
    sharded.params.push_back(&p);
  }
  return sharded;
}

// The reference run's tensors cut down to the boxes the sharded run holds.
TrainingRun as_boxes(const TrainingRun& reference, const ShardedRun& sharded) {
  TrainingRun boxes;
  boxes.steps = reference.steps;
  for (size_t i = 0; i < sharded.params.size(); ++i) {
    boxes.params.push_back(box_of(reference.params[i], *sharded.params[i]));
    boxes.grads.push_back(box_of(reference.grads[i], *sharded.params[i]));
  }
  return boxes;
}

// f32: every step's loss and gradient norm within 1e-5 relative, and the
// first step's gradients (same weights on both sides, so only summation order
// differs) within 1e-5 of each tensor's largest entry. f64: losses, and the
// parameters and gradients after 4 AdamW steps within 1e-9 (in f32, Adam's
// m/√v turns order-of-summation rounding of near-zero gradients into
// differences of order lr that later gradients inherit).
void check_equivalence(int dp, int tp, int zero, LrpeLayers lrpe) {
  ProcessGrid single({1, 1, 1, 1}, MPI_COMM_SELF);
  ProcessGrid grid({dp, tp, 1, 1}, MPI_COMM_WORLD);
  for (DType dtype : {DType::F32, DType::F64}) {
    TrainOptions reference_options = quick_options(1, 0), options = quick_options(dp, zero);
    options.layout.tp = tp;
    reference_options.model.lrpe = options.model.lrpe = lrpe;
    reference_options.dtype = options.dtype = dtype;
    const TrainingRun reference = train(reference_options, single, 4);
    const ShardedRun sharded = train_sharded(options, grid, 4);
    const TrainingRun expected = as_boxes(reference, sharded);
    if (dtype == DType::F32) {
      expect_same_losses(expected, sharded.run, 1e-5);
      if (zero == 0) {
        const ShardedRun first = train_sharded(options, grid, 1);
        const TrainingRun first_expected = as_boxes(train(reference_options, single, 1), first);
        expect_same_tensors(first_expected.grads, first.run.grads, 1e-5, "gradient");
      }
    } else {
      expect_same_losses(expected, sharded.run, 1e-9);
      expect_same_tensors(expected.params, sharded.run.params, 1e-9, "parameter");
      if (zero == 0) expect_same_tensors(expected.grads, sharded.run.grads, 1e-9, "gradient");
    }
  }
}

}  // namespace

TEST(TensorParallelNp2, Tp2EqualsOneProcess) { check_equivalence(1, 2, 0, LrpeLayers::First); }
TEST(TensorParallelNp4, Tp4EqualsOneProcess) { check_equivalence(1, 4, 0, LrpeLayers::All); }
TEST(TensorParallelNp4, Dp2Tp2EqualsOneProcess) { check_equivalence(2, 2, 0, LrpeLayers::First); }
TEST(TensorParallelNp4, Dp2Tp2Zero1EqualsOneProcess) {
  check_equivalence(2, 2, 1, LrpeLayers::First);
}
TEST(TensorParallelNp8, Dp4Tp2EqualsOneProcess) { check_equivalence(4, 2, 0, LrpeLayers::First); }

// Bytes sent per step over the TP group, summed over its T ranks, with
// AR(b) = 2(T−1)·b/T for an all-reduce of b bytes, E = rows·D·4 (one
// activation), s = rows·4 (one value per token), rows = B·N, m micro-batches:
//   per micro-batch: embedding AR(E); per layer: norm sums AR(s), out_proj
//   AR(E), l3 AR(E); cross-entropy max, sum, target AR(s) each; backward: head
//   AR(E); per layer: l1/l2 input AR(E), norm dots AR(s), qkvu input AR(E)
//   = 2·AR(E) + L·(4·AR(E) + 2·AR(s)) + 3·AR(s)
// plus one 8-byte all-reduce of the squared gradient norm per step.
TEST(TensorParallelNp2, CountedBytesEqualClosedForm) {
  ProcessGrid grid({1, 2, 1, 1}, MPI_COMM_WORLD);
  const TrainOptions o = [] {
    TrainOptions options = quick_options(1, 0);
    options.layout.tp = 2;
    return options;
  }();
  const int64_t T = 2, L = o.model.n_layers, rows = o.layout.micro_batch * o.layout.seq_len,
                m = o.layout.global_batch / o.layout.micro_batch;
  const int64_t E = rows * o.model.width * 4, s = rows * 4;
  const int64_t per_micro = 2 * all_reduce_bytes(T, E) +
                            L * (4 * all_reduce_bytes(T, E) + 2 * all_reduce_bytes(T, s)) +
                            3 * all_reduce_bytes(T, s);
  const TrainingRun run = train(o, grid, 1);
  EXPECT_EQ(run.steps[0].comm_bytes[1], T * (m * per_micro + all_reduce_bytes(T, 8)));
  EXPECT_EQ(run.steps[0].comm_bytes[0], 0);
}

TEST(TensorParallelNp4, CheckpointsMoveBetweenTpLayouts) {
  // dp2×tp2 saves after 2 steps; one process resumes and continues; the losses
  // follow the uninterrupted single-process run. Then tp1's checkpoint loads
  // under dp2×tp2.
  ProcessGrid single({1, 1, 1, 1}, MPI_COMM_SELF);
  ProcessGrid grid({2, 2, 1, 1}, MPI_COMM_WORLD);
  const TrainingRun reference = train(quick_options(1, 0), single, 4);
  TempDir dir;
  const std::string ckpt = rank0_path(dir / "ckpt");
  TrainOptions options = quick_options(2, 0);
  options.layout.tp = 2;
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
    EXPECT_LT(relative(resumed.train_step().loss, reference.steps[2].loss), 1e-5);
    EXPECT_LT(relative(resumed.train_step().loss, reference.steps[3].loss), 1e-5);
    TrainOptions single_options = quick_options(1, 0);
    single_options.ckpt_dir = ckpt + "_single";
    Trainer writer(single_options, single);
    writer.train_step();
    writer.train_step();
    writer.save();
  }
  MPI_Barrier(MPI_COMM_WORLD);
  Trainer loaded(options, grid);
  loaded.load(latest_checkpoint(ckpt + "_single"), true);
  EXPECT_LT(relative(loaded.train_step().loss, reference.steps[2].loss), 1e-5);
  EXPECT_LT(relative(loaded.train_step().loss, reference.steps[3].loss), 1e-5);
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace linpar
