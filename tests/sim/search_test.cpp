// The layout search on spaces small enough to count by hand: how many
// layouts it enumerates, that each prediction is simulate_step's for the same
// layout (sharing micro-batch costs changes nothing), the order, the winner
// where the answer follows from the parts, and the explanation.
#include "sim/search.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "model/config.h"

namespace linpar::sim {

namespace {

// tnl-tiny (2 layers, 4 heads of 16) on one node of 4 GPUs, 64 tokens, 4
// samples, micro-batches 1 and 2.
SearchSpace tiny_space() {
  SearchSpace s;
  s.seq_len = 64;
  s.global_batch = 4;
  s.max_micro_batch = 2;
  s.zero_stages = {0, 1};  // (the hand counts below; every stage: EveryZeroStageWhereItShards)
  return s;
}

ClusterSpec free_network(int gpus) {
  ClusterSpec c = make_cluster("h100", gpus, 1);
  c.intra = {"free", 1e12, 0.0};
  c.inter = {"free", 1e12, 0.0};
  return c;
}

}  // namespace

TEST(SimSearch, EnumeratesTheHandCountedLayouts) {
  const SimModel m = SimModel::from_preset("tnl-tiny");
  const ClusterSpec c = make_cluster("h100", 4, 1);
  // (tp, pp, sp) with tp · pp · sp | 4, pp ≤ 2 layers, dp the rest; the
  // layouts of each: tp_sp on/off where tp > 1, 4 SP kinds where sp > 1,
  // micro-batches (powers of two ≤ 2 dividing 4/dp), 3 recompute modes,
  // ZeRO 0/1 where dp·sp > 1:
  //   tp1 pp1 sp1 dp4:  1 shard × 1 mb × 3 × 2 =  6
  //   tp1 pp1 sp2 dp2:  4       × 2    × 3 × 2 = 48
  //   tp1 pp1 sp4 dp1:  4       × 2    × 3 × 2 = 48
  //   tp1 pp2 sp1 dp2:  1       × 2    × 3 × 2 = 12
  //   tp1 pp2 sp2 dp1:  4       × 2    × 3 × 2 = 48
  //   tp2 pp1 sp1 dp2:  2       × 2    × 3 × 2 = 24
  //   tp2 pp1 sp2 dp1:  8       × 2    × 3 × 2 = 96
  //   tp2 pp2 sp1 dp1:  2       × 2    × 3     = 12
  //   tp4 pp1 sp1 dp1:  2       × 2    × 3     = 12
  SearchStats stats;
  const std::vector<SearchResult> all = search_layouts(m, c, tiny_space(), {}, &stats);
  EXPECT_EQ(all.size(), 306u);
  EXPECT_EQ(stats.evaluated, 306);
  EXPECT_EQ(stats.fitting, 306);  // a 0.3M-parameter model fits anywhere
  EXPECT_EQ(stats.rejected, 0);
  EXPECT_EQ(stats.schedules, 306);
  // One micro-batch cost per (shard, pp, micro-batch, recompute), shared by ZeRO 0/1.
  EXPECT_EQ(stats.micro_batch_costs,
            3 * (1 + 4 * 2 + 4 * 2 + 2 + 4 * 2 + 2 * 2 + 8 * 2 + 2 * 2 + 2 * 2));
  EXPECT_GT(stats.layouts_per_second(), 0);
  // CO2 τ = 2 adds one layout where dp > 1 and ZeRO is off: 3 + 24 + 6 + 12.
  SearchSpace co2 = tiny_space();
  co2.co2_taus = {0, 2};
  EXPECT_EQ(search_layouts(m, c, co2).size(), 306u + 45u);
  // GPipe doubles the layouts with pp = 2: 12 + 48 + 12.
  SearchSpace gpipe = tiny_space();
  gpipe.schedules = {PipelineSchedule::OneFOneB, PipelineSchedule::GPipe};
  EXPECT_EQ(search_layouts(m, c, gpipe).size(), 306u + 72u);
  // Only Ulysses: 3 SP kinds fewer for each of the 5 shards with sp > 1
  // (the 4 rows above with sp 2 or 4, tp2's twice), each 2 mb × 3 × 2.
  SearchSpace ulysses = tiny_space();
  ulysses.sp_kinds = {SequenceParallelKind::Ulysses};
  EXPECT_EQ(search_layouts(m, c, ulysses).size(), 306u - 3u * 5u * 12u);
}

TEST(SimSearch, EveryZeroStageWhereItShards) {
  // By default stages 0–3 where dp·sp > 1: the 141 ZeRO-1 layouts of the
  // hand count above twice more (ZeRO-2, ZeRO-3); a single rank per shard
  // runs stage 0 alone.
  const SimModel m = SimModel::from_preset("tnl-tiny");
  const ClusterSpec c = make_cluster("h100", 4, 1);
  SearchSpace s = tiny_space();
  s.zero_stages = SearchSpace{}.zero_stages;
  const std::vector<SearchResult> all = search_layouts(m, c, s);
  EXPECT_EQ(all.size(), 306u + 2u * 141u);
  int per_stage[4] = {};
  for (const SearchResult& r : all) {
    ++per_stage[r.layout.zero];
    if (r.layout.zero > 0) EXPECT_GT(r.layout.dp * r.layout.sp, 1) << describe_layout(r.layout);
  }
  EXPECT_EQ(per_stage[0], 306 - 141);
  for (int z : {1, 2, 3}) EXPECT_EQ(per_stage[z], 141) << "zero " << z;
  // Stage 0 alone: no ZeRO layout.
  s.zero_stages = {0};
  EXPECT_EQ(search_layouts(m, c, s).size(), 306u - 141u);
}

TEST(SimSearch, CombinationsTheModelRefusesAreCountedNotSearched) {
  // tnl-tiny's 4 heads on 8 GPUs: Ulysses cannot split the heads per TP
  // rank over sp when sp does not divide them (tp 1 sp 8; tp 2 sp 4 and
  // tp 4 sp 2, each with and without tp_sp) and tp 8 does not divide them
  // (with and without tp_sp): 1 + 2 + 2 + 2 refused, the first Ulysses'.
  const SimModel m = SimModel::from_preset("tnl-tiny");
  SearchSpace s = tiny_space();
  s.global_batch = 8;
  SearchStats stats;
  const std::vector<SearchResult> all =
      search_layouts(m, make_cluster("h100", 8, 1), s, {}, &stats);
  EXPECT_EQ(stats.rejected, 7);
  EXPECT_NE(stats.first_rejection.find("ulysses"), std::string::npos) << stats.first_rejection;
  for (const SearchResult& r : all) {
    EXPECT_NO_THROW(validate_layout(m, make_cluster("h100", 8, 1), r.layout))
        << describe_layout(r.layout);
  }
}

TEST(SimSearch, EveryPredictionIsSimulateStepsAndTheOrderHolds) {
  const SimModel m = SimModel::from_preset("tnl-tiny");
  ClusterSpec c = make_cluster("h100", 4, 1);
  SearchSpace s = tiny_space();
  s.co2_taus = {0, 2};
  s.schedules = {PipelineSchedule::OneFOneB, PipelineSchedule::GPipe};
  // A GPU small enough that some layouts do not fit: between the smallest
  // and the largest need.
  std::vector<SearchResult> all = search_layouts(m, c, s);
  int64_t least = all.front().memory.total, most = least;
  for (const SearchResult& r : all) {
    least = std::min(least, r.memory.total);
    most = std::max(most, r.memory.total);
  }
  c.gpu.hbm_gib = static_cast<double>(least + most) / 2 / (1 << 30);
  SearchStats stats;
  all = search_layouts(m, c, s, {}, &stats);
  ASSERT_GT(stats.fitting, 0);
  ASSERT_LT(stats.fitting, stats.evaluated);
  for (size_t i = 0; i < all.size(); ++i) {
    const SearchResult& r = all[i];
    const StepPrediction p = simulate_step(m, c, r.layout);
    EXPECT_EQ(r.fits, p.fits) << describe_layout(r.layout);
    EXPECT_EQ(r.memory.total, p.memory.total);
    EXPECT_EQ(r.memory_message, p.memory_message);
    if (i > 0) {
      // Fitting first, by throughput; the others by memory.
      const SearchResult& prev = all[i - 1];
      EXPECT_TRUE(prev.fits || !r.fits) << i;
      if (prev.fits && r.fits) EXPECT_GE(prev.tokens_per_gpu_per_s, r.tokens_per_gpu_per_s) << i;
      if (!prev.fits && !r.fits) EXPECT_LE(prev.memory.total, r.memory.total) << i;
    }
    if (!r.fits) {
      EXPECT_EQ(r.step_seconds, 0.0);  // never scheduled
      EXPECT_NE(r.memory_message, "");
      continue;
    }
    // Bit for bit: the shared micro-batch costs and the untraced schedule
    // give simulate_step's numbers.
    EXPECT_EQ(r.step_seconds, p.step_seconds) << describe_layout(r.layout);
    EXPECT_EQ(r.tokens_per_gpu_per_s, p.tokens_per_gpu_per_s);
    EXPECT_EQ(r.mfu, p.mfu);
    EXPECT_EQ(r.compute_seconds, p.compute_seconds);
    EXPECT_EQ(r.comm_seconds, p.comm_seconds);
    EXPECT_EQ(r.bubble_seconds, p.bubble_seconds);
    EXPECT_EQ(r.comm_bytes_per_gpu, p.comm_bytes_per_gpu);
  }
}

TEST(SimSearch, InterleavingIsTriedWhereTheMicroBatchesAndLayersAllowIt) {
  // tnl-tiny with 4 layers: pp 2 × 2 chunks fits the layers (pp 4 × 2 does
  // not); the micro-batches per step must be a multiple of pp = 2:
  //   tp1 pp2 sp1 dp2: micro-batch 1 only (m = 2)     1 × 1 × 3 × 2 =  6
  //   tp1 pp2 sp2 dp1: micro-batches 1, 2 (m = 4, 2)  4 × 2 × 3 × 2 = 48
  //   tp2 pp2 sp1 dp1: micro-batches 1, 2             2 × 2 × 3     = 12
  ModelConfig config = preset_config("tnl-tiny");
  config.n_layers = 4;
  const SimModel m(config);
  const ClusterSpec c = make_cluster("h100", 4, 1);
  SearchSpace s = tiny_space();
  const size_t plain = search_layouts(m, c, s).size();
  s.pp_chunks = {1, 2};
  const std::vector<SearchResult> all = search_layouts(m, c, s);
  EXPECT_EQ(all.size(), plain + 66u);
  int interleaved = 0;
  for (const SearchResult& r : all) {
    if (r.layout.pp_chunks == 1) continue;
    ++interleaved;
    const StepPrediction p = simulate_step(m, c, r.layout);
    EXPECT_EQ(r.step_seconds, p.step_seconds) << describe_layout(r.layout);
    EXPECT_EQ(r.memory.total, p.memory.total) << describe_layout(r.layout);
  }
  EXPECT_EQ(interleaved, 66);
  // tnl-tiny's 2 layers leave no room for a second chunk.
  SearchSpace tiny = tiny_space();
  tiny.pp_chunks = {1, 2};
  EXPECT_EQ(search_layouts(SimModel::from_preset("tnl-tiny"), c, tiny).size(), 306u);
}

TEST(SimSearch, OverAFreeNetworkDataParallelismWins) {
  // Nothing to communicate costs anything, so every other degree only adds
  // work (TP repeats the unsplit norms, SP adds LASP's inter-chunk terms, a
  // pipeline idles), recomputation adds work, and ZeRO updates half the
  // parameters; ZeRO-3's update writes only its shards (AdamW writes the
  // shard's bf16 copy; no refresh of every compute copy after an
  // all-gather), and its gathers cost nothing here: dp 2, no
  // recomputation, ZeRO 3 (until 2026-12-07 ZeRO-1 copied the gradients and
  // values into flat vectors, 16 bytes a parameter more than it saved, and
  // ZeRO 0 won; ZeRO-1 won until ZeRO-3 came, 2026-12-08).
  const SimModel m = SimModel::from_preset("tnl-385m");
  SearchSpace s;
  s.seq_len = 2048;
  s.global_batch = 8;
  s.max_micro_batch = 4;
  const std::vector<SearchResult> all = search_layouts(m, free_network(2), s);
  const SimLayout& best = all.front().layout;
  ASSERT_TRUE(all.front().fits);
  EXPECT_EQ(best.dp, 2) << describe_layout(best);
  EXPECT_EQ(best.recompute, Recompute::None);
  EXPECT_EQ(best.zero, 3);
  const std::string why = explain_winner(all);
  EXPECT_NE(why.find(describe_layout(best)), std::string::npos) << why;
  EXPECT_NE(why.find("the next best one change away"), std::string::npos) << why;
}

TEST(SimSearch, AModelTooLargeForOneGpuNeedsThePipeline) {
  // 4 layers of width 768 with 3 heads (so tp 2 is refused): 31M parameters,
  // 18 bytes each on a GPU (f32 master, bf16 copy, f32 gradient, AdamW m and
  // v) = 0.52 GiB per replica; on a 0.4-GiB GPU only pp 2 (half the layers
  // per GPU) fits without ZeRO-3. Recomputation only adds work there, dp·sp
  // = 1 leaves no ZeRO: the best is dp 1, tp 1, pp 2, sp 1, recompute none.
  // ZeRO-3 over the 2 ranks (dp 2, or sp 2) shards the parameters instead
  // (9 bytes each plus two layers gathered): then pp 1 fits too.
  ModelConfig cfg;
  cfg.name = "wide-4";
  cfg.n_layers = 4;
  cfg.width = 768;
  cfg.n_heads = 3;
  cfg.glu_dim = 2048;
  cfg.vocab_size = 256;
  const SimModel m(cfg);
  ASSERT_GT(18.0 * static_cast<double>(m.parameter_count()), 0.5 * (1 << 30));
  ClusterSpec c = make_cluster("h100", 2, 1);
  c.gpu.hbm_gib = 0.4;
  SearchSpace s;
  s.seq_len = 256;
  s.global_batch = 8;
  s.max_micro_batch = 2;
  s.zero_stages = {0, 1, 2};
  SearchStats stats;
  const std::vector<SearchResult> all = search_layouts(m, c, s, {}, &stats);
  ASSERT_GT(stats.fitting, 0);
  for (const SearchResult& r : all) {
    if (r.fits) EXPECT_EQ(r.layout.pp, 2) << describe_layout(r.layout);
    if (r.layout.pp == 1) EXPECT_FALSE(r.fits) << describe_layout(r.layout);
  }
  const SimLayout& best = all.front().layout;
  EXPECT_EQ(best.pp, 2);
  EXPECT_EQ(best.tp, 1);
  EXPECT_EQ(best.recompute, Recompute::None);
  EXPECT_EQ(best.zero, 0);
  const std::string why = explain_winner(all);
  EXPECT_NE(why.find(describe_layout(best)), std::string::npos) << why;
  EXPECT_NE(why.find("pp 2 with"), std::string::npos) << why;
  s.zero_stages = {0, 1, 2, 3};
  bool zero3_without_pipeline = false;
  for (const SearchResult& r : search_layouts(m, c, s)) {
    if (r.fits && r.layout.pp == 1) {
      EXPECT_EQ(r.layout.zero, 3) << describe_layout(r.layout);
      EXPECT_EQ(r.layout.dp * r.layout.sp, 2) << describe_layout(r.layout);  // over dp or sp ranks
      zero3_without_pipeline = true;
    }
  }
  EXPECT_TRUE(zero3_without_pipeline);
  // On a GPU smaller than any half, nothing fits; the explanation names the smallest need.
  c.gpu.hbm_gib = 0.1;
  const std::vector<SearchResult> none = search_layouts(m, c, s);
  ASSERT_FALSE(none.front().fits);
  EXPECT_EQ(explain_winner(none).rfind("no layout fits: the smallest (", 0), 0u)
      << explain_winner(none);
  EXPECT_NE(explain_winner(none).find(none.front().memory_message), std::string::npos);
}

TEST(SimSearch, BadSpacesAreRefused) {
  const SimModel m = SimModel::from_preset("tnl-tiny");
  const ClusterSpec c = make_cluster("h100", 2, 1);
  SearchSpace s = tiny_space();
  s.seq_len = 0;
  EXPECT_THROW(search_layouts(m, c, s), UserError);
  s = tiny_space();
  s.max_micro_batch = 0;
  EXPECT_THROW(search_layouts(m, c, s), UserError);
  s = tiny_space();
  s.co2_taus = {0, -4};
  EXPECT_THROW(search_layouts(m, c, s), UserError);
  s = tiny_space();
  s.co2_taus = {0, 4, 4};
  EXPECT_THROW(search_layouts(m, c, s), UserError);
  for (const std::vector<int>& chunks : {std::vector<int>{}, {0}, {1, 2, 2}}) {
    s = tiny_space();
    s.pp_chunks = chunks;
    EXPECT_THROW(search_layouts(m, c, s), UserError);
  }
  s = tiny_space();
  s.sp_kinds = {SequenceParallelKind::Lasp};
  EXPECT_THROW(search_layouts(SimModel::from_preset("llama2-7b"), c, s), UserError);
  EXPECT_EQ(explain_winner({}), "");
}

}  // namespace linpar::sim
