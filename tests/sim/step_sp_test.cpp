// The step simulation's sequence parallelism, recomputation, CO2 and model
// families, on cases whose answer follows from the parts: a link with only
// latency α (infinite bandwidth) makes every message cost α exactly, so what
// a strategy pays in messages on the critical path can be read off.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/plan_model.h"
#include "model/transnormer.h"
#include "sim/collectives.h"
#include "sim/step.h"

namespace linpar::sim {

namespace {
// One node of `gpus` H100s whose NVLink has latency `alpha_us` and no
// bandwidth limit.
ClusterSpec latency_only(int gpus, double alpha_us) {
  ClusterSpec c = make_cluster("h100", gpus, 1);
  c.intra = {"latency-only", 1e15, alpha_us};
  c.inter = {"latency-only", 1e15, alpha_us};
  return c;
}

SimLayout sp_layout(int sp, SequenceParallelKind kind) {
  SimLayout l;
  l.sp = sp;
  l.sp_kind = kind;
  l.seq_len = 8192;
  l.micro_batch = 1;
  l.global_batch = 1;
  return l;
}

// Seconds of the plan's recomputation ops (pass Recompute) on one H100.
double seconds_of_recomputation(const OpPlan& plan) {
  double t = 0;
  for (const PlannedOp& op : plan.ops()) {
    if (op.pass == Pass::Recompute) t += op_seconds(op, gpu_preset("h100"));
  }
  return t;
}
}  // namespace

bool same_plan(const OpPlan& a, const OpPlan& b) {
  if (a.ops().size() != b.ops().size()) return false;
  for (size_t i = 0; i < a.ops().size(); ++i) {
    const PlannedOp &x = a.ops()[i], &y = b.ops()[i];
    if (x.name != y.name || x.kind != y.kind || x.pass != y.pass || x.layer != y.layer ||
        x.receive != y.receive || x.flops != y.flops || x.bytes_read != y.bytes_read ||
        x.bytes_written != y.bytes_written || x.collectives != y.collectives ||
        x.matmul != y.matmul || x.core != y.core) {
      return false;
    }
  }
  return true;
}

TEST(SimSequenceParallel, PlanTwinsAreTheLowestRanksWithTheSamePlan) {
  // The step simulation builds and costs one plan per twin: a twin whose
  // plan differed would simulate the wrong rank.
  for (const std::string name : {"tnl-385m", "llama2-7b"}) {
    const SimModel model = SimModel::from_preset(name);
    const std::vector<SequenceParallelKind> kinds =
        model.is_transnormer()
            ? std::vector<SequenceParallelKind>{SequenceParallelKind::Lasp, SequenceParallelKind::Lasp2,
                                                SequenceParallelKind::AllGather, SequenceParallelKind::Ulysses}
            : std::vector<SequenceParallelKind>{SequenceParallelKind::Ulysses};
    for (SequenceParallelKind kind : kinds) {
      for (int sp : {2, 3, 4}) {
        const ShardSpec shard{2, true, sp, kind};
        try {
          model.validate(shard, 1, 768);
        } catch (const UserError&) {
          continue;  // e.g. Ulysses over 3 ranks of 16 heads
        }
        std::vector<OpPlan> plans;
        for (int r = 0; r < sp; ++r) plans.push_back(model.plan(shard, r, 1, 768, 2));
        for (int r = 0; r < sp; ++r) {
          const int twin = model.plan_twin(shard, r);
          SCOPED_TRACE(fmt::format("{} {} sp {} rank {} twin {}", name, sp_kind_name(kind), sp, r, twin));
          ASSERT_GE(twin, 0);
          ASSERT_LE(twin, r);
          EXPECT_TRUE(same_plan(plans[static_cast<size_t>(r)], plans[static_cast<size_t>(twin)]));
          for (int q = 0; q < twin; ++q) {
            EXPECT_FALSE(same_plan(plans[static_cast<size_t>(r)], plans[static_cast<size_t>(q)])) << "rank " << q;
          }
        }
      }
    }
  }
}

TEST(SimSequenceParallel, RanksSharingAPlanCostWhatSimulatingEveryRankCosts) {
  // The step simulates one plan per twin, and alike ranks (Ulysses) as one
  // rank; giving every rank its own copy of its plan makes the simulation
  // schedule all of them, which must give the same times to the bit.
  const SimModel model = SimModel::from_preset("tnl-385m");
  const ClusterSpec cluster = make_cluster("h100", 4, 1);
  for (SequenceParallelKind kind : {SequenceParallelKind::Lasp, SequenceParallelKind::Ulysses}) {
    for (Recompute recompute : {Recompute::None, Recompute::Full}) {
      SimLayout l = sp_layout(4, kind);
      l.recompute = recompute;
      l.pp = 1;
      const ShardOps shared = shard_ops(model, cluster, l);
      ASSERT_EQ(shared.plans.size(), kind == SequenceParallelKind::Ulysses ? 1u : 3u);
      ShardOps every;
      for (int r = 0; r < l.sp; ++r) {
        const size_t k = static_cast<size_t>(shared.rank_plan[static_cast<size_t>(r)]);
        every.plans.push_back(shared.plans[k]);
        every.ops.push_back(shared.ops[k]);
        every.runs.push_back(shared.runs[k]);
        every.rank_plan.push_back(r);
      }
      const MicroBatchCosts a = micro_batch_costs(model, cluster, l, {}, &shared);
      const MicroBatchCosts b = micro_batch_costs(model, cluster, l, {}, &every);
      SCOPED_TRACE(sp_kind_name(kind));
      EXPECT_EQ(a.stages[0].forward, b.stages[0].forward);
      EXPECT_EQ(a.stages[0].backward, b.stages[0].backward);
      EXPECT_EQ(a.stages[0].backward_by_layer, b.stages[0].backward_by_layer);
      EXPECT_EQ(a.stages[0].sp_bytes_all, b.stages[0].sp_bytes_all);
      EXPECT_EQ(a.stages[0].model_flops, b.stages[0].model_flops);
      EXPECT_GT(a.stages[0].sp_bytes, 0);
    }
  }
}

TEST(SimTrace, OpByOpTracksShowEverySpRankAndChangeNoNumber) {
  const SimModel model = SimModel::from_preset("tnl-385m");
  const ClusterSpec cluster = make_cluster("h100", 4, 1);
  for (SequenceParallelKind kind : {SequenceParallelKind::Lasp, SequenceParallelKind::Ulysses}) {
    SimLayout l = sp_layout(2, kind);
    l.pp = 2;
    l.global_batch = 2;
    const StepPrediction plain = simulate_step(model, cluster, l);
    const StepPrediction traced = simulate_step(model, cluster, l, {}, true);
    SCOPED_TRACE(sp_kind_name(kind));
    EXPECT_EQ(plain.step_seconds, traced.step_seconds);
    EXPECT_TRUE(plain.op_tasks.empty());
    ASSERT_EQ(traced.op_tracks.size(), 4u);  // 2 stages × 2 SP ranks
    std::vector<int> per_track(4, 0);
    int sends = 0;
    for (const TracedTask& t : traced.op_tasks) {
      ASSERT_GE(t.process, 0);
      ASSERT_LT(t.process, 4);
      ++per_track[static_cast<size_t>(t.process)];
      EXPECT_LE(t.start, t.finish) << t.name;
      EXPECT_LE(t.finish, traced.step_seconds) << t.name;
      // LASP's ring: rank 0 sends states on in forward, rank 1 their
      // gradients back in backward; Ulysses sends to no neighbour.
      if (t.stream == Stream::P2P) {
        ++sends;
        EXPECT_EQ(t.process % 2, t.name.ends_with(".forward") ? 0 : 1) << t.name;
      }
    }
    EXPECT_EQ(sends > 0, kind == SequenceParallelKind::Lasp);
    for (int n : per_track) EXPECT_GT(n, 0);
    // Ulysses' ranks run alike: as many tasks on each.
    if (kind == SequenceParallelKind::Ulysses) EXPECT_EQ(per_track[0], per_track[1]);
    const nlohmann::json trace = nlohmann::json::parse(traced.chrome_trace());
    int processes = 0;
    for (const auto& e : trace["traceEvents"]) processes += e["name"] == "process_name";
    EXPECT_EQ(processes, 2 + 4);
  }
}

TEST(SimSequenceParallel, LaspRingPaysOneHopPerPassNotOnePerLayer) {
  // The ring pipelines over the layers: rank 1 waits for rank 0's state of
  // layer l, but rank 0 never waits, so rank 1 trails by one hop α in
  // forward (and rank 0 by one in backward) however many layers there are.
  const ModelConfig m = preset_config("tnl-385m");
  // 0.2 ms per message: most of a layer's work here, but less (the link
  // carries one message at a time, so hops longer than a layer would queue).
  const double alpha = 2e-4;
  const SimLayout l = sp_layout(2, SequenceParallelKind::Lasp);
  const MicroBatchCosts free = micro_batch_costs(m, latency_only(2, 0.0), l);
  const MicroBatchCosts slow = micro_batch_costs(m, latency_only(2, alpha * 1e6), l);
  const double hops_fwd = slow.stages[0].forward - free.stages[0].forward;
  const double hops_bwd = slow.stages[0].backward - free.stages[0].backward;
  EXPECT_GT(hops_fwd, alpha * 0.99);
  EXPECT_LT(hops_fwd, alpha * 1.5);  // plus at most part of a layer's difference between the ranks
  EXPECT_GT(hops_bwd, alpha * 0.99);
  EXPECT_LT(hops_bwd, alpha * 1.5);
  EXPECT_LT(hops_fwd, m.n_layers * alpha / 4);  // not one hop per layer
}

TEST(SimSequenceParallel, LongerRingsPayOneHopPerRankNotPerLayer) {
  // Eight ranks: the last trails the first by seven hops; a rank's own sends
  // never queue behind the states it receives (they travel on separate
  // communicators), so the ring still pipelines over the layers.
  const ModelConfig m = preset_config("tnl-385m");
  const double alpha = 2e-5;
  SimLayout l = sp_layout(8, SequenceParallelKind::Lasp);
  l.seq_len = 8 * 8192;
  const MicroBatchCosts free = micro_batch_costs(m, latency_only(8, 0.0), l);
  const MicroBatchCosts slow = micro_batch_costs(m, latency_only(8, alpha * 1e6), l);
  const double hops_fwd = slow.stages[0].forward - free.stages[0].forward;
  EXPECT_GT(hops_fwd, 7 * alpha * 0.99);
  EXPECT_LT(hops_fwd, 7 * alpha * 1.5);
  EXPECT_LT(slow.stages[0].backward - free.stages[0].backward, 7 * alpha * 1.5);
}

// The published LASP code's ring (--lasp-ring blocking): a rank receives
// before its attention kernels, so each of the seven hops of an 8-rank ring
// holds the receiver's intra-chunk kernel too, where linpar's ring has run
// it before the state arrives. With every layer alike (no LRPE layer) each
// rank trails its predecessor by one hop in every layer, so the last rank
// trails by seven intra-chunk kernels more forward. Backward the gradient
// runs from rank 7 to rank 0: ranks 6 … 1 each hold their intra- and
// inter-chunk kernels (linpar's ring runs both before the state's gradient
// arrives: neither needs it), rank 0 its intra-chunk kernel (it has no
// inter-chunk term).
TEST(SimSequenceParallel, BlockingRingHoldsEachReceiversAttentionKernel) {
  ModelConfig m = preset_config("tnl-385m");
  m.lrpe = LrpeLayers::None;
  SimLayout l = sp_layout(8, SequenceParallelKind::Lasp);
  l.seq_len = 8 * 8192;
  SimLayout blocking = l;
  blocking.lasp_blocking = true;
  const ClusterSpec free_net = latency_only(8, 0.0);
  const MicroBatchCosts overlap = micro_batch_costs(m, free_net, l);
  const MicroBatchCosts held = micro_batch_costs(m, free_net, blocking);
  // An op's time on SP rank r (0 when its plan has no such op).
  const ShardOps ops = shard_ops(m, free_net, blocking);
  auto seconds = [&](int r, const std::string& name) {
    const size_t k = static_cast<size_t>(ops.rank_plan[static_cast<size_t>(r)]);
    for (size_t i = 0; i < ops.plans[k].ops().size(); ++i) {
      if (ops.plans[k].ops()[i].name == name) return ops.ops[k][i].compute;
    }
    return 0.0;
  };
  const std::string first = "layers.1.token_mixer.lasp.", last = fmt::format("layers.{}.token_mixer.lasp.", m.n_layers - 1);
  // A middle rank's kernels that now wait: alike in every layer.
  const double intra_forward = seconds(3, first + "intra.forward");
  const double held_backward = seconds(3, first + "intra.backward") + seconds(3, first + "inter.backward");
  ASSERT_GT(intra_forward, 0);
  EXPECT_EQ(intra_forward, seconds(3, last + "intra.forward"));
  EXPECT_EQ(held_backward, seconds(3, last + "intra.backward") + seconds(3, last + "inter.backward"));
  EXPECT_NEAR(held.stages[0].forward - overlap.stages[0].forward, 7 * intra_forward, 0.02 * 7 * intra_forward);
  const double first_intra_backward = seconds(0, first + "intra.backward");
  ASSERT_GT(first_intra_backward, 0);
  EXPECT_EQ(seconds(0, first + "inter.backward"), 0);  // rank 0 has no inter-chunk term
  const double backward_hops = 6 * held_backward + first_intra_backward;
  EXPECT_NEAR(held.stages[0].backward - overlap.stages[0].backward, backward_hops, 0.01 * backward_hops);
  // A blocking send holds its sender: with a latency α per send the ranks
  // that send lose α every layer, which the lag's slack absorbs only in
  // part. linpar's ring pays α once per hop (the test above); the blocking
  // one more than twice that, and at most once per layer and hop.
  const double alpha = 2e-5;
  const double paid_overlap =
      micro_batch_costs(m, latency_only(8, alpha * 1e6), l).stages[0].forward - overlap.stages[0].forward;
  const double paid = micro_batch_costs(m, latency_only(8, alpha * 1e6), blocking).stages[0].forward -
                      held.stages[0].forward;
  EXPECT_GT(paid, 2 * paid_overlap);
  EXPECT_LE(paid, (m.n_layers + 7) * alpha * 1.01);
  // Only the LASP ring waits this way.
  SimLayout ulysses = sp_layout(8, SequenceParallelKind::Ulysses);
  ulysses.lasp_blocking = true;
  EXPECT_THROW(validate_layout(SimModel(m), free_net, ulysses), UserError);
}

TEST(SimSequenceParallel, AllGatherOfKeysAndValuesPaysEveryLayer) {
  // The K/V all-gather baseline is a collective every layer must wait for:
  // two all-gathers (K and V) of a 2-rank ring, α each, per layer forward.
  const ModelConfig m = preset_config("tnl-385m");
  const double alpha = 1e-3;
  const SimLayout l = sp_layout(2, SequenceParallelKind::AllGather);
  const MicroBatchCosts free = micro_batch_costs(m, latency_only(2, 0.0), l);
  const MicroBatchCosts slow = micro_batch_costs(m, latency_only(2, alpha * 1e6), l);
  EXPECT_NEAR(slow.stages[0].forward - free.stages[0].forward, m.n_layers * 2 * alpha, 1e-3 * alpha * m.n_layers);
  // Backward: the reduce-scatter of the K and V gradients, likewise.
  EXPECT_NEAR(slow.stages[0].backward - free.stages[0].backward, m.n_layers * 2 * alpha,
              1e-3 * alpha * m.n_layers);
}

TEST(SimSequenceParallel, EveryKindIsSimulatedAndLaspSendsTheLeast) {
  const ModelConfig m = preset_config("tnl-385m");
  const ClusterSpec c = make_cluster("h100", 4, 1);
  int64_t lasp_bytes = 0;
  for (SequenceParallelKind kind : {SequenceParallelKind::Lasp, SequenceParallelKind::Lasp2,
                                    SequenceParallelKind::AllGather, SequenceParallelKind::Ulysses}) {
    SimLayout l = sp_layout(4, kind);
    l.seq_len = 32768;
    const StepPrediction p = simulate_step(m, c, l);
    EXPECT_GT(p.step_seconds, 0) << sp_kind_name(kind);
    EXPECT_GT(p.mfu, 0.05) << sp_kind_name(kind);
    const MicroBatchCosts costs = micro_batch_costs(m, c, l);
    if (kind == SequenceParallelKind::Lasp) lasp_bytes = costs.stages[0].sp_bytes;
    else EXPECT_GT(costs.stages[0].sp_bytes, lasp_bytes) << sp_kind_name(kind);
  }
  // LASP: a middle rank sends one dk×d state (f32) per layer and direction
  // (dk = 2d on LRPE layers).
  int64_t states = 0;
  for (int64_t layer = 0; layer < m.n_layers; ++layer) {
    states += 2 * m.n_heads * (m.layer_uses_lrpe(layer) ? 2 : 1) * m.head_dim() * m.head_dim() * 4;
  }
  EXPECT_EQ(lasp_bytes, states);
}

TEST(SimPipeline, StagesOfOneStructureShareTheirCostsWithTheLayersRenumbered) {
  // tnl-385m (24 layers, LRPE on the first) over 6 stages with LASP on 2
  // ranks: the middle stages hold the same number of layers and no LRPE, so
  // their costs are equal, and each stage's bucket layers are its own.
  const ModelConfig m = preset_config("tnl-385m");
  SimLayout l = sp_layout(2, SequenceParallelKind::Lasp);
  l.pp = 6;
  const MicroBatchCosts costs = micro_batch_costs(m, make_cluster("h100", 8, 2), l);
  for (size_t p = 1; p < 6; ++p) {
    const StageCost& a = costs.stages[p];
    for (const auto& [layer, t] : a.backward_by_layer) {
      if (layer >= 0) EXPECT_TRUE(layer >= a.stage.first_layer && layer < a.stage.end_layer) << p;
    }
  }
  const StageCost &b = costs.stages[2], &c = costs.stages[3];
  ASSERT_EQ(b.stage.end_layer - b.stage.first_layer, c.stage.end_layer - c.stage.first_layer);
  EXPECT_EQ(b.forward, c.forward);
  EXPECT_EQ(b.backward, c.backward);
  // The per-layer times the buckets use still add up to the stage's backward.
  double sum = 0;
  for (const auto& [layer, t] : c.backward_by_layer) sum += t;
  EXPECT_NEAR(sum, c.backward, 1e-12);
}

// The recomputation is the plan's: the model's own backward on meta tensors
// runs it (model/plan_model.h), and the step adds exactly its ops' time to
// the backward: full more than twice what selective adds.
TEST(SimRecompute, TheBackwardRunsThePlansRecomputation) {
  const ModelConfig m = preset_config("tnl-385m");
  const ClusterSpec c = make_cluster("h100", 1, 1);
  SimLayout l;
  l.seq_len = 2048;
  l.micro_batch = 2;
  l.global_batch = 2;
  const double none = micro_batch_costs(m, c, l).stages[0].backward;
  std::map<Recompute, double> added;
  for (Recompute recompute : {Recompute::Selective, Recompute::Full}) {
    l.recompute = recompute;
    const OpPlan plan = plan_model(m, {}, {}, StepShape{2, 2048, 2}, recompute);
    added[recompute] = micro_batch_costs(m, c, l).stages[0].backward - none;
    EXPECT_NEAR(added[recompute], seconds_of_recomputation(plan), 1e-12)
        << recompute_name(recompute);
    EXPECT_GT(added[recompute], 0) << recompute_name(recompute);
  }
  EXPECT_GT(added[Recompute::Full], 2 * added[Recompute::Selective]);
  // Model FLOPs (MFU's numerator) do not count the recomputation.
  l.recompute = Recompute::None;
  const int64_t flops = micro_batch_costs(m, c, l).stages[0].model_flops;
  l.recompute = Recompute::Full;
  EXPECT_EQ(micro_batch_costs(m, c, l).stages[0].model_flops, flops);
}

TEST(SimCo2, LocalStepsSkipTheGradientReductionAndHideTheOuterAllReduce) {
  const ModelConfig m = preset_config("tnl-385m");
  SimLayout one;
  one.seq_len = 2048;
  one.micro_batch = 4;
  one.global_batch = 4;
  SimLayout co2 = one;
  co2.dp = 2;
  co2.global_batch = 8;
  co2.co2_tau = 4;
  // A fast network: a CO2 step costs what a single GPU's step does.
  const double single = simulate_step(m, latency_only(1, 0.0), one).step_seconds;
  EXPECT_NEAR(simulate_step(m, latency_only(2, 0.0), co2).step_seconds, single, 1e-12);
  // A slow one (4 GB/s): the outer all-reduce of the f32 parameters, once
  // per τ steps, outlasts them; a step is a τ-th of it.
  ClusterSpec slow = make_cluster("h100", 2, 1);
  slow.intra = {"slow", 4.0, 0.0};
  const double outer = collective_seconds(CollectiveKind::AllReduce, m.parameter_count() * 4,
                                          place_group(2, 1, 2), slow);
  ASSERT_GT(outer, 4 * single);
  EXPECT_NEAR(simulate_step(m, slow, co2).step_seconds, outer / 4, 1e-12);
  SimLayout bad = co2;
  bad.zero = 1;
  EXPECT_THROW(simulate_step(m, slow, bad), UserError);
}

TEST(SimModels, GptAndLlamaPresetsAreSimulatedWithTheirMemory) {
  const SimModel gpt = SimModel::from_preset("gpt3-175b");
  SimLayout l;
  l.tp = 8;
  l.pp = 8;
  l.dp = 16;
  l.seq_len = 2048;
  l.micro_batch = 1;
  l.global_batch = 1536;
  const ClusterSpec c = make_cluster("a100-80gb", 8, 128, "ib-hdr", 8);
  const StepPrediction p = simulate_step(gpt, c, l);
  EXPECT_GT(p.mfu, 0.2);
  EXPECT_LT(p.mfu, 0.7);
  EXPECT_TRUE(p.fits) << p.memory_message;
  // Without model parallelism 175B parameters cannot fit in 80 GiB.
  SimLayout dp_only = l;
  dp_only.tp = dp_only.pp = 1;
  dp_only.dp = 1024;
  dp_only.global_batch = 1024;
  const StepPrediction q = simulate_step(gpt, c, dp_only);
  EXPECT_FALSE(q.fits);
  EXPECT_NE(q.memory_message.find("a100-80gb has 80"), std::string::npos) << q.memory_message;
  // LASP needs linear attention.
  SimLayout lasp = l;
  lasp.dp = 8;
  lasp.sp = 2;
  lasp.global_batch = 8;
  EXPECT_THROW(simulate_step(gpt, c, lasp), UserError);
}

TEST(SimMemory, StepPredictionCarriesTheBusiestStagesMemory) {
  const ModelConfig m = preset_config("tnl-1b");
  SimLayout l;
  l.pp = 2;
  l.micro_batch = 1;
  l.global_batch = 8;
  const StepPrediction p = simulate_step(m, make_cluster("h100", 2, 1), l);
  MemoryLayout ml;
  ml.pp = 2;
  ml.micro_batch = 1;
  ml.global_batch = 8;
  ml.seq_len = 2048;
  EXPECT_EQ(p.memory.total, busiest_stage_memory(m, ml).total);
  EXPECT_TRUE(p.fits);
}

}  // namespace linpar::sim
