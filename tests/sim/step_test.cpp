// The step simulation on cases worked out from its parts: one GPU is the op
// plan's cost times the micro-batches plus the optimizer pass; DP over an
// infinitely fast network costs nothing; pipelines have a bubble that more
// micro-batches shrink; bad layouts are refused.
#include "sim/step.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "model/plan_model.h"
#include "model/transnormer.h"
#include "parallel/step_plan.h"
#include "sim/collectives.h"

namespace linpar::sim {

namespace {
ClusterSpec cluster(int gpus_per_node, int nodes) { return make_cluster("h100", gpus_per_node, nodes); }
ClusterSpec free_network(int gpus) {
  ClusterSpec c = cluster(gpus, 1);
  c.intra = {"free", 1e12, 0.0};
  c.inter = {"free", 1e12, 0.0};
  return c;
}
// The bytes of the step's tail's update ops (parallel/step_plan.h) for this
// layout and rank's parameters, and their time at the roofline's memory
// rate: memory-bound, one after another.
double tail_bytes(const SimLayout& l, int64_t parameters) {
  StepTailShape shape;
  shape.parameters = parameters;
  shape.grad_reduce_bytes = l.grad_reduce_bytes;
  shape.element_bytes = l.element_bytes;
  // (ZeRO's groups: one; those of the models here hold even counts, so
  // their shards pad nothing and sum to the same bytes.)
  if (l.zero > 0) shape.groups = {parameters};
  double bytes = 0;
  for (const PlannedOp& op : plan_step_tail(l, shape)->ops) {
    // The update's passes and the reduction's own (ZeRO's average).
    if (op.pass == Pass::Update || op.pass == Pass::Reduce)
      bytes += static_cast<double>(op.bytes_read + op.bytes_written);
  }
  return bytes;
}
double tail_seconds(const SimLayout& l, int64_t parameters) {
  return tail_bytes(l, parameters) / (3350e9 * Efficiency{}.memory);
}
// A pipeline of pp stages, one sample per micro-batch, `micro_batches` per step.
SimLayout pipeline(int pp, int64_t micro_batches) {
  SimLayout l;
  l.pp = pp;
  l.micro_batch = 1;
  l.global_batch = micro_batches;
  return l;
}
}  // namespace

TEST(SimStep, OneGpuIsThePlanCostPlusTheOptimizer) {
  const ModelConfig m = preset_config("tnl-385m");
  SimLayout l;
  l.seq_len = 2048;
  l.micro_batch = 2;
  l.global_batch = 4;  // two micro-batches
  const StepPrediction p = simulate_step(m, cluster(1, 1), l);
  const OpPlan plan = plan_model(m, {}, {}, StepShape{2, 2048, 2});
  // The tail: the norm reads every f32 gradient (4 bytes a parameter),
  // AdamW reads the value, gradient, m and v (16) and writes the value, m,
  // v and the bf16 copy (14).
  const int64_t P = m.parameter_count();
  EXPECT_EQ(tail_bytes(l, P), 34.0 * static_cast<double>(P));
  EXPECT_NEAR(p.step_seconds, 2 * plan_cost(plan, gpu_preset("h100")).seconds + tail_seconds(l, P),
              1e-9);
  EXPECT_EQ(stage_parameters(m, 0, 1, 1), m.parameter_count());
  EXPECT_NEAR(p.bubble_seconds, 0.0, 1e-12);
  EXPECT_GT(p.mfu,
            0.25);  // matmul-dominated at the roofline's 78% (less the tail's memory-bound passes)
  EXPECT_LT(p.mfu, 0.78);
}

TEST(SimStep, DataParallelOverAFreeNetworkCostsNothing) {
  const ModelConfig m = preset_config("tnl-385m");
  SimLayout one;
  one.micro_batch = 2;
  one.global_batch = 4;
  SimLayout two = one;
  two.dp = 2;
  two.global_batch = 8;  // the same per-GPU work
  const double t1 = simulate_step(m, free_network(1), one).step_seconds;
  const double t2 = simulate_step(m, free_network(2), two).step_seconds;
  EXPECT_NEAR(t2, t1, 1e-9);
  // On real NVLink the all-reduce shows, but mostly hides behind backward.
  const double real = simulate_step(m, cluster(2, 1), two).step_seconds;
  EXPECT_GT(real, t1);
  EXPECT_LT(real, 1.1 * t1);
}

TEST(SimStep, ZeroOneReducesAfterBackwardAsTheRuntimeDoes) {
  // Over a free network the collectives cost nothing; ZeRO-1 over 2 ranks
  // (shards of S = P/2), its reduce-scatter and all-gather in place in the
  // parameters' own flat vectors, scales its shard to the average (8S, f32
  // read + write), takes the norm of it (4S), updates it without the bf16
  // copy (28S) and refreshes the bf16 copies (6 a parameter): 26 bytes a
  // parameter where plain DP's tail moves 34 (until 2026-12-07 ZeRO-1 also
  // copied the gradients into a flat vector and the values out and back:
  // 50).
  const ModelConfig m = preset_config("tnl-385m");
  SimLayout l;
  l.dp = 2;
  l.micro_batch = 2;
  l.global_batch = 4;
  SimLayout z = l;
  z.zero = 1;
  const double t0 = simulate_step(m, free_network(2), l).step_seconds;
  const double t1 = simulate_step(m, free_network(2), z).step_seconds;
  const int64_t P = m.parameter_count();
  EXPECT_NEAR(tail_bytes(z, P) - tail_bytes(l, P), -8.0 * static_cast<double>(P), 64);
  EXPECT_NEAR(t1 - t0, tail_seconds(z, P) - tail_seconds(l, P), 1e-9);
}

TEST(SimStep, GradientsReducedAfterBackwardAddTheirWholeAllReduce) {
  // dp 2 on NVLink with the gradients averaged after the whole backward
  // (Megatron-LM without --overlap-grad-reduce): the step is the
  // free-network step plus one ring all-reduce of every gradient, nothing
  // hidden. In 2-byte elements that all-reduce moves half the bytes.
  const ModelConfig m = preset_config("tnl-385m");
  SimLayout l;
  l.dp = 2;
  l.micro_batch = 2;
  l.global_batch = 8;  // two micro-batches: the reduction waits for both
  const ClusterSpec c = cluster(2, 1);
  const double free = simulate_step(m, free_network(2), l).step_seconds;
  const double overlapped = simulate_step(m, c, l).step_seconds;
  const int64_t params = m.parameter_count();
  SimLayout after = l;
  after.grad_reduce_overlap = false;
  const StepPrediction f32 = simulate_step(m, c, after);
  const double ring = ring_seconds(CollectiveKind::AllReduce, params * 4, 2, c.intra.gbps, c.intra.latency_us);
  EXPECT_NEAR(f32.step_seconds, free + ring, 1e-9);
  EXPECT_LT(overlapped, f32.step_seconds - 0.5 * ring);  // overlapped, most of it hides
  after.grad_reduce_bytes = 2;
  const StepPrediction bf16 = simulate_step(m, c, after);
  // (2-byte gradients: the update reads them in 2 bytes too.)
  SimLayout free_bf16 = l;
  free_bf16.grad_reduce_bytes = 2;
  EXPECT_NEAR(
      bf16.step_seconds,
      simulate_step(m, free_network(2), free_bf16).step_seconds +
          ring_seconds(CollectiveKind::AllReduce, params * 2, 2, c.intra.gbps, c.intra.latency_us),
      1e-9);
  EXPECT_EQ(f32.comm_bytes_per_step, 2 * 2 * wire_bytes(CollectiveKind::AllReduce, 2, params * 2));
  EXPECT_EQ(bf16.comm_bytes_per_step, 2 * wire_bytes(CollectiveKind::AllReduce, 2, params * 2));
  // ZeRO-1 reduce-scatters the gradients in place in their own vector
  // (parallel/data_parallel.cpp): 2 bytes an element, as Megatron-LM's
  // distributed optimizer over 2-byte gradients; the f32 values' all-gather
  // 4; the norm all-reduces 8.
  SimLayout z = after;
  z.zero = 1;
  EXPECT_EQ(simulate_step(m, c, z).comm_bytes_per_step,
            2 * (wire_bytes(CollectiveKind::ReduceScatter, 2, params * 2 / 2) +
                 wire_bytes(CollectiveKind::AllGather, 2, params * 4 / 2) +
                 wire_bytes(CollectiveKind::AllReduce, 2, 8)));
}

TEST(SimStep, AutogradAccumulationAddsEachLaterMicroBatchsGradients) {
  // Megatron-LM of 2021 (SimLayout::grad_accumulate_add): every micro-batch
  // after the first adds its weight gradients into the held ones in place,
  // 3 × 2 bytes per parameter at the element-wise rate. One GPU, four
  // micro-batches: three adds on the compute stream, nothing to hide them.
  const ModelConfig m = preset_config("tnl-385m");
  SimLayout l;
  l.micro_batch = 1;
  l.global_batch = 4;
  l.grad_reduce_bytes = 2;
  const ClusterSpec c = cluster(1, 1);
  const double fused = simulate_step(m, c, l).step_seconds;
  SimLayout add = l;
  add.grad_accumulate_add = true;
  const double params = static_cast<double>(m.parameter_count());
  const double one_add = 3 * 2 * params / (c.gpu.hbm_gbps * 1e9 * Efficiency{}.elementwise);
  EXPECT_NEAR(simulate_step(m, c, add).step_seconds - fused, 3 * one_add, 1e-9);
  // One micro-batch: its gradients are assigned, nothing is added.
  add.global_batch = l.global_batch = 1;
  EXPECT_EQ(simulate_step(m, c, add).step_seconds, simulate_step(m, c, l).step_seconds);
  // dp 2 with the buckets overlapping the last backward: the last
  // micro-batch's add is spread over its layers, and the step still grows
  // by the three adds (the buckets hide behind the longer backward).
  SimLayout dp = l;
  dp.dp = 2;
  dp.global_batch = 8;
  SimLayout dp_add = dp;
  dp_add.grad_accumulate_add = true;
  const ClusterSpec two = free_network(2);
  EXPECT_NEAR(simulate_step(m, two, dp_add).step_seconds - simulate_step(m, two, dp).step_seconds, 3 * one_add,
              1e-9);
}

TEST(SimStep, CollectivesOverlappingBackwardSlowIt) {
  // dp 2 on NVLink: the gradient buckets overlap the last backward. With
  // compute slowed by σ = 0.5 while they run, the step grows by at most
  // σ·(the buckets' time) and by more than nothing; the trace's engine
  // (simulate_step checks its run) gives the same step.
  const ModelConfig m = preset_config("tnl-385m");
  SimLayout l;
  l.dp = 2;
  l.micro_batch = 2;
  l.global_batch = 4;
  ClusterSpec c = cluster(2, 1);
  const StepPrediction free = simulate_step(m, c, l);
  c.gpu.overlap_compute_slowdown = 0.5;
  const StepPrediction slowed = simulate_step(m, c, l);
  EXPECT_GT(slowed.step_seconds, free.step_seconds + 1e-6);
  EXPECT_LE(slowed.step_seconds, free.step_seconds + 0.5 * free.comm_seconds + 1e-12);
  // The collective slowed instead: compute keeps its pace, the buckets end
  // later (the last one, after backward, decides).
  c.gpu.overlap_compute_slowdown = 0;
  c.gpu.overlap_comm_slowdown = 1.0;
  const StepPrediction comm_slowed = simulate_step(m, c, l);
  EXPECT_GE(comm_slowed.step_seconds, free.step_seconds);
  EXPECT_GT(comm_slowed.comm_seconds, free.comm_seconds + 1e-6);
  EXPECT_NEAR(comm_slowed.compute_seconds, free.compute_seconds, 1e-12);
}

TEST(SimStep, PipelineBubbleShrinksWithMoreMicroBatches) {
  const ModelConfig m = preset_config("tnl-385m");
  SimLayout l = pipeline(4, 4);
  const StepPrediction few = simulate_step(m, cluster(4, 1), l);
  l.global_batch = 32;
  const StepPrediction many = simulate_step(m, cluster(4, 1), l);
  EXPECT_GT(few.bubble_seconds / few.step_seconds, many.bubble_seconds / many.step_seconds);
  // 1F1B's bubble is about (pp − 1)/(m + pp − 1) of the step.
  EXPECT_NEAR(few.bubble_seconds / few.step_seconds, 3.0 / 7.0, 0.12);
  // Stages' parameters add up to the model's, plus the tied embedding's copy.
  int64_t total = 0;
  for (int s = 0; s < 4; ++s) total += stage_parameters(m, s, 4, 1);
  EXPECT_EQ(total, m.parameter_count() + (m.tie_embeddings ? m.vocab_size * m.width : 0));
}

TEST(SimStep, InterleavingDividesTheBubbleByTheChunks) {
  // Narayanan et al. 2021 §2.2: with v chunks per stage of equal cost the
  // bubble is (p − 1)·(f + b)/v, f and b a stage's whole forward and
  // backward of one micro-batch. Hand-made costs over a free network: the
  // step is m·(f + b) plus that bubble (no optimizer: no parameters).
  const ModelConfig m = preset_config("tnl-385m");
  const int pp = 4;
  const int64_t micro_batches = 8;
  const double f = 1.0, b = 2.0;
  for (int v : {1, 2, 4}) {
    SimLayout l = pipeline(pp, micro_batches);
    l.pp_chunks = v;
    MicroBatchCosts costs;
    for (int q = 0; q < pp * v; ++q) {
      StageCost sc;
      sc.stage = pipeline_stage(m, q, pp * v);
      sc.forward = f / v;
      sc.backward = b / v;
      sc.backward_by_layer = {{sc.stage.first_layer, b / v}};
      costs.stages.push_back(sc);
    }
    const StepPrediction p = schedule_step(m, free_network(pp), l, costs);
    SCOPED_TRACE(v);
    EXPECT_NEAR(p.step_seconds, micro_batches * (f + b) + (pp - 1) * (f + b) / v, 1e-9);
    EXPECT_NEAR(p.bubble_seconds, (pp - 1) * (f + b) / v, 1e-9);
  }
}

TEST(SimStep, InterleavedLayoutsAreCheckedAndCostAsManySendsAsChunks) {
  const ModelConfig m = preset_config("tnl-385m");
  SimLayout l = pipeline(2, 4);
  const StepPrediction plain = simulate_step(m, cluster(2, 1), l);
  l.pp_chunks = 2;
  const StepPrediction interleaved = simulate_step(m, cluster(2, 1), l);
  // A micro-batch crosses pp·v − 1 = 3 boundaries between virtual stages
  // instead of pp − 1 = 1 (stage 1's chunk 0 sends on to stage 0's chunk
  // 1), forward and backward: 4 more sends per micro-batch, 4 micro-batches.
  const int64_t boundary = 1 * 2048 * m.width * 2;  // [1, 2048, D] bf16
  EXPECT_EQ(interleaved.comm_bytes_per_step - plain.comm_bytes_per_step, 4 * 4 * boundary);
  EXPECT_LT(interleaved.bubble_seconds, plain.bubble_seconds);
  l.global_batch = 3;  // 3 micro-batches over pp 2
  EXPECT_THROW(simulate_step(m, cluster(2, 1), l), UserError);
  l.global_batch = 4;
  l.schedule = PipelineSchedule::GPipe;
  EXPECT_THROW(simulate_step(m, cluster(2, 1), l), UserError);
  l.schedule = PipelineSchedule::OneFOneB;
  l.pp_chunks = 100;  // more chunks than layers
  EXPECT_THROW(simulate_step(m, cluster(2, 1), l), UserError);
}

TEST(SimStep, TensorParallelTrafficIsThePlans) {
  const ModelConfig m = preset_config("tnl-385m");
  SimLayout l;
  l.tp = 2;
  l.micro_batch = 1;
  l.global_batch = 2;
  const StepPrediction p = simulate_step(m, cluster(2, 1), l);
  const OpPlan plan = plan_model(m, TensorParallel{nullptr, 0, 2, false}, {}, StepShape{1, 2048, 2});
  int64_t per_micro = 0;
  for (const PlannedOp& op : plan.ops()) {
    for (const PlannedCollective& c : op.collectives) {
      if (c.kind == CollectiveKind::AllReduce) per_micro += wire_bytes(c.kind, 2, c.bytes);
    }
  }
  // Two micro-batches, plus the step's 8-byte gradient-norm all-reduce.
  EXPECT_EQ(p.comm_bytes_per_gpu, 2 * per_micro + wire_bytes(CollectiveKind::AllReduce, 2, 8));
  EXPECT_EQ(p.comm_bytes_per_step, 2 * p.comm_bytes_per_gpu);
}

TEST(SimStep, BadLayoutsAreRefused) {
  const ModelConfig m = preset_config("tnl-385m");
  SimLayout l;
  l.dp = 3;
  EXPECT_THROW(simulate_step(m, cluster(2, 1), l), UserError);  // 3 ≠ 2 GPUs
  l.dp = 1;
  l.tp = 3;
  EXPECT_THROW(simulate_step(m, cluster(3, 1), l), UserError);  // tp does not divide the heads
  l.tp = 1;
  l.dp = 2;
  l.global_batch = 3;
  EXPECT_THROW(simulate_step(m, cluster(2, 1), l), UserError);
  l.global_batch = 2;
  l.grad_reduce_bytes = 8;  // f32 or 2-byte gradients only
  EXPECT_THROW(simulate_step(m, cluster(2, 1), l), UserError);
}

}  // namespace linpar::sim
