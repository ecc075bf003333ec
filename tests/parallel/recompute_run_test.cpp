// `linpar train --recompute` under every parallel strategy, under mpirun:
// selective and full recomputation train the same bits as recompute none
// (every step's loss and gradient norm, every parameter after 3 steps, in
// f64 and f32) over DP, TP, Megatron-SP, 1F1B pipelines, ZeRO-1 and every SP
// kind, and equal the single process within 1e-9 in f64. The traffic is what
// the recomputing code sends: LASP and LASP-2 send no state again, the
// all-gather baseline gathers K and V again only under full recomputation,
// Ulysses sends its attention output back again under both, and TP's
// collectives are repeated under full recomputation alone (but for the
// channel mixer's output, which the rebuilt cache does not need).
#include <gtest/gtest.h>

#include "lasp/factory.h"
#include "parallel/training_run.h"

namespace linpar {

namespace {

using namespace linpar::testing;  // NOLINT: test helpers

struct Case {
  int dp = 1, tp = 1, pp = 1, sp = 1;
  bool tp_sp = false;
  int zero = 0;
  SequenceParallelKind kind = SequenceParallelKind::Lasp;
};

TrainOptions options_of(const Case& c, Recompute recompute, DType dtype) {
  TrainOptions o = quick_options(c.dp, c.zero);
  o.layout.tp = c.tp;
  o.layout.tp_sp = c.tp_sp;
  o.layout.pp = c.pp;
  o.layout.sp = c.sp;
  o.layout.sp_kind = c.kind;
  o.layout.recompute = recompute;
  o.model.attention_block = 5;  // partial blocks in every chunk
  o.dtype = dtype;
  return o;
}

constexpr int kSteps = 3;
enum Group { kDp, kTp, kPp, kSp };

void check(const Case& c) {
  ProcessGrid grid({c.dp, c.tp, c.pp, c.sp}, MPI_COMM_WORLD);
  const std::string layout =
      fmt::format("dp{} tp{}{} pp{} sp{} {} zero {}", c.dp, c.tp, c.tp_sp ? " tp-sp" : "", c.pp,
                  c.sp, sp_kind_name(c.kind), c.zero);
  for (DType dtype : {DType::F64, DType::F32}) {
    const TrainingRun none =
        train(options_of(c, Recompute::None, dtype), grid, kSteps, lasp::make_sequence_attention);
    for (Recompute recompute : {Recompute::Selective, Recompute::Full}) {
      const std::string what =
          fmt::format("{} {} {}", layout, recompute_name(recompute), dtype_name(dtype));
      const TrainingRun run =
          train(options_of(c, recompute, dtype), grid, kSteps, lasp::make_sequence_attention);
      for (int s = 0; s < kSteps; ++s) {
        const StepResult &got = run.steps[static_cast<size_t>(s)],
                         &want = none.steps[static_cast<size_t>(s)];
        EXPECT_EQ(got.loss, want.loss) << what << " step " << s + 1;
        EXPECT_EQ(got.grad_norm, want.grad_norm) << what << " step " << s + 1;
        EXPECT_EQ(got.comm_bytes[kDp], want.comm_bytes[kDp]) << what;
        EXPECT_EQ(got.comm_bytes[kPp], want.comm_bytes[kPp]) << what;
        const bool sp_again =
            c.sp > 1 &&
            (c.kind == SequenceParallelKind::Ulysses ||
             (c.kind == SequenceParallelKind::AllGather && recompute == Recompute::Full));
        if (sp_again) {
          EXPECT_GT(got.comm_bytes[kSp], want.comm_bytes[kSp]) << what;
        } else {
          EXPECT_EQ(got.comm_bytes[kSp], want.comm_bytes[kSp]) << what;
        }
        if (c.tp > 1 && recompute == Recompute::Full) {
          EXPECT_GT(got.comm_bytes[kTp], want.comm_bytes[kTp]) << what;
        } else {
          EXPECT_EQ(got.comm_bytes[kTp], want.comm_bytes[kTp]) << what;
        }
      }
      EXPECT_EQ(run.params, none.params) << what;
      if (dtype == DType::F64 && recompute == Recompute::Full && c.tp == 1) {
        // And the single process (whole tensors on every rank when tp is 1).
        ProcessGrid single({1, 1, 1, 1}, MPI_COMM_SELF);
        const TrainingRun one = train(options_of(Case{}, Recompute::None, dtype), single, kSteps);
        for (int s = 0; s < kSteps; ++s) {
          EXPECT_LT(relative(run.steps[static_cast<size_t>(s)].loss,
                             one.steps[static_cast<size_t>(s)].loss),
                    1e-9)
              << what << " vs one process, step " << s + 1;
        }
        if (c.pp == 1) expect_same_tensors(run.params, one.params, 1e-9, "parameter");
      }
    }
  }
}

}  // namespace

TEST(RecomputeRunNp2, Dp2) { check({.dp = 2}); }
TEST(RecomputeRunNp2, Dp2Zero1) { check({.dp = 2, .zero = 1}); }
TEST(RecomputeRunNp2, Tp2) { check({.tp = 2}); }
TEST(RecomputeRunNp2, Tp2TpSp) { check({.tp = 2, .tp_sp = true}); }
TEST(RecomputeRunNp2, Pp2) { check({.pp = 2}); }
TEST(RecomputeRunNp2, Sp2EveryKind) {
  for (SequenceParallelKind kind :
       {SequenceParallelKind::Lasp, SequenceParallelKind::Lasp2, SequenceParallelKind::AllGather,
        SequenceParallelKind::Ulysses}) {
    check({.sp = 2, .kind = kind});
  }
}
TEST(RecomputeRunNp4, Dp2Tp2) { check({.dp = 2, .tp = 2}); }
TEST(RecomputeRunNp4, Dp2Pp2) { check({.dp = 2, .pp = 2}); }
TEST(RecomputeRunNp4, Dp2Sp2Lasp) { check({.dp = 2, .sp = 2}); }
TEST(RecomputeRunNp4, Tp2TpSpPp2) { check({.tp = 2, .pp = 2, .tp_sp = true}); }
TEST(RecomputeRunNp4, Sp4LaspAndLasp2) {
  check({.sp = 4, .kind = SequenceParallelKind::Lasp});
  check({.sp = 4, .kind = SequenceParallelKind::Lasp2});
}

}  // namespace linpar
