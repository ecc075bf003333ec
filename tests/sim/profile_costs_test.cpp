// A measured profile as the cost source: a hand-written linpar-profile-1 file
// with round rates, so that every expected time below is computed by hand;
// each lookup path and fallback, the collective interpolation, and every
// error load_profile reports.
#include "sim/profile_costs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error_types.h"
#include "model/config.h"
#include "model/plan_model.h"
#include "model/transnormer.h"
#include "named_op.h"
#include "temp_dir.h"

namespace linpar::sim {
namespace {

using nlohmann::json;

json gemm(const char* layer, const char* pass, double tflops) {
  // m·n·k = 4e9: 2mnk = 8e9 FLOPs; seconds = 8e9 / (tflops · 1e12).
  return {{"layer", layer},
          {"pass", pass},
          {"m", 1000},
          {"n", 4000},
          {"k", 1000},
          {"dtype", "bf16"},
          {"seconds", 8e9 / (tflops * 1e12)},
          {"tflops", tflops}};
}

json collective(const char* kind, int ranks, int64_t bytes, double busbw, double factor) {
  const double algbw = busbw / factor;
  return {{"kind", kind},        {"ranks", ranks},
          {"bytes", bytes},      {"seconds", static_cast<double>(bytes) / (algbw * 1e9)},
          {"algbw_gbps", algbw}, {"busbw_gbps", busbw}};
}

// Rates (TFLOP/s): qkvu_proj 100 forward, 50 input gradient, 25 weight
// gradient; out_proj forward only (80); channel_mixer.l1 200/100/100;
// channel_mixer.l3 none; lm_head 400/400/200. Attention: dk 16 at 10 forward,
// 5 backward; dk 32 at 4 and 2. Copy: 1000 GB/s.
json test_profile() {
  json p = {{"format", "linpar-profile-1"},
            {"device", "cuda"},
            {"ranks", 8},
            {"model", "tnl-tiny"},
            {"seq_len", 128},
            {"micro_batch", 2},
            {"tp", 1}};
  p["gemm"] = json::array(
      {gemm("qkvu_proj", "forward", 100), gemm("qkvu_proj", "backward_input", 50),
       gemm("qkvu_proj", "backward_weight", 25), gemm("out_proj", "forward", 80),
       gemm("channel_mixer.l1", "forward", 200), gemm("channel_mixer.l1", "backward_input", 100),
       gemm("channel_mixer.l1", "backward_weight", 100), gemm("lm_head", "forward", 400),
       gemm("lm_head", "backward_input", 400), gemm("lm_head", "backward_weight", 200)});
  auto attention = [](int dk, double forward, double backward) {
    return json{{"batch", 2},
                {"heads", 4},
                {"length", 128},
                {"dk", dk},
                {"dv", 16},
                {"block", 64},
                {"dtype", "bf16"},
                {"forward_seconds", 1e-3},
                {"backward_seconds", 2e-3},
                {"forward_tflops", forward},
                {"backward_tflops", backward}};
  };
  p["lightning_attention"] = json::array({attention(16, 10, 5), attention(32, 4, 2)});
  p["memory"] = {{"copy_bytes", 1 << 28}, {"seconds", 2.0 * (1 << 28) / 1e12}, {"gbps", 1000}};
  // all_reduce over 4 ranks: busbw 30 GB/s at 1e6 bytes, 60 at 1e7, 90 at 1e9
  // (listed out of order: the loader sorts them).
  p["collectives"] = json::array({collective("all_reduce", 4, 1'000'000'000, 90, 1.5),
                                  collective("all_reduce", 4, 1'000'000, 30, 1.5),
                                  collective("all_reduce", 4, 10'000'000, 60, 1.5),
                                  collective("all_gather", 2, 1'000'000, 10, 0.5),
                                  collective("reduce_scatter", 8, 1'000'000, 35, 0.875),
                                  collective("all_to_all", 4, 1'000'000, 30, 0.75),
                                  collective("send_recv", 2, 1'000'000, 20, 1.0)});
  return p;
}

std::string write(const testing::TempDir& dir, const json& profile, const char* name = "p.json") {
  const std::string path = dir / name;
  std::ofstream(path) << profile.dump(2);
  return path;
}

// The roofline fallback: 1000 TFLOP/s bf16, 2000 GB/s, efficiencies 0.5
// (matrix products), 0.1 (attention), 0.5 (memory).
const GpuSpec kGpu{"test", 1000.0, 50.0, 80.0, 2000.0};
// The plain roofline (no fixed cost per product), for round numbers.
const Efficiency kEff{.matmul = 0.5, .attention = 0.1, .memory = 0.5, .elementwise = 0.5,
                        .matmul_overhead_us = 0};

PlannedOp op(const std::string& name, double flops, double bytes = 0, int64_t dk = 0) {
  return testing_ops::named_op(name, static_cast<int64_t>(flops), static_cast<int64_t>(bytes / 2),
                               static_cast<int64_t>(bytes / 2), static_cast<int16_t>(dk));
}

class ProfileCosts : public ::testing::Test {
 protected:
  void SetUp() override { profile_ = load_profile(write(dir_, test_profile())); }
  ProfiledOp cost(const std::string& name, double flops, double bytes = 0, int64_t dk = 0) {
    return profile_op_cost(op(name, flops, bytes, dk), profile_, kGpu, kEff);
  }
  testing::TempDir dir_;
  MeasuredProfile profile_;
};

TEST_F(ProfileCosts, LoadsEveryField) {
  EXPECT_EQ(profile_.device, "cuda");
  EXPECT_EQ(profile_.model, "tnl-tiny");
  EXPECT_EQ(profile_.ranks, 8);
  EXPECT_EQ(profile_.seq_len, 128);
  EXPECT_EQ(profile_.micro_batch, 2);
  EXPECT_EQ(profile_.tp, 1);
  ASSERT_EQ(profile_.gemms.size(), 10u);
  EXPECT_EQ(profile_.gemms[1].layer, "qkvu_proj");
  EXPECT_EQ(profile_.gemms[1].pass, "backward_input");
  EXPECT_EQ(profile_.gemms[1].m * profile_.gemms[1].n * profile_.gemms[1].k, 4'000'000'000);
  EXPECT_DOUBLE_EQ(profile_.gemms[1].tflops, 50);
  ASSERT_EQ(profile_.attention.size(), 2u);
  EXPECT_EQ(profile_.attention[1].dk, 32);
  EXPECT_DOUBLE_EQ(profile_.attention[1].backward_tflops, 2);
  EXPECT_DOUBLE_EQ(profile_.copy_gbps, 1000);
  ASSERT_EQ(profile_.collectives.size(), 7u);
  // Sorted by kind, ranks, bytes.
  EXPECT_EQ(profile_.collectives[0].kind, CollectiveKind::AllReduce);
  EXPECT_EQ(profile_.collectives[0].bytes, 1'000'000);
  EXPECT_EQ(profile_.collectives[2].bytes, 1'000'000'000);
  EXPECT_EQ(profile_.collectives[3].kind, CollectiveKind::AllGather);
}

TEST_F(ProfileCosts, AtTheMeasuredShapeAProductTakesTheMeasuredTime) {
  // The profiled qkvu_proj forward: 2mnk = 8e9 FLOPs in 8e9 / 100e12 s.
  EXPECT_NEAR(cost("layers.0.token_mixer.qkvu_proj.forward", 8e9).seconds,
              profile_.gemms[0].seconds, 1e-15);
}

TEST_F(ProfileCosts, ForwardProductsUseTheirLayersForwardRate) {
  // 2e12 FLOPs and 1e9 bytes (1 ms at the copy rate): compute-bound.
  const ProfiledOp qkvu = cost("layers.3.token_mixer.qkvu_proj.forward", 2e12, 1e9);
  EXPECT_NEAR(qkvu.seconds, 2e12 / 100e12, 1e-12);
  EXPECT_EQ(qkvu.source, CostSource::MeasuredGemm);
  EXPECT_NEAR(cost("layers.3.token_mixer.out_proj.forward", 2e12).seconds, 2e12 / 80e12, 1e-12);
  EXPECT_NEAR(cost("layers.3.channel_mixer.l1.forward", 2e12).seconds, 2e12 / 200e12, 1e-12);
  // l2 has l1's shape and runs at l1's rate.
  EXPECT_NEAR(cost("layers.3.channel_mixer.l2.forward", 2e12).seconds, 2e12 / 200e12, 1e-12);
  EXPECT_NEAR(cost("lm_head.forward", 2e12).seconds, 2e12 / 400e12, 1e-12);
}

TEST_F(ProfileCosts, BackwardProductsAreTheInputAndWeightGradientsAtTheirRates) {
  // The plan counts 2·(2mnk): half at the input-gradient rate, half at the
  // weight-gradient rate.
  EXPECT_NEAR(cost("layers.0.token_mixer.qkvu_proj.backward", 4e12).seconds,
              2e12 / 50e12 + 2e12 / 25e12, 1e-12);  // 0.04 + 0.08
  EXPECT_NEAR(cost("layers.0.channel_mixer.l1.backward", 4e12).seconds, 2 * (2e12 / 100e12), 1e-12);
  EXPECT_NEAR(cost("layers.0.channel_mixer.l2.backward", 4e12).seconds, 2 * (2e12 / 100e12), 1e-12);
  EXPECT_NEAR(cost("lm_head.backward", 4e12).seconds, 2e12 / 400e12 + 2e12 / 200e12, 1e-12);
}

TEST_F(ProfileCosts, OtherShapesScaleByFlopsAtTheMeasuredRate) {
  // Half the profiled shape's FLOPs (a smaller micro-batch): half the time.
  const double measured = profile_.gemms[0].seconds;
  EXPECT_NEAR(cost("layers.0.token_mixer.qkvu_proj.forward", 4e9).seconds, measured / 2, 1e-15);
  EXPECT_NEAR(cost("layers.0.token_mixer.qkvu_proj.forward", 8e10).seconds, measured * 10, 1e-15);
}

TEST_F(ProfileCosts, ProductsMeasuredAtSeveralSizesInterpolateTheirRateInLogFlops) {
  // qkvu_proj forward also measured at m = 4000 (3.2e10 FLOPs) at 200 TFLOP/s:
  // 100 at 8e9, 150 halfway in log (1.6e10), 200 from 3.2e10 up, 100 below 8e9.
  json j = test_profile();
  json big = gemm("qkvu_proj", "forward", 200);
  big["m"] = 4000;
  big["seconds"] = 3.2e10 / 200e12;
  j["gemm"].push_back(big);
  profile_ = load_profile(write(dir_, j));
  EXPECT_NEAR(cost("layers.0.token_mixer.qkvu_proj.forward", 1.6e10).seconds, 1.6e10 / 150e12, 1e-15);
  EXPECT_NEAR(cost("layers.0.token_mixer.qkvu_proj.forward", 6.4e10).seconds, 6.4e10 / 200e12, 1e-15);
  EXPECT_NEAR(cost("layers.0.token_mixer.qkvu_proj.forward", 4e9).seconds, 4e9 / 100e12, 1e-15);
  // Attention dk 16 also at batch 8: 2e10 FLOPs forward at 20 TFLOP/s
  // (the batch-2 entry: 1e10 at 10), so √2·1e10 runs at 15.
  json a = j["lightning_attention"][0];
  a["batch"] = 8;
  a["forward_tflops"] = 20;
  j["lightning_attention"].push_back(a);
  profile_ = load_profile(write(dir_, j));
  const double flops = std::sqrt(2.0) * 1e10;
  EXPECT_NEAR(cost("layers.0.token_mixer.lightning_attention.forward", flops, 0, 16).seconds, flops / 15e12, 1e-9 * flops / 15e12);
  EXPECT_NEAR(cost("layers.0.token_mixer.lightning_attention.forward", 1e9, 0, 16).seconds, 1e9 / 10e12, 1e-15);
}

TEST_F(ProfileCosts, OverlapEntryIsReadWhenPresent) {
  EXPECT_FALSE(profile_.has_overlap);
  json j = test_profile();
  j["overlap"] = {{"compute_slowdown", 0.25}, {"comm_slowdown", 0.5}};
  const MeasuredProfile p = load_profile(write(dir_, j));
  EXPECT_TRUE(p.has_overlap);
  EXPECT_DOUBLE_EQ(p.overlap_compute_slowdown, 0.25);
  EXPECT_DOUBLE_EQ(p.overlap_comm_slowdown, 0.5);
  j["overlap"]["comm_slowdown"] = -0.1;
  EXPECT_THROW(load_profile(write(dir_, j)), UserError);
}

TEST_F(ProfileCosts, ProductsBoundByMemoryTakeTheirBytesAtTheCopyRate) {
  // 2e12 FLOPs at 400 TFLOP/s = 5 ms; 1e10 bytes at 1000 GB/s = 10 ms.
  const ProfiledOp head = cost("lm_head.forward", 2e12, 1e10);
  EXPECT_NEAR(head.seconds, 0.01, 1e-12);
  EXPECT_EQ(head.source, CostSource::MeasuredGemm);
}

TEST_F(ProfileCosts, ProductsTheProfileLacksFallBackToTheRoofline) {
  // channel_mixer.l3 is not in the profile, out_proj has no backward entries:
  // max(2e12 / (1000e12 · 0.5), 1e9 / (2000e9 · 0.5)) = 4 ms.
  for (const char* name :
       {"layers.1.channel_mixer.l3.forward", "layers.1.token_mixer.out_proj.backward"}) {
    const ProfiledOp c = cost(name, 2e12, 1e9);
    EXPECT_NEAR(c.seconds, 4e-3, 1e-12) << name;
    EXPECT_EQ(c.source, CostSource::Roofline) << name;
  }
}

TEST_F(ProfileCosts, OpsOfOtherModelsFallBackToTheRoofline) {
  // The profile measures TransNormer's products and kernels. A softmax
  // transformer's products (classed Matmul) and fused core (a class of its
  // own) take the roofline.
  for (const char* name : {"layers.0.mlp.fc1.forward", "layers.0.attention.qkv_proj.backward",
                           "layers.0.attention.core.forward"}) {
    const PlannedOp o = op(name, 2e12, 1e9, 16);
    const ProfiledOp c = profile_op_cost(o, profile_, kGpu, kEff);
    EXPECT_EQ(c.seconds, op_seconds(o, kGpu, kEff)) << name;
    EXPECT_EQ(c.source, CostSource::Roofline) << name;
  }
}

TEST_F(ProfileCosts, AttentionUsesTheRateOfItsKeyWidth) {
  const std::string forward = "layers.0.token_mixer.lightning_attention.forward";
  const std::string backward = "layers.0.token_mixer.lightning_attention.backward";
  EXPECT_NEAR(cost(forward, 1e11, 0, 16).seconds, 1e11 / 10e12, 1e-12);
  EXPECT_NEAR(cost(forward, 1e11, 0, 32).seconds, 1e11 / 4e12, 1e-12);
  EXPECT_NEAR(cost(backward, 1e11, 0, 16).seconds, 1e11 / 5e12, 1e-12);
  EXPECT_NEAR(cost(backward, 1e11, 0, 32).seconds, 1e11 / 2e12, 1e-12);
  EXPECT_EQ(cost(forward, 1e11, 0, 16).source, CostSource::MeasuredAttention);
  // The sequence-parallel strategies' attention ops run at the same rates.
  for (const char* name :
       {"layers.2.token_mixer.lasp.intra.forward", "layers.2.token_mixer.lasp.inter.forward",
        "layers.2.token_mixer.lasp2.intra.forward",
        "layers.2.token_mixer.allgather.attention.forward",
        "layers.2.token_mixer.ulysses.attention.forward"}) {
    EXPECT_NEAR(cost(name, 1e11, 0, 16).seconds, 1e11 / 10e12, 1e-12) << name;
  }
  EXPECT_NEAR(cost("layers.2.token_mixer.lasp.intra.backward", 1e11, 0, 32).seconds, 1e11 / 2e12,
              1e-12);
  // An attention op bound by its bytes (here FLOP-less) costs them at the
  // copy rate: 1e8 / 1e12.
  const ProfiledOp send = cost("layers.2.token_mixer.lasp.state.forward", 0, 1e8, 16);
  EXPECT_NEAR(send.seconds, 1e-4, 1e-15);
  EXPECT_EQ(send.source, CostSource::MeasuredAttention);
}

TEST_F(ProfileCosts, AttentionFallsBackWithoutItsKeyWidth) {
  const std::string forward = "layers.0.token_mixer.lightning_attention.forward";
  // dk 64 was not measured, and an unknown dk is ambiguous with two widths:
  // the roofline, 1e11 / (1000e12 · 0.1) = 1 ms.
  for (int64_t dk : {64, 0}) {
    const ProfiledOp c = cost(forward, 1e11, 0, dk);
    EXPECT_NEAR(c.seconds, 1e-3, 1e-12) << dk;
    EXPECT_EQ(c.source, CostSource::Roofline) << dk;
  }
  // With one measured width an unknown dk takes it.
  profile_.attention.resize(1);
  EXPECT_NEAR(cost(forward, 1e11, 0, 0).seconds, 1e11 / 10e12, 1e-12);
  EXPECT_EQ(cost(forward, 1e11, 0, 0).source, CostSource::MeasuredAttention);
}

// The plan carries each attention op's key width: 2d on LRPE layers.
TEST_F(ProfileCosts, KeyWidthFollowsTheModelsLrpeLayers) {
  ModelConfig model;  // width 64, 4 heads: d = 16
  model.n_layers = 2;
  auto key_widths = [&] {
    std::vector<int> widths;  // of each layer's attention op, forward
    for (const PlannedOp& op :
         plan_model(model, TensorParallel{}, SequencePlan{}, StepShape{1, 64, 2}).ops()) {
      if (op.kind == OpKind::Attention && !op.backward()) widths.push_back(op.core.head_dim);
    }
    return widths;
  };
  model.lrpe = LrpeLayers::First;
  EXPECT_EQ(key_widths(), (std::vector<int>{32, 16}));
  model.lrpe = LrpeLayers::All;
  EXPECT_EQ(key_widths(), (std::vector<int>{32, 32}));
}

TEST_F(ProfileCosts, MemoryOpsTakeTheirBytesAtTheCopyRate) {
  const ProfiledOp silu = cost("layers.0.token_mixer.silu.forward", 1e9, 2e9);
  EXPECT_NEAR(silu.seconds, 2e9 / 1e12, 1e-15);
  EXPECT_EQ(silu.source, CostSource::MeasuredCopy);
  EXPECT_NEAR(cost("cross_entropy.backward", 0, 5e8).seconds, 5e-4, 1e-15);
  // Without a copy rate (a profile built in code): the roofline,
  // 2e9 / (2000e9 · 0.5) = 2 ms.
  profile_.copy_gbps = 0;
  const ProfiledOp fallback = cost("layers.0.token_mixer.silu.forward", 1e9, 2e9);
  EXPECT_NEAR(fallback.seconds, 2e-3, 1e-15);
  EXPECT_EQ(fallback.source, CostSource::Roofline);
  EXPECT_STREQ(cost_source_name(fallback.source), "roofline");
}

TEST_F(ProfileCosts, MemoryOpsPreferTheMeasuredElementwiseRate) {
  // 2e9 bytes at a measured 400 GB/s elementwise rate: 5 ms (not the copy's 2).
  profile_.elementwise_gbps = 400;
  const ProfiledOp silu = cost("layers.0.token_mixer.silu.forward", 1e9, 2e9);
  EXPECT_NEAR(silu.seconds, 5e-3, 1e-15);
  EXPECT_EQ(silu.source, CostSource::MeasuredCopy);
  // The entry is optional in the file and read when present.
  testing::TempDir dir;
  json j = test_profile();
  j["elementwise"] = {{"op", "mul_forward"}, {"bytes", 3000}, {"seconds", 1e-6}, {"gbps", 3.0}};
  EXPECT_DOUBLE_EQ(load_profile(write(dir, j)).elementwise_gbps, 3.0);
  j["elementwise"]["gbps"] = -1;
  EXPECT_THROW(load_profile(write(dir, j, "bad.json")), UserError);
}

TEST_F(ProfileCosts, EveryOpOfARealPlanFindsItsMeasurement) {
  // The plan's product weights and the profile's layers agree: a complete profile
  // leaves nothing to the roofline.
  ModelConfig model;
  model.lrpe = LrpeLayers::First;
  const OpPlan plan = plan_model(model, TensorParallel{}, SequencePlan{}, StepShape{2, 128, 2});
  for (const char* layer : {"out_proj", "channel_mixer.l3"}) {
    for (const char* pass : {"forward", "backward_input", "backward_weight"}) {
      profile_.gemms.push_back(MeasuredGemm{layer, pass, 1, 1, 1, 1.0, 100.0});
    }
  }
  int gemms = 0, attention = 0;
  for (const PlannedOp& op : plan.ops()) {
    const ProfiledOp c = profile_op_cost(op, profile_, kGpu, kEff);
    EXPECT_NE(c.source, CostSource::Roofline) << op.name;
    EXPECT_GT(c.seconds, 0) << op.name;
    gemms += c.source == CostSource::MeasuredGemm;
    attention += c.source == CostSource::MeasuredAttention;
  }
  EXPECT_EQ(gemms, 2 * (5 * model.n_layers + 1));  // qkvu, out_proj, l1, l2, l3; the head
  EXPECT_EQ(attention, 2 * model.n_layers);
}

// --- collectives ---

TEST_F(ProfileCosts, CollectiveAtAMeasuredSizeIsTheMeasuredTime) {
  // all_reduce over 4 ranks, 1e6 bytes at busbw 30: t = 1e6 · 1.5 / 30e9.
  EXPECT_NEAR(*profile_collective_seconds(CollectiveKind::AllReduce, 1'000'000, 4, profile_), 5e-5,
              1e-15);
  EXPECT_NEAR(*profile_collective_seconds(CollectiveKind::AllReduce, 10'000'000, 4, profile_),
              1e7 * 1.5 / 60e9, 1e-15);
  // nccl-tests' factors: (n−1)/n for all-gather, reduce-scatter, all-to-all; 1 for send/recv.
  EXPECT_NEAR(*profile_collective_seconds(CollectiveKind::AllGather, 1'000'000, 2, profile_),
              1e6 * 0.5 / 10e9, 1e-15);
  EXPECT_NEAR(*profile_collective_seconds(CollectiveKind::ReduceScatter, 1'000'000, 8, profile_),
              1e6 * 0.875 / 35e9, 1e-15);
  EXPECT_NEAR(*profile_collective_seconds(CollectiveKind::AllToAll, 1'000'000, 4, profile_),
              1e6 * 0.75 / 30e9, 1e-15);
  EXPECT_NEAR(*profile_collective_seconds(CollectiveKind::SendRecv, 1'000'000, 2, profile_),
              1e6 / 20e9, 1e-15);
  // Each equals the entry's own measured seconds.
  for (const MeasuredCollective& c : profile_.collectives) {
    EXPECT_NEAR(*profile_collective_seconds(c.kind, c.bytes, c.ranks, profile_), c.seconds,
                1e-12 * c.seconds);
  }
}

TEST_F(ProfileCosts, CollectiveBusBandwidthIsInterpolatedInLogBytes) {
  // Halfway in log between 1e7 (60) and 1e9 (90): 1e8 at 75 GB/s.
  EXPECT_NEAR(*profile_collective_seconds(CollectiveKind::AllReduce, 100'000'000, 4, profile_),
              1e8 * 1.5 / 75e9, 1e-15);
  // Between 1e6 (30) and 1e7 (60): about √10·1e6 at about 45 GB/s.
  const int64_t bytes = 3'162'278;
  const double busbw = 30 + 30 * std::log10(static_cast<double>(bytes) / 1e6);
  EXPECT_NEAR(busbw, 45, 1e-5);
  EXPECT_NEAR(*profile_collective_seconds(CollectiveKind::AllReduce, bytes, 4, profile_),
              static_cast<double>(bytes) * 1.5 / (busbw * 1e9), 1e-15);
}

TEST_F(ProfileCosts, CollectiveTimeIsHeldBelowAndBandwidthAboveTheMeasuredSizes) {
  // Below 1e6 the smallest measurement's time (latency floor): 1e6 · 1.5 / 30e9;
  // above 1e9: busbw 90.
  EXPECT_NEAR(*profile_collective_seconds(CollectiveKind::AllReduce, 100'000, 4, profile_),
              1e6 * 1.5 / 30e9, 1e-15);
  EXPECT_NEAR(*profile_collective_seconds(CollectiveKind::AllReduce, 8, 4, profile_),
              1e6 * 1.5 / 30e9, 1e-15);
  EXPECT_NEAR(*profile_collective_seconds(CollectiveKind::AllReduce, 4'000'000'000, 4, profile_),
              4e9 * 1.5 / 90e9, 1e-12);
}

TEST_F(ProfileCosts, CollectivesWithoutAnEntryAreLeftToTheAlphaBetaModel) {
  // No all_reduce over 8 ranks, no all_gather over 4, no broadcast at all.
  EXPECT_FALSE(profile_collective_seconds(CollectiveKind::AllReduce, 1'000'000, 8, profile_));
  EXPECT_FALSE(profile_collective_seconds(CollectiveKind::AllGather, 1'000'000, 4, profile_));
  EXPECT_FALSE(profile_collective_seconds(CollectiveKind::Broadcast, 1'000'000, 2, profile_));
  // One rank moves nothing; neither do zero bytes.
  EXPECT_EQ(*profile_collective_seconds(CollectiveKind::AllReduce, 1'000'000, 1, profile_), 0.0);
  EXPECT_EQ(*profile_collective_seconds(CollectiveKind::AllReduce, 0, 4, profile_), 0.0);
}

// --- errors ---

// load_profile of `profile` (JSON text) throws one line naming the file and
// containing `problem`.
void expect_load_error(const std::string& text, const std::string& problem) {
  testing::TempDir dir;
  const std::string path = dir / "bad.json";
  std::ofstream(path) << text;
  try {
    load_profile(path);
    ADD_FAILURE() << "no error for " << problem;
  } catch (const UserError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("profile " + path + ": "), std::string::npos) << message;
    EXPECT_NE(message.find(problem), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(ProfileLoad, MissingFileAndInvalidJson) {
  testing::TempDir dir;
  const std::string missing = dir / "missing.json";
  EXPECT_THROW(
      {
        try {
          load_profile(missing);
        } catch (const UserError& e) {
          EXPECT_EQ(std::string(e.what()), "profile " + missing + ": no such file");
          throw;
        }
      },
      UserError);
  expect_load_error("{\"format\": ", "not valid JSON");
  expect_load_error("[1, 2]", "expected a JSON object, got array");
}

TEST(ProfileLoad, WrongOrMissingFormat) {
  json p = test_profile();
  p["format"] = "linpar-profile-2";
  expect_load_error(p.dump(), "format \"linpar-profile-2\": expected \"linpar-profile-1\"");
  p.erase("format");
  expect_load_error(p.dump(), "missing key format");
}

TEST(ProfileLoad, MissingKeys) {
  for (const char* key : {"device", "ranks", "model", "seq_len", "micro_batch", "tp", "gemm",
                          "lightning_attention", "memory", "collectives"}) {
    json p = test_profile();
    p.erase(key);
    expect_load_error(p.dump(), std::string("missing key ") + key);
  }
  json p = test_profile();
  p["gemm"][3].erase("tflops");
  expect_load_error(p.dump(), "missing key gemm[3].tflops");
  p = test_profile();
  p["lightning_attention"][1].erase("backward_tflops");
  expect_load_error(p.dump(), "missing key lightning_attention[1].backward_tflops");
  p = test_profile();
  p["memory"].erase("gbps");
  expect_load_error(p.dump(), "missing key memory.gbps");
  p = test_profile();
  p["collectives"][0].erase("busbw_gbps");
  expect_load_error(p.dump(), "missing key collectives[0].busbw_gbps");
}

TEST(ProfileLoad, NonPositiveValues) {
  json p = test_profile();
  p["gemm"][0]["tflops"] = 0;
  expect_load_error(p.dump(), "gemm[0].tflops = 0: must be positive");
  p = test_profile();
  p["gemm"][2]["m"] = -4;
  expect_load_error(p.dump(), "gemm[2].m = -4: must be positive");
  p = test_profile();
  p["lightning_attention"][0]["forward_tflops"] = -1.5;
  expect_load_error(p.dump(), "lightning_attention[0].forward_tflops = -1.5: must be positive");
  p = test_profile();
  p["memory"]["gbps"] = 0.0;
  expect_load_error(p.dump(), "memory.gbps = 0.0: must be positive");
  p = test_profile();
  p["collectives"][1]["busbw_gbps"] = -3;
  expect_load_error(p.dump(), "collectives[1].busbw_gbps = -3: must be positive");
  p = test_profile();
  p["collectives"][1]["ranks"] = 1;
  expect_load_error(p.dump(), "collectives[1].ranks = 1: must be at least 2");
  p = test_profile();
  p["seq_len"] = 0;
  expect_load_error(p.dump(), "seq_len = 0: must be positive");
}

TEST(ProfileLoad, WrongTypes) {
  json p = test_profile();
  p["gemm"][0]["m"] = "big";
  expect_load_error(p.dump(), "gemm[0].m: expected a whole number, got \"big\"");
  p = test_profile();
  p["gemm"][0]["n"] = 1.5;
  expect_load_error(p.dump(), "gemm[0].n: expected a whole number, got 1.5");
  p = test_profile();
  p["gemm"][0]["seconds"] = "fast";
  expect_load_error(p.dump(), "gemm[0].seconds: expected a number, got \"fast\"");
  p = test_profile();
  p["device"] = 3;
  expect_load_error(p.dump(), "device: expected a string, got 3");
  p = test_profile();
  p["gemm"] = json::object();
  expect_load_error(p.dump(), "gemm: expected an array, got {}");
  p = test_profile();
  p["collectives"][0] = 5;
  expect_load_error(p.dump(), "collectives[0]: expected an object, got 5");
  p = test_profile();
  p["memory"] = json::array();
  expect_load_error(p.dump(), "memory: expected an object, got []");
}

TEST(ProfileLoad, UnknownNames) {
  json p = test_profile();
  p["gemm"][0]["layer"] = "channel_mixer.l2";
  expect_load_error(p.dump(),
                    "gemm[0].layer \"channel_mixer.l2\": unknown (known: qkvu_proj, out_proj");
  p = test_profile();
  p["gemm"][0]["pass"] = "backward";
  expect_load_error(p.dump(), "gemm[0].pass \"backward\": unknown (known: forward, backward_input");
  p = test_profile();
  p["collectives"][2]["kind"] = "allreduce";
  expect_load_error(p.dump(), "collectives[2].kind \"allreduce\": unknown (known: all_reduce");
}

TEST(ProfileLoad, RepeatedEntries) {
  json p = test_profile();
  p["gemm"].push_back(gemm("lm_head", "forward", 1));
  expect_load_error(p.dump(), "gemm[10]: a second entry for lm_head forward at 1000 x 4000 x 1000");
  p = test_profile();
  p["lightning_attention"].push_back(p["lightning_attention"][0]);
  expect_load_error(p.dump(), "lightning_attention[2]: a second entry for dk 16 at batch 2");
  p = test_profile();
  p["overlap"] = {{"compute_slowdown", -1}, {"comm_slowdown", 0}};
  expect_load_error(p.dump(), "overlap.compute_slowdown = -1: must be zero or positive");
  p = test_profile();
  p["collectives"].push_back(collective("all_reduce", 4, 1'000'000, 31, 1.5));
  expect_load_error(p.dump(),
                    "collectives[7]: a second entry for all_reduce over 4 ranks at 1000000 bytes");
}

}  // namespace
}  // namespace linpar::sim
