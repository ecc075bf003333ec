// The simulator reads an op's typed fields, never its name: every op of every
// plan renamed to another op's name (the plan's names reversed, so a product
// carries a norm's name, the embedding the LM head's, a LASP send an
// all-gather's) or to a number changes no prediction, for layouts of every
// strategy, the roofline and a measured profile, and the blocking LASP ring.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "model/config.h"
#include "sim/softmax_transformer.h"
#include "sim/step.h"

namespace linpar::sim {

namespace {

enum class Rename { Reversed, Numbered };

// Both phases and the memory from a shard whose op names were replaced.
StepPrediction simulate_renamed(const SimModel& model, const ClusterSpec& cluster,
                                const SimLayout& l, const CostModel& cost, Rename how) {
  ShardOps shard = shard_plans(model, l);
  for (OpPlan& plan : shard.plans) {
    std::vector<PlannedOp>& ops = plan.mutable_ops();
    std::vector<std::string> names;
    for (const PlannedOp& op : ops) names.push_back(op.name);
    std::reverse(names.begin(), names.end());
    for (size_t i = 0; i < ops.size(); ++i) {
      ops[i].name = how == Rename::Reversed ? names[i] : "op " + std::to_string(i);
    }
  }
  cost_shard_ops(shard, model, cluster, l, cost);
  StepPrediction p =
      schedule_step(model, cluster, l, micro_batch_costs(model, cluster, l, cost, &shard), cost);
  p.memory = layout_memory(model, l);
  return p;
}

void expect_same(const StepPrediction& a, const StepPrediction& b, const std::string& what) {
  EXPECT_EQ(a.step_seconds, b.step_seconds) << what;
  EXPECT_EQ(a.compute_seconds, b.compute_seconds) << what;
  EXPECT_EQ(a.comm_seconds, b.comm_seconds) << what;
  EXPECT_EQ(a.bubble_seconds, b.bubble_seconds) << what;
  EXPECT_EQ(a.mfu, b.mfu) << what;
  EXPECT_EQ(a.model_flops_per_gpu, b.model_flops_per_gpu) << what;
  EXPECT_EQ(a.comm_bytes_per_gpu, b.comm_bytes_per_gpu) << what;
  EXPECT_EQ(a.comm_bytes_per_step, b.comm_bytes_per_step) << what;
  EXPECT_EQ(a.memory.total, b.memory.total) << what;
}

SimLayout layout(int dp, int tp, int pp, int sp,
                 SequenceParallelKind kind = SequenceParallelKind::Lasp) {
  SimLayout l;
  l.dp = dp;
  l.tp = tp;
  l.pp = pp;
  l.sp = sp;
  l.sp_kind = kind;
  l.seq_len = 8192;
  l.micro_batch = 1;
  l.global_batch = 4 * dp;
  return l;
}

// A profile measuring every product, both key widths' attention, copies and
// collectives at rates unlike the roofline's, so that a misread op would
// take another op's rate.
MeasuredProfile profile() {
  MeasuredProfile p;
  int64_t size = 1;
  for (const char* layer :
       {"qkvu_proj", "out_proj", "channel_mixer.l1", "channel_mixer.l3", "lm_head"}) {
    for (const char* pass : {"forward", "backward_input", "backward_weight"}) {
      p.gemms.push_back(MeasuredGemm{layer, pass, 2048 * size, 1024, 1024, 1e-4,
                                     300.0 + 40.0 * static_cast<double>(size)});
      ++size;
    }
  }
  for (int64_t dk : {128, 256}) {  // tnl-1b's heads of 128, and 256 with LRPE
    MeasuredAttention a;
    a.batch = 1;
    a.heads = 16;
    a.length = 8192;
    a.dk = dk;
    a.dv = 128;
    a.block = 64;
    a.forward_seconds = 1e-3;
    a.backward_seconds = 2e-3;
    a.forward_tflops = dk == 128 ? 40.0 : 25.0;
    a.backward_tflops = dk == 128 ? 30.0 : 20.0;
    p.attention.push_back(a);
  }
  p.copy_gbps = 2500;
  p.elementwise_gbps = 2000;
  return p;
}

}  // namespace

TEST(SimOpNames, RenamingEveryOpChangesNoPrediction) {
  ModelConfig tnl = preset_config("tnl-1b");
  tnl.lrpe = LrpeLayers::First;  // two key widths
  const SimModel transnormer(tnl);
  const MeasuredProfile measured = profile();
  struct Case {
    const char* name;
    SimLayout layout;
    bool tp_sp = false;
    Recompute recompute = Recompute::None;
  };
  std::vector<Case> cases = {
      {"dp2 tp2 pp2", layout(2, 2, 2, 1)},
      {"tp4 tp-sp", layout(1, 4, 1, 1), true},
      {"sp4 lasp", layout(1, 1, 1, 4)},
      {"sp4 lasp2 pp2", layout(1, 1, 2, 4, SequenceParallelKind::Lasp2)},
      {"sp4 allgather", layout(1, 1, 1, 4, SequenceParallelKind::AllGather)},
      {"sp2 ulysses tp2", layout(1, 2, 1, 2, SequenceParallelKind::Ulysses)},
      {"dp2 sp4 lasp recompute full", layout(2, 1, 1, 4), false, Recompute::Full},
      {"tp2 sp2 recompute selective", layout(1, 2, 1, 2), false, Recompute::Selective},
  };
  int compared = 0;
  for (Case c : cases) {
    c.layout.tp_sp = c.tp_sp;
    c.layout.recompute = c.recompute;
    const ClusterSpec cluster =
        make_cluster("h100", std::min(8, c.layout.world()), std::max(1, c.layout.world() / 8));
    for (bool blocking : {false, true}) {
      if (blocking && (c.layout.sp == 1 || c.layout.sp_kind != SequenceParallelKind::Lasp))
        continue;
      SimLayout l = c.layout;
      l.lasp_blocking = blocking;
      for (const MeasuredProfile* p : {static_cast<const MeasuredProfile*>(nullptr), &measured}) {
        const CostModel cost{Efficiency{}, p};
        const StepPrediction want = simulate_step(transnormer, cluster, l, cost);
        for (Rename how : {Rename::Reversed, Rename::Numbered}) {
          expect_same(
              simulate_renamed(transnormer, cluster, l, cost, how), want,
              std::string(c.name) + (blocking ? " blocking" : "") + (p ? " profile" : " roofline"));
          ++compared;
        }
      }
    }
  }
  // The softmax transformers: fused and unfused cores, Ulysses, TP-SP.
  for (bool flash : {true, false}) {
    SoftmaxTransformerConfig gpt = softmax_preset("megatron-1.7b");
    gpt.flash_attention = flash;
    const SimModel softmax(gpt);
    for (SimLayout l : {layout(2, 2, 2, 1), layout(1, 2, 1, 2, SequenceParallelKind::Ulysses)}) {
      l.seq_len = 2048;
      l.tp_sp = true;
      const ClusterSpec cluster = make_cluster("h100", l.world(), 1);
      for (const MeasuredProfile* p : {static_cast<const MeasuredProfile*>(nullptr), &measured}) {
        const CostModel cost{Efficiency{}, p};
        const StepPrediction want = simulate_step(softmax, cluster, l, cost);
        expect_same(simulate_renamed(softmax, cluster, l, cost, Rename::Reversed), want,
                    std::string("megatron-1.7b") + (flash ? " flash" : " unfused"));
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 52);
}

// The check above can fail: an op whose kind is changed (a product typed as
// an element-wise op) changes the prediction.
TEST(SimOpNames, RetypingAnOpChangesThePrediction) {
  const SimModel model(preset_config("tnl-385m"));
  const SimLayout l = layout(1, 1, 1, 1);
  const ClusterSpec cluster = make_cluster("h100", 1, 1);
  ShardOps shard = shard_plans(model, l);
  for (PlannedOp& op : shard.plans[0].mutable_ops()) {
    if (op.kind == OpKind::Matmul) op.kind = OpKind::Memory;
  }
  cost_shard_ops(shard, model, cluster, l);
  const double retyped =
      schedule_step(model, cluster, l, micro_batch_costs(model, cluster, l, {}, &shard))
          .step_seconds;
  EXPECT_NE(retyped, simulate_step(model, cluster, l).step_seconds);
}

}  // namespace linpar::sim
