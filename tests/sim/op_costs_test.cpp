// The roofline against hand-computed values, the op classes, and the op plan
// of a 175B model from its description alone (nothing allocated, fast).
#include <gtest/gtest.h>

#include <chrono>

#include "model/config.h"
#include "model/transnormer.h"
#include "sim/op_costs.h"

namespace linpar::sim {

TEST(SimOpCosts, RooflineTakesTheSlowerOfComputeAndMemory) {
  GpuSpec gpu{"test", 100.0, 10.0, 80.0, 1000.0};  // 100 TFLOP/s, 1000 GB/s
  const Efficiency eff{0.5, 0.1, 0.8};
  // A GEMM of 1e12 FLOPs and 1e9 bytes: compute 1e12 / 50e12 = 20 ms, memory
  // 1e9 / 800e9 = 1.25 ms.
  PlannedOp gemm{"layers.0.token_mixer.qkvu_proj.forward", 1'000'000'000'000, 600'000'000, 400'000'000, {}};
  EXPECT_NEAR(op_seconds(gemm, gpu, eff), 0.02, 1e-12);
  // The same bytes as an elementwise op: memory only.
  PlannedOp silu{"layers.0.token_mixer.silu.forward", 1'000'000'000'000, 600'000'000, 400'000'000, {}};
  EXPECT_NEAR(op_seconds(silu, gpu, eff), 1.25e-3, 1e-12);
  // Attention at its own efficiency: 1e11 / (100e12 · 0.1) = 10 ms.
  PlannedOp attention{"layers.0.token_mixer.lightning_attention.forward", 100'000'000'000, 1000, 1000, {}};
  EXPECT_NEAR(op_seconds(attention, gpu, eff), 0.01, 1e-12);
  OpPlan plan;
  plan.add(gemm);
  plan.add(silu);
  plan.add(attention);
  const PlanCost cost = plan_cost(plan, gpu, eff);
  EXPECT_NEAR(cost.seconds, 0.02 + 1.25e-3 + 0.01, 1e-12);
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
