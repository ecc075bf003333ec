// The roofline against hand-computed values, the op classes, and the op plan
// of a 175B model from its description alone (nothing allocated, fast).
#include "sim/op_costs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/plan_model.h"
#include "model/transnormer.h"
#include "named_op.h"
#include "sim/model.h"
#include "sim/softmax_transformer.h"

namespace linpar::sim {

using testing_ops::named_op;

namespace {
PlannedOp with_core(PlannedOp op, CoreShape core) {
  op.core = core;
  return op;
}
}  // namespace

TEST(SimOpCosts, RooflineTakesTheSlowerOfComputeAndMemory) {
  GpuSpec gpu{"test", 100.0, 10.0, 80.0, 1000.0};  // 100 TFLOP/s, 1000 GB/s
  const Efficiency eff{.matmul = 0.5, .attention = 0.1, .memory = 0.8, .elementwise = 0.4,
                       .matmul_overhead_us = 0};  // none: next test
  // A GEMM of 1e12 FLOPs and 1e9 bytes: compute 1e12 / 50e12 = 20 ms, memory
  // 1e9 / 800e9 = 1.25 ms.
  PlannedOp gemm = named_op("layers.0.token_mixer.qkvu_proj.forward", 1'000'000'000'000,
                            600'000'000, 400'000'000);
  EXPECT_NEAR(op_seconds(gemm, gpu, eff), 0.02, 1e-12);
  // The same bytes as an elementwise op: memory only, at the element-wise
  // fraction of the bandwidth: 1e9 / 400e9 = 2.5 ms.
  PlannedOp silu =
      named_op("layers.0.token_mixer.silu.forward", 1'000'000'000'000, 600'000'000, 400'000'000);
  EXPECT_NEAR(op_seconds(silu, gpu, eff), 2.5e-3, 1e-12);
  // Attention at its own efficiency: 1e11 / (100e12 · 0.1) = 10 ms.
  PlannedOp attention =
      named_op("layers.0.token_mixer.lightning_attention.forward", 100'000'000'000, 1000, 1000);
  EXPECT_NEAR(op_seconds(attention, gpu, eff), 0.01, 1e-12);
  OpPlan plan;
  plan.add(gemm);
  plan.add(silu);
  plan.add(attention);
  const PlanCost cost = plan_cost(plan, gpu, eff);
  EXPECT_NEAR(cost.seconds, 0.02 + 2.5e-3 + 0.01, 1e-12);
  EXPECT_NEAR(cost.matmul_seconds, 0.02, 1e-12);
  EXPECT_EQ(cost.flops, 2'100'000'000'000);
}

// The planners type their ops; the simulator reads only the types. Every op
// of the TransNormer plans (each SP kind and rank, TP, TP-SP, LRPE) and of
// the GPT/Llama plans (fused and unfused cores, Ulysses, TP-SP) carries the
// kind, pass, layer and product weight its name states (named_op.h, which
// the hand-written cases use), a product's FLOPs are its shape's, a linear
// attention op carries its layer's key width, and LASP's ring marks where
// each rank posts and awaits its neighbour's state.
TEST(SimOpCosts, PlannersTypeEveryOpAsItsNameSays) {
  int64_t checked = 0, rings = 0;
  auto check = [&](const OpPlan& plan, const ModelConfig* tnl, int r, int T,
                   const std::string& what) {
    for (const PlannedOp& op : plan.ops()) {
      ++checked;
      const std::string where = what + " rank " + std::to_string(r) + ": " + op.name;
      PlannedOp named = named_op(op.name, 0, 0, 0);
      // LASP-2's sums of gathered states are a copy alone where no state is
      // decayed into them, and rank 0 runs no kernel for its zero state's
      // gradient: memory-bound (or nothing), with no FLOPs.
      if (op.flops == 0 && (op.name.ends_with(".lasp2.prefix.forward") ||
                            op.name.ends_with(".lasp2.suffix.backward") ||
                            (r == 0 && op.name.ends_with(".lasp2.inter.backward")))) {
        named.kind = OpKind::Memory;
      }
      ASSERT_EQ(op.kind, named.kind) << where;
      ASSERT_EQ(op.layer, named.layer) << where;
      ASSERT_EQ(op.pass, named.pass) << where;
      ASSERT_TRUE(op.name.ends_with(".forward") || op.name.ends_with(".backward")) << where;
      if (op.kind == OpKind::Matmul) {
        ASSERT_EQ(op.matmul.weight, named.matmul.weight) << where;
        ASSERT_EQ(op.flops, matmul_flops(op.matmul, op.pass)) << where;
      } else {
        ASSERT_EQ(op.matmul, MatmulShape{}) << where;
      }
      if (tnl != nullptr && op.kind == OpKind::Attention) {
        ASSERT_EQ(op.core.head_dim,
                  tnl->layer_uses_lrpe(op.layer) ? 2 * tnl->head_dim() : tnl->head_dim())
            << where;
      }
      RingReceive ring = RingReceive::None;
      if (T > 1 && ((r > 0 && op.name.ends_with(".lasp.intra.forward")) ||
                    (r + 1 < T && op.name.ends_with(".lasp.intra.backward")))) {
        ring = RingReceive::Posts;
      }
      if (T > 1 &&
          (op.name.ends_with(".lasp.inter.forward") || op.name.ends_with(".lasp.state.backward"))) {
        ring = RingReceive::Waits;
      }
      ASSERT_EQ(op.receive, ring) << where;
      rings += ring != RingReceive::None;
      for (const PlannedCollective& c : op.collectives) ASSERT_GT(c.bytes, 0) << where;
    }
  };
  for (const char* preset : {"tnl-385m", "tnl-7b"}) {
    for (bool lrpe : {false, true}) {
      ModelConfig c = preset_config(preset);
      c.n_layers = 3;
      if (lrpe) c.lrpe = LrpeLayers::First;
      const SimModel model(c);
      for (int tp : {1, 2}) {
        for (int sp : {1, 4}) {
          for (SequenceParallelKind kind :
               {SequenceParallelKind::Lasp, SequenceParallelKind::Lasp2,
                SequenceParallelKind::AllGather, SequenceParallelKind::Ulysses}) {
            for (bool tp_sp : {false, true}) {
              const ShardSpec shard{tp, tp_sp, sp, kind};
              try {
                model.validate(shard, 1, 4096);
              } catch (const UserError&) {
                continue;  // e.g. Ulysses over more ranks than the heads per TP rank
              }
              for (int r = 0; r < sp; ++r) {
                check(model.plan(shard, r, 2, 4096, 2), &c, r, sp,
                      fmt::format("{} {}", preset, sp_kind_name(kind)));
              }
            }
          }
        }
      }
    }
  }
  for (const char* preset : {"megatron-1.7b", "llama3-8b"}) {
    for (bool flash : {false, true}) {
      SoftmaxTransformerConfig c = softmax_preset(preset);
      c.n_layers = 2;
      c.flash_attention = flash;
      for (int tp : {1, 8}) {
        for (int sp : {1, 2}) {
          OpPlan plan;
          try {
            plan = plan_softmax_transformer(c, tp, tp > 1, sp, StepShape{1, 2048, 2});
          } catch (const UserError&) {
            continue;  // heads that tp·sp does not divide
          }
          check(plan, nullptr, 0, sp, preset);
        }
      }
    }
  }
  EXPECT_GT(checked, 20000);
  EXPECT_GT(rings, 100);
}

TEST(SimOpCosts, SoftmaxAttentionAtItsOwnEfficiency) {
  GpuSpec gpu{"test", 100.0, 10.0, 80.0, 1000.0};
  Efficiency eff{0.5, 0.1, 0.8};
  eff.softmax_attention = 0.25;
  // 1e11 / (100e12 · 0.25) = 4 ms; 8e8 bytes at 800 GB/s = 1 ms.
  PlannedOp core =
      named_op("layers.0.attention.core.forward", 100'000'000'000, 400'000'000, 400'000'000);
  EXPECT_NEAR(op_seconds(core, gpu, eff), 0.004, 1e-12);
  OpPlan plan;
  plan.add(core);
  plan.add(named_op("layers.0.token_mixer.lightning_attention.forward", 100'000'000'000, 0, 0));
  const PlanCost cost = plan_cost(plan, gpu, eff);
  EXPECT_NEAR(cost.attention_seconds, 0.004 + 0.01, 1e-12);
  EXPECT_NEAR(cost.seconds, 0.014, 1e-12);
}

TEST(SimOpCosts, MatrixProductsPayAFixedCostBesideTheirFlops) {
  GpuSpec gpu{"test", 100.0, 10.0, 80.0, 1000.0};
  Efficiency eff{.matmul = 0.5, .attention = 0.1, .memory = 0.8, .elementwise = 0.8};
  eff.matmul_overhead_us = 20;
  // 20 µs + 1e10 / (100e12 · 0.5) = 220 µs; the memory term (8e7 bytes at
  // 800 GB/s = 100 µs) is below it.
  const PlannedOp gemm =
      named_op("layers.0.mlp.fc1.forward", 10'000'000'000, 40'000'000, 40'000'000);
  EXPECT_NEAR(op_seconds(gemm, gpu, eff), 220e-6, 1e-12);
  // Memory-bound: 20 µs + 8e8 bytes at 800 GB/s.
  const PlannedOp thin = named_op("layers.0.mlp.fc1.backward", 1'000'000, 400'000'000, 400'000'000);
  EXPECT_NEAR(op_seconds(thin, gpu, eff), 20e-6 + 1e-3, 1e-12);
  // Other classes pay none.
  const PlannedOp norm = named_op("layers.0.mlp_norm.forward", 0, 400'000'000, 400'000'000);
  EXPECT_NEAR(op_seconds(norm, gpu, eff), 1e-3, 1e-12);
}

// The default curve against three of the H200 GEMMs it was fitted to
// (linpar profile, tnl-385m: out_proj at 2048 rows, qkvu_proj at 4096, the LM
// head at 2048): measured 18.1, 59.2 and 350.2 µs.
TEST(SimOpCosts, DefaultMatmulCurveReproducesMeasuredH200Gemms) {
  const GpuSpec h200 = gpu_preset("h200");
  struct Case {
    int64_t m, n, k;
    double measured;
  };
  for (const Case c : {Case{2048, 1024, 1024, 18.138e-6}, Case{4096, 4096, 1024, 59.233e-6},
                       Case{2048, 64000, 1024, 350.199e-6}}) {
    const PlannedOp op = named_op("lm_head.forward", 2 * c.m * c.n * c.k,
                                  2 * (c.m * c.k + c.k * c.n), 2 * c.m * c.n);
    EXPECT_NEAR(op_seconds(op, h200) / c.measured, 1.0, 0.1) << c.m << "x" << c.n << "x" << c.k;
  }
  // The constant fraction alone is 3.3x too fast for the smallest.
  Efficiency flat;
  flat.matmul_overhead_us = 0;
  const PlannedOp small = named_op("lm_head.forward", 2LL * 2048 * 1024 * 1024,
                                   2LL * (2048 * 1024 + 1024 * 1024), 2LL * 2048 * 1024);
  EXPECT_LT(op_seconds(small, h200, flat) / 18.138e-6, 0.35);
}

// Memory-bound ops at the element-wise rate, not the copy's: linpar profile's
// element-wise product on an H200 (bf16, 138,412,032 bytes read and written)
// took 41.694 µs (docs/data/profile-h200-tnl-385m-sizes.json).
TEST(SimOpCosts, DefaultElementwiseRateIsTheMeasuredH200Kernel) {
  const GpuSpec h200 = gpu_preset("h200");
  const PlannedOp mul = named_op("layers.0.token_mixer.mul.forward", 0, 92'274'688, 46'137'344);
  EXPECT_NEAR(op_seconds(mul, h200) / 41.694e-6, 1.0, 0.01);
  // At the copy rate it would be 18% fast.
  EXPECT_LT(static_cast<double>(mul.bytes_read + mul.bytes_written) / (h200.hbm_gbps * 1e9 * Efficiency{}.memory) /
                41.694e-6,
            0.85);
}

// The fused core by its curve (sim/op_costs.h), by hand on the H200 preset
// (989.4 TFLOP/s bf16, 66.9 f32): 32 heads of 128 over 8192 tokens, batch 1,
// with dropout: S = 32·8192²/2 scores, forward 4·S·128 FLOPs.
TEST(SimOpCosts, FlashCoreFollowsItsCurveByHand) {
  const GpuSpec h200 = gpu_preset("h200");
  const double S = 32.0 * 8192 * 8192 / 2, F = 4 * S * 128;
  ASSERT_EQ(softmax_attention_forward_flops(1, 32, 8192, 128, true), static_cast<int64_t>(F));
  PlannedOp forward =
      with_core(named_op("layers.0.attention.core.forward", static_cast<int64_t>(F), 0, 0),
                CoreShape{static_cast<int64_t>(S), 8192, 128, true, false});
  PlannedOp backward =
      with_core(named_op("layers.0.attention.core.backward", static_cast<int64_t>(2.5 * F), 0, 0),
                CoreShape{static_cast<int64_t>(S), 8192, 128, true, true});
  // Scaled to the table's own share at heads of 128 (forward 0.688, backward
  // 0.590; together 3.5 / (1/0.688 + 2.5/0.590)), the table is used as is.
  Efficiency eff;
  eff.softmax_attention = 3.5 / (1 / 0.688 + 2.5 / 0.590);
  const double stretch = 1 + 550.0 / 8192;
  EXPECT_NEAR(op_seconds(forward, h200, eff) /
                  (18.7e-6 + F / (989.4e12 * 0.688) * stretch + S * 69.6 / 66.9e12), 1.0, 1e-9);
  EXPECT_NEAR(op_seconds(backward, h200, eff) /
                  (68.4e-6 + 2.5 * F / (989.4e12 * 0.590) * stretch + S * 43.3 / 66.9e12), 1.0, 1e-9);
  // The default is that share, rounded to 0.615.
  EXPECT_NEAR(Efficiency{}.softmax_attention / eff.softmax_attention, 1.0, 1e-3);
  // Without dropout its per-score cost goes; without a shape the op takes the
  // share alone (what other plans' cores get).
  forward.core.dropout = false;
  EXPECT_NEAR(op_seconds(forward, h200, eff) / (18.7e-6 + F / (989.4e12 * 0.688) * stretch), 1.0, 1e-9);
  forward.core = {};
  EXPECT_NEAR(op_seconds(forward, h200, eff) / (F / (989.4e12 * eff.softmax_attention)), 1.0, 1e-9);
  // Shorter sequences pay the per-tile work more: at 2048 tokens the key
  // loop takes (1 + 550/2048) / (1 + 550/8192) = 1.19× its FLOPs' share.
  eff.softmax_attention_forward_us = 0;
  const PlannedOp short_core =
      with_core(named_op("layers.0.attention.core.forward", static_cast<int64_t>(F / 16), 0, 0),
                CoreShape{static_cast<int64_t>(S / 16), 2048, 128, false, false});
  EXPECT_NEAR(op_seconds(short_core, h200, eff) / (F / 16 / (989.4e12 * 0.688)), 1 + 550.0 / 2048, 1e-9);
}

TEST(SimOpCosts, FlashCoreShareByHeadSize) {
  const Efficiency eff;
  const double scale = eff.softmax_attention / (3.5 / (1 / 0.688 + 2.5 / 0.590));
  EXPECT_NEAR(softmax_core_share(128, false, eff), 0.688 * scale, 1e-12);
  EXPECT_NEAR(softmax_core_share(160, true, eff), 0.313 * scale, 1e-12);
  // Between the measured sizes linearly: 192 is a third of the way from 160
  // to 256.
  EXPECT_NEAR(softmax_core_share(192, true, eff), (0.313 + (0.449 - 0.313) / 3) * scale, 1e-12);
  // Heads are padded to a multiple of 32: 80 runs at 96's rate, 80/96 of it
  // useful; 208 at 224's (two thirds of the way from 160 to 256).
  EXPECT_NEAR(softmax_core_share(80, false, eff), 0.533 * 80 / 96 * scale, 1e-12);
  EXPECT_NEAR(softmax_core_share(208, true, eff), (0.313 + (0.449 - 0.313) * 2 / 3) * 208 / 224 * scale, 1e-12);
  // Held at the ends.
  EXPECT_NEAR(softmax_core_share(32, false, eff), 0.525 * scale, 1e-12);
  EXPECT_NEAR(softmax_core_share(512, true, eff), 0.449 * scale, 1e-12);
  // softmax_attention scales the table; no share passes the peak.
  Efficiency half = eff;
  half.softmax_attention = eff.softmax_attention / 2;
  EXPECT_NEAR(softmax_core_share(96, true, half), softmax_core_share(96, true, eff) / 2, 1e-12);
  Efficiency full = eff;
  full.softmax_attention = 1;
  EXPECT_EQ(softmax_core_share(128, false, full), 1.0);  // 0.688 / 0.615 > 1
  EXPECT_LT(softmax_core_share(128, true, full), 1.0);
}

// The GPT plan's FlashAttention ops at the defaults against every SDPA shape
// measured on an H200 (bench/sdpa_torch.py; docs/data/sdpa-torch-h200.json,
// the grid the table was fitted to, and -held-out.json, 13 of whose 19 shapes
// the fit never saw): forward and backward together within 8%, but for heads
// of 256 with dropout (the forward draws its dropout 2× slower than at other
// sizes: docs/validation.md). And -between.json (head sizes 80, 112 and 192,
// other lengths, batches and head counts; the padding to 32 was read from its
// heads of 80): within 10%.
TEST(SimOpCosts, FlashCoreReproducesTheMeasuredSdpaKernels) {
  const GpuSpec h200 = gpu_preset("h200");
  std::vector<double> errors;
  for (const char* file : {"sdpa-torch-h200.json", "sdpa-torch-h200-held-out.json", "sdpa-torch-h200-between.json"}) {
    const double tolerance = std::string(file).find("between") != std::string::npos ? 0.10 : 0.08;
    std::ifstream in(std::string(LINPAR_SOURCE_DIR) + "/docs/data/" + file);
    ASSERT_TRUE(in) << file;
    const nlohmann::json measured_rows = nlohmann::json::parse(in)["rows"];
    for (const nlohmann::json& row : measured_rows) {
      SoftmaxTransformerConfig c;
      c.n_layers = 1;
      c.n_heads = row["heads"];
      c.n_kv_heads = row["kv_heads"];
      c.width = c.n_heads * row["head_dim"].get<int64_t>();
      c.ffn_dim = 4 * c.width;
      c.dropout = row["dropout"].get<double>() > 0;
      const OpPlan plan = plan_softmax_transformer(c, 1, false, 1, StepShape{row["batch"], row["seq"], 2});
      double seconds = 0;
      int cores = 0;
      for (const PlannedOp& op : plan.ops()) {
        if (op.kind != OpClass::SoftmaxAttention) continue;
        seconds += op_seconds(op, h200);
        ++cores;
      }
      ASSERT_EQ(cores, 2);
      const double measured = (row["forward_ms"].get<double>() + row["backward_ms"].get<double>()) * 1e-3;
      const std::string shape = row.dump();
      if (row["head_dim"] == 256 && c.dropout) {
        EXPECT_LT(seconds / measured, 0.85) << shape;  // the known outlier: the curve is fast there
        continue;
      }
      EXPECT_NEAR(seconds / measured, 1.0, tolerance) << shape;
      errors.push_back(std::abs(seconds / measured - 1));
    }
  }
  ASSERT_EQ(errors.size(), 48u);
  std::sort(errors.begin(), errors.end());
  EXPECT_LT(errors[errors.size() / 2], 0.04);  // the median
}

// The simulator's model FLOPs (every op not classed Memory) of a GPT plan are
// Narayanan et al. 2021 eq. (3) without recomputation,
// 72·B·s·l·h²·(1 + s/(6h) + V/(12lh)), with the unfused core; the
// FlashAttention core counts 7Bs²h per layer instead of 12Bs²h
// (causal half forward, 2.5× backward): s/(6h) becomes 7s/(72h).
TEST(SimOpCosts, SoftmaxPlanModelFlopsFollowNarayananEquation3) {
  SoftmaxTransformerConfig c = softmax_preset("megatron-39b");
  const double B = 1, s = 2048, l = static_cast<double>(c.n_layers),
               h = static_cast<double>(c.width), V = 51200;
  for (bool flash : {false, true}) {
    c.flash_attention = flash;
    const OpPlan plan = plan_softmax_transformer(c, 1, false, 1, StepShape{1, 2048, 2});
    double model = 0;
    for (const PlannedOp& op : plan.ops()) {
      if (op.kind != OpClass::Memory) model += static_cast<double>(op.flops);
    }
    const double attention = flash ? 7 * s / (72 * h) : s / (6 * h);
    EXPECT_NEAR(model / (72 * B * s * l * h * h * (1 + attention + V / (12 * l * h))), 1.0, 1e-9)
        << "flash " << flash;
  }
}

// plan_model needs no parameters: the 175B preset's plan on a TP shard comes
// in milliseconds, and its matrix FLOPs are 6·(matrix parameters / tp)·tokens.
TEST(SimOpCosts, A175bPlanFromTheDescriptionAlone) {
  const ModelConfig config = preset_config("tnl-175b");
  const auto start = std::chrono::steady_clock::now();
  const OpPlan plan = plan_model(config, TensorParallel{nullptr, 0, 8, false}, SequencePlan{},
                                 StepShape{1, 4096, 2});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 0.1);
  int64_t matmul = 0;
  for (const PlannedOp& op : plan.ops()) {
    if (op.kind == OpClass::Matmul) matmul += op.flops;
  }
  const int64_t D = config.width, F = config.glu_dim, V = config.vocab_size, L = config.n_layers;
  const int64_t per_layer = 4 * D * D + D * D + 3 * D * F;  // qkvu, out_proj, l1, l2, l3
  EXPECT_EQ(matmul, 6 * (L * per_layer + V * D) / 8 * 4096);
}

}  // namespace linpar::sim
