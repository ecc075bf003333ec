// Megatron sequence parallelism (`--tp-sp`): with the residual stream on
// sequence shards the TP layouts train exactly the model they train without
// it (losses, gradient norms, every shard's gradients and parameters), alone,
// with DP and with PP; the TP bytes equal the closed form with all-gathers and
// reduce-scatters in place of all-reduces.
#include <gtest/gtest.h>

#include "training_run.h"

namespace linpar {

namespace {

using namespace linpar::testing;  // NOLINT: test helpers

TrainOptions tp_options(int dp, int tp, int pp, bool tp_sp, DType dtype) {
  TrainOptions o = quick_options(dp, 0);
  o.layout.tp = tp;
  o.layout.pp = pp;
  o.layout.tp_sp = tp_sp;
  o.dtype = dtype;
  return o;
}

// The same layout with and without --tp-sp, on the same ranks: f32 losses and
// gradient norms of 4 steps and the first step's gradients within 1e-5; f64
// parameters and gradients after 4 steps within 1e-9.
void check_same_as_tp(int dp, int tp, int pp) {
  ProcessGrid grid({dp, tp, pp, 1}, MPI_COMM_WORLD);
  const TrainingRun f32 = train(tp_options(dp, tp, pp, false, DType::F32), grid, 4);
  const TrainingRun f32_sp = train(tp_options(dp, tp, pp, true, DType::F32), grid, 4);
  expect_same_losses(f32, f32_sp, 1e-5);
  const TrainingRun first = train(tp_options(dp, tp, pp, false, DType::F32), grid, 1);
  const TrainingRun first_sp = train(tp_options(dp, tp, pp, true, DType::F32), grid, 1);
  expect_same_tensors(first.grads, first_sp.grads, 1e-5, "first-step gradient");
  const TrainingRun f64 = train(tp_options(dp, tp, pp, false, DType::F64), grid, 4);
  const TrainingRun f64_sp = train(tp_options(dp, tp, pp, true, DType::F64), grid, 4);
  expect_same_training(f64, f64_sp, 1e-9);
  expect_same_tensors(f64.grads, f64_sp.grads, 1e-9, "gradient");
}

}  // namespace

TEST(TpSequenceParallelNp2, Tp2TpSpEqualsTp2) { check_same_as_tp(1, 2, 1); }
TEST(TpSequenceParallelNp4, Tp4TpSpEqualsTp4) { check_same_as_tp(1, 4, 1); }
TEST(TpSequenceParallelNp4, Dp2Tp2TpSpEqualsDp2Tp2) { check_same_as_tp(2, 2, 1); }
TEST(TpSequenceParallelNp4, Tp2Pp2TpSpEqualsTp2Pp2) { check_same_as_tp(1, 2, 2); }

// Bytes per step over the TP group, summed over its T ranks. With the stream
// sharded, an all-gather of the [B, N/T, D] shards and a reduce-scatter into
// them each cost h = (T−1)·E/T per rank (E = rows·D·4 bytes, rows = B·N);
// AR(s) is an all-reduce of s = rows·4 bytes (per-token values):
//   forward:  embedding RS h; per layer 2 AG + 2 RS (4h) and the attention
//             norm's AR(s); final norm AG h; cross-entropy 3·AR(s);
//   backward: head RS h and the final norm re-gathered h; per layer for each
//             block AG of the output gradient, AG of the input (re-gathered
//             for the weight gradient, as Megatron does), RS of the input
//             gradient (6h) and the norm's AR(s); embedding AG h
//   = 5h + L·(10h + 2·AR(s)) + 3·AR(s) per micro-batch,
// plus the 8-byte all-reduce of the gradient norm per step. (TP alone sends
// 4h + L·(8h + 2·AR(s)) + 3·AR(s): the difference is the re-gathers.)
TEST(TpSequenceParallelNp2, CountedBytesEqualClosedForm) {
  ProcessGrid grid({1, 2, 1, 1}, MPI_COMM_WORLD);
  const TrainOptions o = tp_options(1, 2, 1, true, DType::F32);
  const int64_t T = 2, L = o.model.n_layers, rows = o.layout.micro_batch * o.layout.seq_len,
                m = o.layout.global_batch / o.layout.micro_batch;
  const int64_t h = (T - 1) * rows * o.model.width * 4 / T, s = rows * 4;
  const int64_t per_micro = 5 * h + L * (10 * h + 2 * all_reduce_bytes(T, s)) +
                            3 * all_reduce_bytes(T, s);
  const TrainingRun run = train(o, grid, 1);
  EXPECT_EQ(run.steps[0].comm_bytes[1], T * (m * per_micro + all_reduce_bytes(T, 8)));
}

}  // namespace linpar
