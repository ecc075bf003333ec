// The op plan is the model run on meta tensors (model/plan_model.h): its
// two-layer run with layer 1 repeated equals the run of every layer, field
// by field, for every kind of layer, shard and element size; planning is no
// work; and a 175B plan needs no parameter memory.
#include "model/plan_model.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/op_stats.h"
#include "lasp/factory.h"

namespace linpar {
namespace {

std::string difference(const OpPlan& a, const OpPlan& b) {
  if (a.ops().size() != b.ops().size())
    return fmt::format("{} ops vs {}", a.ops().size(), b.ops().size());
  for (size_t i = 0; i < a.ops().size(); ++i) {
    const PlannedOp &x = a.ops()[i], &y = b.ops()[i];
    if (x.name != y.name || x.kind != y.kind || x.pass != y.pass || x.receive != y.receive ||
        x.layer != y.layer || x.flops != y.flops || x.bytes_read != y.bytes_read ||
        x.bytes_written != y.bytes_written || x.collectives != y.collectives ||
        x.matmul != y.matmul || x.core != y.core) {
      return fmt::format("op {}: {} vs {}", i, x.name, y.name);
    }
  }
  return "";
}

// "" when every op marked as repeating an earlier one (PlannedOp::repeats,
// which the simulator copies the cost of) equals it but for name and layer.
std::string wrong_repeat(const OpPlan& plan) {
  for (size_t i = 0; i < plan.ops().size(); ++i) {
    const PlannedOp& x = plan.ops()[i];
    if (x.repeats < 0) continue;
    if (static_cast<size_t>(x.repeats) >= i) return fmt::format("op {} repeats a later op", i);
    const PlannedOp& y = plan.ops()[static_cast<size_t>(x.repeats)];
    if (x.kind != y.kind || x.pass != y.pass || x.receive != y.receive || x.flops != y.flops ||
        x.bytes_read != y.bytes_read || x.bytes_written != y.bytes_written ||
        x.collectives != y.collectives || x.matmul != y.matmul || x.core != y.core ||
        y.repeats >= 0 ||
        x.name.substr(x.name.find('.', 7)) != y.name.substr(y.name.find('.', 7))) {
      return fmt::format("op {} {} does not repeat {}", i, x.name, y.name);
    }
  }
  return "";
}

ModelConfig five_layers(LrpeLayers lrpe) {
  ModelConfig c = preset_config("tnl-tiny");
  c.n_layers = 5;
  c.lrpe = lrpe;
  return c;
}

}  // namespace

TEST(PlanModel, RepeatingLayerOneEqualsRunningEveryLayer) {
  int compared = 0;
  for (Recompute recompute : {Recompute::None, Recompute::Selective, Recompute::Full}) {
    for (LrpeLayers lrpe : {LrpeLayers::None, LrpeLayers::First, LrpeLayers::All}) {
      const ModelConfig c = five_layers(lrpe);
      const std::string what =
          fmt::format("recompute {} lrpe {}", recompute_name(recompute), static_cast<int>(lrpe));
      for (int64_t e : {2, 4, 8}) {
        for (const TensorParallel& tp : {TensorParallel{}, TensorParallel{nullptr, 1, 2, false},
                                         TensorParallel{nullptr, 0, 2, true}}) {
          const StepShape shape{2, 16, e};
          const OpPlan plan = plan_model(c, tp, {}, shape, recompute);
          EXPECT_EQ(difference(plan, plan_every_layer(c, tp, {}, shape, recompute)), "")
              << what << " e " << e << " tp " << tp.size;
          EXPECT_EQ(wrong_repeat(plan), "") << what << " e " << e << " tp " << tp.size;
          ++compared;
        }
        if (e != 4) continue;  // the SP strategies' plans, at one element size
        for (SequenceParallelKind kind :
             {SequenceParallelKind::Lasp, SequenceParallelKind::Lasp2,
              SequenceParallelKind::AllGather, SequenceParallelKind::Ulysses}) {
          for (int rank = 0; rank < 4; ++rank) {
            const SequencePlan sp{kind, rank, 4, lasp::make_sequence_attention};
            const StepShape shape{1, 8, e};
            const OpPlan plan = plan_model(c, {}, sp, shape, recompute);
            EXPECT_EQ(difference(plan, plan_every_layer(c, {}, sp, shape, recompute)), "")
                << what << " " << sp_kind_name(kind) << " rank " << rank;
            EXPECT_EQ(wrong_repeat(plan), "") << what << " " << sp_kind_name(kind);
            ++compared;
          }
        }
      }
    }
  }
  EXPECT_EQ(compared, 3 * 3 * (3 * 3 + 16));
}

// Recomputation in the plan: each layer's backward starts with its forward
// ops again (pass Recompute), all of them but the channel mixer's output
// product under full recomputation, the token mixer's core under selective;
// LASP's ring is not run again (no receive, no send), Ulysses sends its
// output back to the sequence layout again, the all-gather baseline gathers
// again only under full recomputation (its cache is dropped).
TEST(PlanModel, RecomputationRunsForwardOpsAgainBeforeEachBackward) {
  const ModelConfig c = five_layers(LrpeLayers::First);
  for (Recompute recompute : {Recompute::Selective, Recompute::Full}) {
    for (SequenceParallelKind kind : {SequenceParallelKind::Lasp, SequenceParallelKind::AllGather,
                                      SequenceParallelKind::Ulysses}) {
      const SequencePlan sp{kind, 1, 4, lasp::make_sequence_attention};
      const OpPlan plan = plan_model(c, {}, sp, StepShape{1, 8, 4}, recompute);
      const std::string what = fmt::format("{} {}", recompute_name(recompute), sp_kind_name(kind));
      std::vector<int32_t> order;  // each layer's first recompute op, then its backward
      int sp_collectives = 0, l3 = 0, qkvu = 0;
      for (size_t i = 0; i < plan.ops().size(); ++i) {
        const PlannedOp& op = plan.ops()[i];
        if (op.pass != Pass::Recompute) continue;
        EXPECT_EQ(op.receive, RingReceive::None) << what << " " << op.name;
        EXPECT_TRUE(op.name.ends_with(".forward")) << op.name;
        if (i == 0 || plan.ops()[i - 1].pass != Pass::Recompute) order.push_back(op.layer);
        ASSERT_LT(i + 1, plan.ops().size());
        for (const PlannedCollective& col : op.collectives)
          sp_collectives += col.group == CommGroup::Sp;
        l3 += op.name.ends_with("l3.forward");
        qkvu += op.name.ends_with("qkvu_proj.forward");
      }
      EXPECT_EQ(order, (std::vector<int32_t>{4, 3, 2, 1, 0})) << what;
      EXPECT_EQ(l3, 0) << what;
      EXPECT_EQ(qkvu, recompute == Recompute::Full ? 5 : 0) << what;
      const int expected_sp =
          kind == SequenceParallelKind::Ulysses ? 5 * (recompute == Recompute::Full ? 4 : 1)
          : kind == SequenceParallelKind::AllGather && recompute == Recompute::Full ? 5 * 2
                                                                                    : 0;
      EXPECT_EQ(sp_collectives, expected_sp) << what;
    }
  }
}

// Every layer in the plan, in the model's order: forward ascending, backward
// descending, each layer's ops named for it.
TEST(PlanModel, LayersComeInTheModelsOrder) {
  const OpPlan plan = plan_model(five_layers(LrpeLayers::First), {}, {}, StepShape{1, 8, 2});
  std::vector<int32_t> forward, backward;
  for (const PlannedOp& op : plan.ops()) {
    if (op.layer < 0) continue;
    EXPECT_TRUE(op.name.starts_with(fmt::format("layers.{}.", op.layer))) << op.name;
    std::vector<int32_t>& seen = op.backward() ? backward : forward;
    if (seen.empty() || seen.back() != op.layer) seen.push_back(op.layer);
  }
  EXPECT_EQ(forward, (std::vector<int32_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(backward, (std::vector<int32_t>{4, 3, 2, 1, 0}));
}

// Planning counts into the plan, not into a run's FLOP count, and a 175B
// model's plan draws no parameter values (its 175e9 would take minutes and
// 700 GB).
TEST(PlanModel, PlanningIsNoWork) {
  const FlopScope scope;
  const ModelConfig c = preset_config("tnl-175b");
  const OpPlan plan =
      plan_model(c, TensorParallel{nullptr, 0, 8, true},
                 SequencePlan{SequenceParallelKind::Lasp, 1, 4, lasp::make_sequence_attention},
                 StepShape{1, 1024, 2});
  EXPECT_EQ(scope.flops(), 0);
  EXPECT_GT(plan.total_flops(), int64_t{1} << 40);
  // LASP's middle rank posts and waits for its neighbour in every layer.
  int posts = 0, waits = 0;
  for (const PlannedOp& op : plan.ops()) {
    posts += op.receive == RingReceive::Posts;
    waits += op.receive == RingReceive::Waits;
  }
  EXPECT_EQ(posts, 2 * c.n_layers);
  EXPECT_EQ(waits, 2 * c.n_layers);
}

}  // namespace linpar
