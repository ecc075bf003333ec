// Sequence parallelism in the real trainer, under mpirun: every --sp-kind
// trains the same model as one process (losses, gradient norms and every
// gradient within 1e-5 in f32; every parameter within 1e-9 in f64 after 4
// steps), with chunks that are not multiples of the attention block and LRPE
// in layer 0 (global positions); LASP composed with DP, TP, PP and
// DP×TP; the SP bytes counted per step equal each method's closed form, and
// grow with the sequence only for the methods that move tokens.
#include <gtest/gtest.h>

#include <map>

#include "lasp/factory.h"
#include "model/checkpoint.h"
#include "parallel/training_run.h"
#include "temp_dir.h"

namespace linpar {

namespace {

using namespace linpar::testing;  // NOLINT: test helpers

TrainOptions sp_options(int dp, int tp, int pp, int sp, SequenceParallelKind kind, DType dtype,
                        bool tp_sp = false) {
  TrainOptions o = quick_options(dp, 0);
  o.layout.tp_sp = tp_sp;
  o.layout.tp = tp;
  o.layout.pp = pp;
  o.layout.sp = sp;
  o.layout.sp_kind = kind;
  o.dtype = dtype;
  o.model.attention_block = 5;  // chunks of 24/T tokens: partial blocks for T = 2, 4
  return o;
}

struct NamedRun {
  std::vector<StepResult> steps;
  std::map<std::string, std::vector<double>> params, grads;
};

NamedRun train_named(const TrainOptions& o, ProcessGrid& grid, int steps) {
  Trainer trainer(o, grid, lasp::make_sequence_attention);
  NamedRun run;
  for (int s = 0; s < steps; ++s) run.steps.push_back(trainer.train_step());
  for (const Parameter& p : trainer.model().params().all()) {
    run.params[p.name] = p.value.to(DType::F64).to_vector<double>();
    run.grads[p.name] = p.grad.to(DType::F64).to_vector<double>();
  }
  return run;
}

// One process against the layout. f32: every step's loss and gradient norm
// within 1e-5, and every gradient of the first step (same parameters on both
// sides; later steps' parameters differ in f32 rounding that AdamW amplifies).
// f64: parameters and gradients after 4 steps within 1e-9. Compared by name
// where this rank holds whole tensors (tp == 1).
void check_equivalence(int dp, int tp, int pp, int sp, SequenceParallelKind kind,
                       bool tp_sp = false) {
  ProcessGrid single({1, 1, 1, 1}, MPI_COMM_SELF);
  ProcessGrid grid({dp, tp, pp, sp}, MPI_COMM_WORLD);
  auto compare = [&](const NamedRun& reference, const NamedRun& run, double tolerance,
                     bool grads, bool params, const std::string& what) {
    for (size_t s = 0; s < run.steps.size(); ++s) {
      EXPECT_LT(relative(run.steps[s].loss, reference.steps[s].loss), tolerance)
          << what << " step " << s + 1;
      EXPECT_LT(relative(run.steps[s].grad_norm, reference.steps[s].grad_norm), tolerance)
          << what << " step " << s + 1;
    }
    if (tp != 1 || !grads) return;
    for (const auto& [name, values] : run.grads) {
      EXPECT_LT(tensor_difference(reference.grads.at(name), values), tolerance)
          << what << " gradient " << name;
      if (params) {
        EXPECT_LT(tensor_difference(reference.params.at(name), run.params.at(name)), tolerance)
            << what << " " << name;
      }
    }
  };
  const std::string what =
      fmt::format("{} dp{} tp{} pp{} sp{}", sp_kind_name(kind), dp, tp, pp, sp);
  for (DType dtype : {DType::F32, DType::F64}) {
    const NamedRun reference = train_named(sp_options(1, 1, 1, 1, kind, dtype), single, 4);
    const NamedRun run = train_named(sp_options(dp, tp, pp, sp, kind, dtype, tp_sp), grid, 4);
    if (dtype == DType::F64) {
      compare(reference, run, 1e-9, true, true, what + " f64");
    } else {
      compare(reference, run, 1e-5, false, false, what + " f32, 4 steps");
    }
  }
  const NamedRun first = train_named(sp_options(1, 1, 1, 1, kind, DType::F32), single, 1);
  compare(first, train_named(sp_options(dp, tp, pp, sp, kind, DType::F32, tp_sp), grid, 1), 1e-5, true,
          false, what + " f32, first step");
}

const std::vector<SequenceParallelKind> kAllKinds = {
    SequenceParallelKind::Lasp, SequenceParallelKind::Lasp2, SequenceParallelKind::AllGather,
    SequenceParallelKind::Ulysses};

// Closed-form SP bytes of one step, summed over all ranks. Per layer l and
// micro-batch, per SP group of T ranks, with Hl = H/tp local heads, state
// elements S = B·Hl·dk_l·d, chunk elements K = B·Hl·C·dk_l and V = B·Hl·C·d
// (dk_l = 2d in the LRPE layer), e bytes per element:
//   lasp:      2·(T−1)·S·e          (T−1 sends forward, T−1 backward)
//   lasp2:     2·T·(T−1)·S·e        (one all-gather each way, (T−1)·S per rank)
//   allgather: 2·T·(T−1)·(K+V)·e    (all-gather K, V; reduce-scatter dK, dV)
//   ulysses:   2·(T−1)·(2K+2V)·e    (4 all-to-alls each way, (T−1)/T of B·Hl·C·(dk or d) per rank)
int64_t sp_bytes_closed_form(const TrainOptions& o, SequenceParallelKind kind) {
  const ModelConfig& m = o.model;
  const int64_t T = o.layout.sp, B = o.layout.micro_batch, Hl = m.n_heads / o.layout.tp,
                d = m.width / m.n_heads, C = o.layout.seq_len / T, e = 4;
  const int64_t micro_batches = o.layout.global_batch / (o.layout.dp * B);
  const int64_t groups = o.layout.dp * o.layout.tp * o.layout.pp;
  int64_t per_group = 0;
  for (int64_t l = 0; l < m.n_layers; ++l) {
    const int64_t dk = m.layer_uses_lrpe(l) ? 2 * d : d;
    const int64_t S = B * Hl * dk * d, K = B * Hl * C * dk, V = B * Hl * C * d;
    switch (kind) {
      case SequenceParallelKind::Lasp: per_group += 2 * (T - 1) * S * e; break;
      case SequenceParallelKind::Lasp2: per_group += 2 * T * (T - 1) * S * e; break;
      case SequenceParallelKind::AllGather: per_group += 2 * T * (T - 1) * (K + V) * e; break;
      case SequenceParallelKind::Ulysses: per_group += 2 * (T - 1) * (2 * K + 2 * V) * e; break;
    }
  }
  return groups * micro_batches * per_group;
}

}  // namespace

TEST(SpTrainingNp2, EveryKindSp2EqualsOneProcess) {
  for (SequenceParallelKind kind : kAllKinds) check_equivalence(1, 1, 1, 2, kind);
}
TEST(SpTrainingNp4, EveryKindSp4EqualsOneProcess) {
  for (SequenceParallelKind kind : kAllKinds) check_equivalence(1, 1, 1, 4, kind);
}
TEST(SpTrainingNp8, LaspSp8EqualsOneProcess) {
  check_equivalence(1, 1, 1, 8, SequenceParallelKind::Lasp);
}
TEST(SpTrainingNp4, LaspWithDp2EqualsOneProcess) {
  check_equivalence(2, 1, 1, 2, SequenceParallelKind::Lasp);
}
TEST(SpTrainingNp4, LaspWithTp2EqualsOneProcess) {
  check_equivalence(1, 2, 1, 2, SequenceParallelKind::Lasp);
}
// LASP across chunks and Megatron SP inside the TP group at once.
TEST(SpTrainingNp4, LaspWithTp2TpSpEqualsOneProcess) {
  check_equivalence(1, 2, 1, 2, SequenceParallelKind::Lasp, true);
}
TEST(SpTrainingNp4, LaspWithPp2EqualsOneProcess) {
  check_equivalence(1, 1, 2, 2, SequenceParallelKind::Lasp);
}
TEST(SpTrainingNp8, LaspDp2Tp2Sp2EqualsOneProcess) {
  check_equivalence(2, 2, 1, 2, SequenceParallelKind::Lasp);
}

TEST(SpTrainingNp4, CountedSpBytesEqualClosedForm) {
  ProcessGrid grid({1, 1, 1, 4}, MPI_COMM_WORLD);
  for (SequenceParallelKind kind : kAllKinds) {
    const TrainOptions o = sp_options(1, 1, 1, 4, kind, DType::F32);
    const NamedRun run = train_named(o, grid, 1);
    EXPECT_EQ(run.steps[0].comm_bytes[3], sp_bytes_closed_form(o, kind)) << sp_kind_name(kind);
    EXPECT_GT(run.steps[0].comm_bytes[3], 0);
  }
}

// 4× the sequence: LASP's and LASP-2's state messages stay the same size,
// all-gather's and Ulysses' token messages grow 4×.
TEST(SpTrainingNp2, SpBytesAgainstSequenceLength) {
  ProcessGrid grid({1, 1, 1, 2}, MPI_COMM_WORLD);
  for (SequenceParallelKind kind : kAllKinds) {
    TrainOptions o = sp_options(1, 1, 1, 2, kind, DType::F32);
    const int64_t short_run = train_named(o, grid, 1).steps[0].comm_bytes[3];
    o.layout.seq_len *= 4;
    const int64_t long_run = train_named(o, grid, 1).steps[0].comm_bytes[3];
    EXPECT_EQ(long_run, sp_bytes_closed_form(o, kind)) << sp_kind_name(kind);
    const bool moves_tokens =
        kind == SequenceParallelKind::AllGather || kind == SequenceParallelKind::Ulysses;
    EXPECT_EQ(long_run, moves_tokens ? 4 * short_run : short_run) << sp_kind_name(kind);
  }
}

// A checkpoint written under sp2 (the SP ranks hold the same parameters; rank
// sp 0 writes) resumes on one process with the same losses.
TEST(SpTrainingNp2, CheckpointFromSp2ResumesOnOneProcess) {
  ProcessGrid single({1, 1, 1, 1}, MPI_COMM_SELF);
  ProcessGrid grid({1, 1, 1, 2}, MPI_COMM_WORLD);
  const auto kind = SequenceParallelKind::Lasp;
  const NamedRun reference = train_named(sp_options(1, 1, 1, 1, kind, DType::F32), single, 4);
  TempDir dir;
  const std::string ckpt = rank0_path(dir / "ckpt");
  TrainOptions two = sp_options(1, 1, 1, 2, kind, DType::F32);
  two.ckpt_dir = ckpt;
  {
    Trainer trainer(two, grid, lasp::make_sequence_attention);
    trainer.train_step();
    trainer.train_step();
    trainer.save();
  }
  if (grid.rank() == 0) {
    Trainer resumed(sp_options(1, 1, 1, 1, kind, DType::F32), single);
    resumed.load(latest_checkpoint(ckpt), true);
    EXPECT_LT(relative(resumed.train_step().loss, reference.steps[2].loss), 1e-5);
    EXPECT_LT(relative(resumed.train_step().loss, reference.steps[3].loss), 1e-5);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace linpar
