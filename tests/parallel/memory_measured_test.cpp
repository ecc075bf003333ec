// The memory model against the trainer's own run: on CPU ranks under mpirun,
// the most bytes linpar's tensors hold at once during a training step
// (core/allocator.h, CpuAllocator's peak: parameters, gradients, AdamW's
// moments, ZeRO's shards and group buffers, the micro-batches' caches in flight, backward's
// temporaries, the pipeline's buffers) is within 5% of what `linpar sim`
// says each rank needs (sim::memory_per_gpu for its stage, f32 on the CPU),
// over layouts of every ZeRO stage the trainer runs, every recompute kind,
// pipelines with micro-batches in flight (1F1B, GPipe, interleaved) and
// sequence parallelism.
#include <gtest/gtest.h>

#include "core/allocator.h"
#include "lasp/factory.h"
#include "parallel/training_run.h"
#include "sim/memory.h"

namespace linpar {

namespace {

using namespace linpar::testing;  // NOLINT: test helpers

struct Case {
  const char* name;
  int dp = 1, tp = 1, pp = 1, sp = 1;
  int zero = 0;
  Recompute recompute = Recompute::None;
  PipelineSchedule schedule = PipelineSchedule::OneFOneB;
  int pp_chunks = 1;
};

// The largest relative difference over the ranks; prints each rank's.
double check(const Case& c) {
  ProcessGrid grid({c.dp, c.tp, c.pp, c.sp}, MPI_COMM_WORLD);
  TrainOptions o = quick_options(c.dp, c.zero);
  // A model whose state and activations both weigh: 4 layers of width 128,
  // 256-token samples, 8 micro-batches of 2 per replica.
  o.model.n_layers = 4;
  o.model.width = 128;
  o.model.n_heads = 4;
  o.model.glu_dim = 256;
  o.layout.tp = c.tp;
  o.layout.pp = c.pp;
  o.layout.sp = c.sp;
  o.layout.recompute = c.recompute;
  o.layout.schedule = c.schedule;
  o.layout.pp_chunks = c.pp_chunks;
  o.layout.seq_len = 256;
  o.layout.micro_batch = 2;
  o.layout.global_batch = 16 * c.dp;
  Trainer trainer(o, grid, lasp::make_sequence_attention);
  trainer.train_step();  // anything made on the first step is made
  cpu_allocator().reset_peak();
  trainer.train_step();
  const int64_t measured = cpu_allocator().peak_bytes();
  sim::MemoryLayout l;
  static_cast<Layout&>(l) = o.layout;
  l.element_bytes = 4;
  l.stage = grid.coordinates().pp;
  const sim::MemoryBreakdown model = sim::memory_per_gpu(o.model, l);
  const double relative_difference =
      std::abs(static_cast<double>(measured - model.total)) / static_cast<double>(model.total);
  std::printf(
      "# %s rank %d: measured %lld bytes, model %lld (%+.2f%%): %s\n", c.name, grid.rank(),
      static_cast<long long>(measured), static_cast<long long>(model.total),
      100.0 * static_cast<double>(measured - model.total) / static_cast<double>(model.total),
      sim::memory_summary(model).c_str());
  return relative_difference;
}

}  // namespace

TEST(MemoryMeasuredNp2, TheRunHoldsWhatTheModelSays) {
  for (const Case& c :
       {Case{"dp2", 2}, Case{"dp2 zero1", 2, 1, 1, 1, 1},
        Case{"dp2 zero1 full", 2, 1, 1, 1, 1, Recompute::Full},
        Case{"dp2 selective", 2, 1, 1, 1, 0, Recompute::Selective},
        Case{"dp2 zero2", 2, 1, 1, 1, 2},
        Case{"dp2 zero2 selective", 2, 1, 1, 1, 2, Recompute::Selective},
        Case{"dp2 zero3", 2, 1, 1, 1, 3}, Case{"dp2 zero3 full", 2, 1, 1, 1, 3, Recompute::Full},
        Case{"tp2", 1, 2}, Case{"pp2 1f1b", 1, 1, 2},
        Case{"pp2 gpipe", 1, 1, 2, 1, 0, Recompute::None, PipelineSchedule::GPipe},
        Case{"pp2 full", 1, 1, 2, 1, 0, Recompute::Full},
        Case{"pp2 × 2", 1, 1, 2, 1, 0, Recompute::None, PipelineSchedule::OneFOneB, 2},
        Case{"sp2 lasp", 1, 1, 1, 2},
        Case{"sp2 lasp selective", 1, 1, 1, 2, 0, Recompute::Selective}}) {
    EXPECT_LT(check(c), 0.05) << c.name;
  }
}

TEST(MemoryMeasuredNp4, TheRunHoldsWhatTheModelSays) {
  for (const Case& c :
       {Case{"dp2 pp2 zero1", 2, 1, 2, 1, 1}, Case{"tp2 sp2 full", 1, 2, 1, 2, 0, Recompute::Full},
        Case{"dp2 sp2 zero1 selective", 2, 1, 1, 2, 1, Recompute::Selective},
        Case{"pp4 gpipe", 1, 1, 4, 1, 0, Recompute::None, PipelineSchedule::GPipe},
        Case{"pp2 × 2 sp2 full", 1, 1, 2, 2, 0, Recompute::Full, PipelineSchedule::OneFOneB, 2},
        Case{"dp4 zero3", 4, 1, 1, 1, 3}, Case{"dp2 pp2 zero2", 2, 1, 2, 1, 2},
        Case{"dp2 sp2 zero3 selective", 2, 1, 1, 2, 3, Recompute::Selective},
        Case{"dp2 pp2 zero3 full", 2, 1, 2, 1, 3, Recompute::Full}}) {
    EXPECT_LT(check(c), 0.05) << c.name;
  }
}

}  // namespace linpar
