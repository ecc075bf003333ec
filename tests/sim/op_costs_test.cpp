// The roofline against hand-computed values, the op classes, and the op plan
// of a 175B model from its description alone (nothing allocated, fast).
#include <gtest/gtest.h>

#include <chrono>

#include "model/config.h"
#include "model/softmax_transformer.h"
#include "model/transnormer.h"
#include "sim/op_costs.h"

namespace linpar::sim {

TEST(SimOpCosts, RooflineTakesTheSlowerOfComputeAndMemory) {
  GpuSpec gpu{"test", 100.0, 10.0, 80.0, 1000.0};  // 100 TFLOP/s, 1000 GB/s
  const Efficiency eff{.matmul = 0.5, .attention = 0.1, .memory = 0.8, .elementwise = 0.4,
                       .matmul_overhead_us = 0};  // none: next test
  // A GEMM of 1e12 FLOPs and 1e9 bytes: compute 1e12 / 50e12 = 20 ms, memory
  // 1e9 / 800e9 = 1.25 ms.
  PlannedOp gemm{"layers.0.token_mixer.qkvu_proj.forward", 1'000'000'000'000, 600'000'000, 400'000'000, {}};
  EXPECT_NEAR(op_seconds(gemm, gpu, eff), 0.02, 1e-12);
  // The same bytes as an elementwise op: memory only, at the element-wise
  // fraction of the bandwidth: 1e9 / 400e9 = 2.5 ms.
  PlannedOp silu{"layers.0.token_mixer.silu.forward", 1'000'000'000'000, 600'000'000, 400'000'000, {}};
  EXPECT_NEAR(op_seconds(silu, gpu, eff), 2.5e-3, 1e-12);
  // Attention at its own efficiency: 1e11 / (100e12 · 0.1) = 10 ms.
  PlannedOp attention{"layers.0.token_mixer.lightning_attention.forward", 100'000'000'000, 1000, 1000, {}};
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

TEST(SimOpCosts, ClassesFollowTheOpNames) {
  EXPECT_EQ(classify_op("lm_head.backward"), OpClass::Matmul);
  EXPECT_EQ(classify_op("layers.7.channel_mixer.l3.forward"), OpClass::Matmul);
  EXPECT_EQ(classify_op("layers.7.channel_mixer.gate.forward"), OpClass::Memory);
  EXPECT_EQ(classify_op("layers.1.token_mixer.lasp.intra.forward"), OpClass::Attention);
  EXPECT_EQ(classify_op("cross_entropy.forward"), OpClass::Memory);
}

TEST(SimOpCosts, SoftmaxTransformerNamesClassify) {
  for (const char* name :
       {"layers.0.attention.qkv_proj.forward", "layers.0.attention.out_proj.backward",
        "layers.3.mlp.fc1.forward", "layers.3.mlp.fc2.backward", "layers.3.mlp.gate_up.forward",
        "layers.3.mlp.down.backward", "layers.2.attention.scores.forward",
        "layers.2.attention.context.backward", "lm_head.forward"}) {
    EXPECT_EQ(classify_op(name), OpClass::Matmul) << name;
  }
  EXPECT_EQ(classify_op("layers.5.attention.core.forward"), OpClass::SoftmaxAttention);
  EXPECT_EQ(classify_op("layers.5.attention.core.backward"), OpClass::SoftmaxAttention);
  for (const char* name :
       {"layers.0.attention_norm.forward", "layers.0.attention_residual.backward",
        "layers.0.mlp_norm.forward", "layers.0.mlp.gelu.forward", "layers.0.mlp.swiglu.backward",
        "layers.0.attention.rope.forward", "layers.0.attention.softmax.forward",
        "layers.0.attention.to_heads.forward", "layers.0.attention.to_sequence.backward",
        "final_norm.forward", "embedding.backward"}) {
    EXPECT_EQ(classify_op(name), OpClass::Memory) << name;
  }
  // The TransNormer's names keep their classes.
  EXPECT_EQ(classify_op("layers.0.token_mixer.qkvu_proj.forward"), OpClass::Matmul);
  EXPECT_EQ(classify_op("layers.0.token_mixer.out_proj.backward"), OpClass::Matmul);
  EXPECT_EQ(classify_op("layers.0.token_mixer.attention_norm.forward"), OpClass::Memory);
  EXPECT_EQ(classify_op("layers.0.token_mixer.lightning_attention.backward"), OpClass::Attention);
  EXPECT_EQ(classify_op("layers.0.token_mixer.ulysses.attention.forward"), OpClass::Attention);
  EXPECT_EQ(classify_op("layers.0.token_mixer.ulysses.to_heads.forward"), OpClass::Attention);
}

TEST(SimOpCosts, SoftmaxAttentionAtItsOwnEfficiency) {
  GpuSpec gpu{"test", 100.0, 10.0, 80.0, 1000.0};
  Efficiency eff{0.5, 0.1, 0.8};
  eff.softmax_attention = 0.25;
  // 1e11 / (100e12 · 0.25) = 4 ms; 8e8 bytes at 800 GB/s = 1 ms.
  PlannedOp core{"layers.0.attention.core.forward", 100'000'000'000, 400'000'000, 400'000'000, {}};
  EXPECT_NEAR(op_seconds(core, gpu, eff), 0.004, 1e-12);
  OpPlan plan;
  plan.add(core);
  plan.add(
      PlannedOp{"layers.0.token_mixer.lightning_attention.forward", 100'000'000'000, 0, 0, {}});
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
  const PlannedOp gemm{"layers.0.mlp.fc1.forward", 10'000'000'000, 40'000'000, 40'000'000, {}};
  EXPECT_NEAR(op_seconds(gemm, gpu, eff), 220e-6, 1e-12);
  // Memory-bound: 20 µs + 8e8 bytes at 800 GB/s.
  const PlannedOp thin{"layers.0.mlp.fc1.backward", 1'000'000, 400'000'000, 400'000'000, {}};
  EXPECT_NEAR(op_seconds(thin, gpu, eff), 20e-6 + 1e-3, 1e-12);
  // Other classes pay none.
  const PlannedOp norm{"layers.0.mlp_norm.forward", 0, 400'000'000, 400'000'000, {}};
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
    const PlannedOp op{"lm_head.forward", 2 * c.m * c.n * c.k, 2 * (c.m * c.k + c.k * c.n), 2 * c.m * c.n, {}};
    EXPECT_NEAR(op_seconds(op, h200) / c.measured, 1.0, 0.1) << c.m << "x" << c.n << "x" << c.k;
  }
  // The constant fraction alone is 3.3x too fast for the smallest.
  Efficiency flat;
  flat.matmul_overhead_us = 0;
  const PlannedOp small{"lm_head.forward", 2LL * 2048 * 1024 * 1024, 2LL * (2048 * 1024 + 1024 * 1024), 2LL * 2048 * 1024, {}};
  EXPECT_LT(op_seconds(small, h200, flat) / 18.138e-6, 0.35);
}

// Memory-bound ops at the element-wise rate, not the copy's: linpar profile's
// element-wise product on an H200 (bf16, 138,412,032 bytes read and written)
// took 41.694 µs (docs/data/profile-h200-tnl-385m-sizes.json).
TEST(SimOpCosts, DefaultElementwiseRateIsTheMeasuredH200Kernel) {
  const GpuSpec h200 = gpu_preset("h200");
  const PlannedOp mul{"layers.0.token_mixer.mul.forward", 0, 92'274'688, 46'137'344, {}};
  EXPECT_NEAR(op_seconds(mul, h200) / 41.694e-6, 1.0, 0.01);
  // At the copy rate it would be 18% fast.
  EXPECT_LT(static_cast<double>(mul.bytes_read + mul.bytes_written) / (h200.hbm_gbps * 1e9 * Efficiency{}.memory) /
                41.694e-6,
            0.85);
}

// The default efficiency turns the measured torch SDPA times back out: tnl-1b
// shapes (batch 1, 16 heads of 128, N = 8192) on H100, 0.520 ms forward and
// 1.594 ms backward.
TEST(SimOpCosts, SoftmaxEfficiencyReproducesTheMeasuredSdpa) {
  const GpuSpec h100 = gpu_preset("h100");
  PlannedOp forward, backward;
  forward.name = "layers.0.attention.core.forward";
  forward.flops = softmax_attention_forward_flops(1, 16, 8192, 128, true);
  backward.name = "layers.0.attention.core.backward";
  backward.flops = softmax_attention_backward_flops(1, 16, 8192, 128, true);
  const double seconds = op_seconds(forward, h100) + op_seconds(backward, h100);
  EXPECT_NEAR(seconds / 2.114e-3, 1.0, 0.005);
  // fwd+bwd FLOPs per second in the 35-50% of peak FlashAttention-2/3 report.
  EXPECT_GT(Efficiency{}.softmax_attention, 0.35);
  EXPECT_LT(Efficiency{}.softmax_attention, 0.50);
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
      if (classify_op(op.name) != OpClass::Memory) model += static_cast<double>(op.flops);
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
  const OpPlan plan = plan_model(config, TensorParallel{nullptr, 0, 8, false}, SequenceParallel{},
                                 StepShape{1, 4096, 2});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 0.1);
  int64_t matmul = 0;
  for (const PlannedOp& op : plan.ops()) {
    if (classify_op(op.name) == OpClass::Matmul) matmul += op.flops;
  }
  const int64_t D = config.width, F = config.glu_dim, V = config.vocab_size, L = config.n_layers;
  const int64_t per_layer = 4 * D * D + D * D + 3 * D * F;  // qkvu, out_proj, l1, l2, l3
  EXPECT_EQ(matmul, 6 * (L * per_layer + V * D) / 8 * 4096);
}

}  // namespace linpar::sim
