// The op plan is what runs, op by op: a real CPU training step of every
// strategy and mix, recorded op by op (core/op_stats.h: each planned op's
// scope, the FLOPs its kernels counted from their own loop bounds and the
// collectives its communicators made, the kind and tensor bytes its public
// ops reported), equals the plan the simulator costs
// for that rank (sim::SimModel::plan: its SP rank's plan, its pipeline
// stage's ops, in the pipeline schedule's order of forward and backward
// passes): the same ops in the same order, each with the same name, kind,
// FLOPs, bytes read and written, collectives (kind, group, bytes), layer,
// pass, ring receive, product shape and weight, and attention key width.
// The plan is the model's own forward and backward run on meta tensors
// (model/plan_model.h), so what this compares is each public op's meta
// path (the FLOPs it states) with its kernels (the FLOPs they count), and
// the two-layer plan's repetition with a run of every layer. After the
// model's ops come the step's tail's (parallel/step_plan.h: the trainer's
// update code run on meta parameters): DDP's reduction, ZeRO-1's phases,
// the tied embedding's sum, the gradient norm, AdamW, the compute copies'
// refresh, each compared as the layers' are. The pipeline's sends are the
// schedule's (checked by the byte totals of sim_exactness_test.cpp); CO2's
// outer reduction, stated by the plan, is compared at the end of a round.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "co2/outer_loop.h"
#include "core/cuda/cuda_runtime.h"
#include "core/op_stats.h"
#include "lasp/factory.h"
#include "parallel/step_plan.h"
#include "sim/model.h"
#include "training_run.h"

namespace linpar {

using namespace testing;

namespace {

struct Case {
  const char* name;
  ParallelLayout layout;  // dp, tp, pp, sp
  bool tp_sp = false;
  SequenceParallelKind kind = SequenceParallelKind::Lasp;
  int zero = 0;
  PipelineSchedule schedule = PipelineSchedule::OneFOneB;
  int64_t co2_tau = 0;
  bool lrpe = false;
  bool tied = false;  // the LM head reuses the embedding (a copy on each end of a pipeline)
  Recompute recompute = Recompute::None;
  int pp_chunks = 1;  // > 1: interleaved 1F1B
};

Case recomputing(Case c, Recompute recompute) {
  c.recompute = recompute;
  return c;
}

// LASP over 2 ranks with LRPE in layer 0 (global positions in its angles).
Case sp2_lasp_lrpe() {
  Case c{"sp2 lasp lrpe", {1, 1, 1, 2}};
  c.lrpe = true;
  return c;
}

Case interleaved(Case c, int chunks) {
  c.pp_chunks = chunks;
  return c;
}

// This rank's expected ops of one step: its SP rank's plan, the ops of its
// pipeline stage, forward and backward passes in the schedule's order.
std::vector<PlannedOp> expected_ops(const TrainOptions& o, const ProcessGrid& grid) {
  const sim::SimModel model(o.model);
  const sim::ShardSpec shard{o.layout.tp, o.layout.tp_sp, o.layout.sp, o.layout.sp_kind};
  const OpPlan plan =
      model.plan(shard, grid.coordinates().sp, o.layout.micro_batch, o.layout.seq_len,
                 static_cast<int64_t>(dtype_size(o.dtype)), o.layout.recompute);
  // The stage's model chunks (virtual stages c·pp + s of pp·v; one without
  // interleaving), each running its layers' ops.
  const int pp = o.layout.pp, s = grid.coordinates().pp, v = o.layout.pp_chunks;
  auto on_chunk = [&](const PlannedOp& op, const PipelineStage& chunk) {
    if (op.layer == kEmbeddingLayer) return chunk.first();
    if (op.layer == kHeadLayer) return chunk.last();
    return op.layer >= chunk.first_layer && op.layer < chunk.end_layer;
  };
  std::vector<std::vector<PlannedOp>> forward(static_cast<size_t>(v)),
      backward(static_cast<size_t>(v));
  for (int c = 0; c < v; ++c) {
    const PipelineStage chunk = pipeline_stage(o.model, c * pp + s, pp * v);
    for (const PlannedOp& op : plan.ops()) {
      // A layer's recomputation runs in its backward pass.
      if (on_chunk(op, chunk))
        (op.pass == Pass::Forward ? forward : backward)[static_cast<size_t>(c)].push_back(op);
    }
  }
  const int64_t micro_batches = o.layout.global_batch / o.layout.dp / o.layout.micro_batch;
  std::vector<PlannedOp> out;
  for (const PipelineAction& a : v > 1
                                     ? interleaved_pipeline_actions(s, pp, v, micro_batches)
                                     : pipeline_actions(o.layout.schedule, s, pp, micro_batches)) {
    const std::vector<PlannedOp>& pass =
        (a.backward ? backward : forward)[static_cast<size_t>(a.chunk)];
    out.insert(out.end(), pass.begin(), pass.end());
  }
  return out;
}

std::string describe(const std::vector<RecordedCollective>& collectives) {
  std::string out;
  for (const RecordedCollective& c : collectives) {
    out += fmt::format(" {} {} {}", collective_name(c.kind), c.group, c.bytes);
  }
  return out.empty() ? " none" : out;
}

std::string describe(const std::vector<PlannedCollective>& collectives) {
  std::vector<RecordedCollective> as_recorded;
  for (const PlannedCollective& c : collectives) {
    as_recorded.push_back({c.kind, comm_group_name(c.group), c.bytes});
  }
  return describe(as_recorded);
}

// "" when the run's ops are the plan's, else the first difference.
std::string diff(const std::vector<RecordedOp>& ran, const std::vector<PlannedOp>& planned) {
  for (size_t i = 0; i < std::max(ran.size(), planned.size()); ++i) {
    if (i >= ran.size())
      return fmt::format("op {}: planned {}, the run ended ({} ops)", i, planned[i].name,
                         ran.size());
    if (i >= planned.size())
      return fmt::format("op {}: ran {}, the plan ended ({} ops)", i, ran[i].name, planned.size());
    const RecordedOp& r = ran[i];
    const PlannedOp& p = planned[i];
    if (r.name != p.name) return fmt::format("op {}: ran {}, planned {}", i, r.name, p.name);
    if (r.flops != p.flops)
      return fmt::format("op {} {}: ran {} FLOPs, planned {}", i, r.name, r.flops, p.flops);
    if (r.kind() != p.kind)
      return fmt::format("op {} {}: ran {} kernels, planned {}", i, r.name, op_kind_name(r.kind()),
                         op_kind_name(p.kind));
    if (r.bytes_read != p.bytes_read || r.bytes_written != p.bytes_written) {
      return fmt::format("op {} {}: ran {} bytes read, {} written; planned {}, {}", i, r.name,
                         r.bytes_read, r.bytes_written, p.bytes_read, p.bytes_written);
    }
    if (describe(r.collectives) != describe(p.collectives)) {
      return fmt::format("op {} {}: ran collectives{}, planned{}", i, r.name,
                         describe(r.collectives), describe(p.collectives));
    }
    if (r.layer != p.layer || r.pass != p.pass || r.receive != p.receive) {
      return fmt::format("op {} {}: ran in layer {} pass {} receive {}, planned {} {} {}", i,
                         r.name, r.layer, static_cast<int>(r.pass), static_cast<int>(r.receive),
                         p.layer, static_cast<int>(p.pass), static_cast<int>(p.receive));
    }
    const MatmulShape m = r.kind() == OpKind::Matmul ? r.matmul : MatmulShape{};
    if (m != p.matmul) {
      return fmt::format(
          "op {} {}: ran the product [{}, {}]·[{}, {}] of weight {}, planned "
          "[{}, {}]·[{}, {}] of weight {}",
          i, r.name, m.m, m.k, m.k, m.n, static_cast<int>(m.weight), p.matmul.m, p.matmul.k,
          p.matmul.k, p.matmul.n, static_cast<int>(p.matmul.weight));
    }
    const int16_t width = r.kind() == OpKind::Attention ? r.head_dim : 0;
    if (width != p.core.head_dim)
      return fmt::format("op {} {}: ran keys {} wide, planned {}", i, r.name, width,
                         p.core.head_dim);
  }
  return "";
}

// The step's tail as planned for this rank (parallel/step_plan.h): its
// parameters, the tied embedding's copy, the CPU's MPI averaging after the
// collective (NCCL's inside it); CO2's outer op only on a step that ends a
// round.
std::vector<PlannedOp> expected_tail(const TrainOptions& o, const ProcessGrid& grid,
                                     Trainer& trainer, int64_t co2_tau, bool round_end) {
  Layout layout = o.layout;
  layout.co2_tau = co2_tau;
  const int64_t e = static_cast<int64_t>(dtype_size(o.dtype));
  const PipelineStage stage = pipeline_stage(o.model, grid.coordinates().pp, o.layout.pp);
  StepTailShape shape;
  for (const Parameter& p : trainer.model().params().all()) {
    shape.parameters += shape_numel(p.box_shape);
    if (p.name == "embedding" && o.model.tie_embeddings && stage.size > 1)
      shape.tied_embedding = shape_numel(p.box_shape);
  }
  // ZeRO's groups: the model's.
  if (o.layout.zero > 0) {
    for (const std::vector<Parameter*>& group : trainer.model().parameter_groups()) {
      int64_t n = 0;
      for (const Parameter* p : group) n += shape_numel(p->box_shape);
      shape.groups.push_back(n);
    }
  }
  shape.last_stage = stage.last();
  shape.embedding_at_both_ends =
      o.layout.zero > 0 && o.model.tie_embeddings && stage.size == 1 && o.layout.pp_chunks == 1;
  shape.grad_reduce_bytes = StepShape{.element_bytes = e}.gradient_bytes();
  shape.element_bytes = e;
  shape.averages_inside = o.device == Device::CUDA;
  // Its place among the ranks that average its gradients (ProcessGrid:
  // dp·sp, or under CO2 the replica's SP ranks).
  shape.rank = co2_tau > 0 ? grid.coordinates().sp
                           : grid.coordinates().dp * o.layout.sp + grid.coordinates().sp;
  std::vector<PlannedOp> tail;
  for (const PlannedOp& op : plan_step_tail(layout, shape)->ops) {
    if (op.pass != Pass::Outer || round_end) tail.push_back(op);
  }
  return tail;
}

// One collective per kind and group, the bytes summed: DDP's buckets (the
// run's many, over its parameters; the plan's, over its one tensor
// standing for them) as the one reduction they are.
template <typename Collective>
void merge_buckets(std::vector<Collective>& collectives) {
  std::vector<Collective> merged;
  for (const Collective& c : collectives) {
    bool found = false;
    for (Collective& m : merged) {
      if (m.kind == c.kind && m.group == c.group) {
        m.bytes += c.bytes;
        found = true;
      }
    }
    if (!found) merged.push_back(c);
  }
  collectives = std::move(merged);
}

// What one step ran, op by op: the buckets DDP started during the last
// backward (outside any op: they start between the layers' ops) added to
// the step's reduction op; the outside collectives must then be the
// pipeline's sends alone.
std::vector<RecordedOp> ran_step(const OpRecorder& recorder) {
  std::vector<RecordedOp> ran = recorder.ops();
  std::vector<RecordedCollective> outside;
  for (const RecordedCollective& c : recorder.outside().collectives) {
    if (!(c.group == "pp" && c.kind == CollectiveKind::SendRecv)) outside.push_back(c);
  }
  for (RecordedOp& op : ran) {
    if (op.pass != Pass::Reduce) continue;
    op.collectives.insert(op.collectives.begin(), outside.begin(), outside.end());
    outside.clear();
    merge_buckets(op.collectives);
  }
  EXPECT_EQ(describe(outside), " none") << "collectives outside the step's ops";
  return ran;
}

std::vector<PlannedOp> expected_step(const TrainOptions& o, const ProcessGrid& grid,
                                     Trainer& trainer, int64_t co2_tau = 0,
                                     bool round_end = false) {
  std::vector<PlannedOp> ops = expected_ops(o, grid);
  for (PlannedOp& op : expected_tail(o, grid, trainer, co2_tau, round_end)) {
    if (op.pass == Pass::Reduce) merge_buckets(op.collectives);
    ops.push_back(std::move(op));
  }
  return ops;
}

// One step of the case under the recorder, compared with its plan.
void expect_the_plan_runs(const Case& c, Device device = Device::CPU, DType dtype = DType::F32) {
  ProcessGrid grid(c.layout, MPI_COMM_WORLD, device);
  TrainOptions o = quick_options(c.layout.dp, c.zero);
  o.device = device;
  o.dtype = dtype;
  o.layout = with_degrees(o.layout, c.layout);
  o.layout.tp_sp = c.tp_sp;
  o.layout.sp_kind = c.kind;
  o.layout.schedule = c.schedule;
  o.layout.global_batch = 2 * o.layout.micro_batch * c.layout.dp;  // two micro-batches per step
  if (c.lrpe) o.model.lrpe = LrpeLayers::First;
  o.model.tie_embeddings = c.tied;
  o.layout.recompute = c.recompute;
  o.layout.pp_chunks = c.pp_chunks;
  // Three layers: the plan runs two and repeats layer 1's ops for layer 2
  // (model/plan_model.h), which the run of all three checks; interleaved,
  // one a virtual stage.
  o.model.n_layers = std::max(3, c.layout.pp * c.pp_chunks);
  // Interleaving needs whole groups of pp micro-batches.
  if (c.pp_chunks > 1) o.layout.global_batch = c.layout.pp * o.layout.micro_batch * c.layout.dp;
  co2::Co2Options co2;
  co2.tau = c.co2_tau;
  Trainer trainer(o, grid, lasp::make_sequence_attention,
                  c.co2_tau > 0 ? co2::make_outer_loop(co2) : OuterLoopFactory{});
  std::vector<RecordedOp> ran;
  {
    const OpRecorder recorder;
    trainer.train_step();
    ran = ran_step(recorder);
  }
  const std::string difference = diff(ran, expected_step(o, grid, trainer, c.co2_tau));
  EXPECT_EQ(difference, "") << c.name << " recompute " << recompute_name(c.recompute) << " on "
                            << device_name(device) << ", rank " << grid.rank();
  if (c.co2_tau == 0) return;
  // The step that ends CO2's first round: the outer reduction's start too.
  for (int64_t step = 2; step < c.co2_tau; ++step) trainer.train_step();
  {
    const OpRecorder recorder;
    trainer.train_step();
    ran = ran_step(recorder);
  }
  EXPECT_EQ(diff(ran, expected_step(o, grid, trainer, c.co2_tau, true)), "")
      << c.name << " at a round's end, rank " << grid.rank();
}

}  // namespace

TEST(OpPlanRunNp2, EveryStrategyRunsItsPlanOpByOp) {
  for (const Case& c : {Case{"dp2", {2, 1, 1, 1}},
                        Case{"dp2 zero1", {2, 1, 1, 1}, false, SequenceParallelKind::Lasp, 1},
                        Case{"dp2 zero2", {2, 1, 1, 1}, false, SequenceParallelKind::Lasp, 2},
                        Case{"dp2 zero3 tied",
                             {2, 1, 1, 1},
                             false,
                             SequenceParallelKind::Lasp,
                             3,
                             PipelineSchedule::OneFOneB,
                             0,
                             false,
                             true},
                        Case{"dp2 co2",
                             {2, 1, 1, 1},
                             false,
                             SequenceParallelKind::Lasp,
                             0,
                             PipelineSchedule::OneFOneB,
                             2},
                        Case{"tp2", {1, 2, 1, 1}}, Case{"tp2 tp-sp", {1, 2, 1, 1}, true},
                        Case{"pp2 gpipe",
                             {1, 1, 2, 1},
                             false,
                             SequenceParallelKind::Lasp,
                             0,
                             PipelineSchedule::GPipe},
                        Case{"pp2 1f1b", {1, 1, 2, 1}},
                        Case{"pp2 tied",
                             {1, 1, 2, 1},
                             false,
                             SequenceParallelKind::Lasp,
                             0,
                             PipelineSchedule::OneFOneB,
                             0,
                             false,
                             true},
                        Case{"sp2 lasp", {1, 1, 1, 2}}, sp2_lasp_lrpe(),
                        Case{"sp2 lasp2", {1, 1, 1, 2}, false, SequenceParallelKind::Lasp2},
                        Case{"sp2 allgather", {1, 1, 1, 2}, false, SequenceParallelKind::AllGather},
                        Case{"sp2 ulysses", {1, 1, 1, 2}, false, SequenceParallelKind::Ulysses}}) {
    expect_the_plan_runs(c);
  }
}

// Interleaved 1F1B: each stage's chunks run their layers' ops in the
// interleaved schedule's order.
TEST(OpPlanRunNp2, InterleavedPipelinesRunTheirPlansOpByOp) {
  expect_the_plan_runs(interleaved(Case{"pp2 × 2", {1, 1, 2, 1}}, 2));
  Case tied{"pp2 × 3 tied", {1, 1, 2, 1}};
  tied.tied = true;
  expect_the_plan_runs(interleaved(tied, 3));
}

// Selective and full recomputation: each layer's backward starts with the
// forward ops the plan says it runs again (pass Recompute), with the
// collectives it says they make (LASP's ring none; Ulysses its output's
// all-to-all; all-gather, under full, its gathers; TP's under full).
TEST(OpPlanRunNp2, RecomputationRunsItsPlanOpByOp) {
  for (Recompute r : {Recompute::Selective, Recompute::Full}) {
    for (const Case& c :
         {Case{"dp2 zero1", {2, 1, 1, 1}, false, SequenceParallelKind::Lasp, 1},
          Case{"tp2 tp-sp", {1, 2, 1, 1}, true}, Case{"pp2 1f1b", {1, 1, 2, 1}}, sp2_lasp_lrpe(),
          Case{"sp2 lasp2", {1, 1, 1, 2}, false, SequenceParallelKind::Lasp2},
          Case{"sp2 allgather", {1, 1, 1, 2}, false, SequenceParallelKind::AllGather},
          Case{"sp2 ulysses", {1, 1, 1, 2}, false, SequenceParallelKind::Ulysses}}) {
      expect_the_plan_runs(recomputing(c, r));
    }
  }
}

// f64 on the CPU: 8-byte elements, statistics, states and gradients (the
// GPU's bf16 elements with f32 statistics below).
TEST(OpPlanRunNp2, DoublePrecisionRunsItsPlanOpByOp) {
  for (const Case& c : {Case{"tp2 tp-sp", {1, 2, 1, 1}, true},
                        Case{"sp2 lasp2", {1, 1, 1, 2}, false, SequenceParallelKind::Lasp2},
                        Case{"sp2 allgather", {1, 1, 1, 2}, false, SequenceParallelKind::AllGather},
                        sp2_lasp_lrpe()}) {
    expect_the_plan_runs(c, Device::CPU, DType::F64);
  }
}

TEST(OpPlanRunNp4, MixedLayoutsRunTheirPlansOpByOp) {
  for (const Case& c :
       {Case{"dp2 tp2", {2, 2, 1, 1}}, Case{"tp2 tp-sp pp2", {1, 2, 2, 1}, true},
        Case{"tp2 sp2 lasp", {1, 2, 1, 2}},
        Case{"dp2 sp2 lasp2 zero1", {2, 1, 1, 2}, false, SequenceParallelKind::Lasp2, 1},
        Case{"pp2 sp2 allgather", {1, 1, 2, 2}, false, SequenceParallelKind::AllGather},
        Case{"tp2 tp-sp sp2 ulysses", {1, 2, 1, 2}, true, SequenceParallelKind::Ulysses},
        Case{"sp4 lasp", {1, 1, 1, 4}},
        Case{"dp2 pp2 gpipe",
             {2, 1, 2, 1},
             false,
             SequenceParallelKind::Lasp,
             0,
             PipelineSchedule::GPipe},
        Case{"dp2 pp2 tied zero1",
             {2, 1, 2, 1},
             false,
             SequenceParallelKind::Lasp,
             1,
             PipelineSchedule::OneFOneB,
             0,
             false,
             true},
        Case{"dp2 sp2 co2",
             {2, 1, 1, 2},
             false,
             SequenceParallelKind::Lasp,
             0,
             PipelineSchedule::OneFOneB,
             2},
        recomputing(Case{"tp2 sp2 lasp", {1, 2, 1, 2}}, Recompute::Full),
        recomputing(Case{"tp2 tp-sp pp2", {1, 2, 2, 1}, true}, Recompute::Full),
        recomputing(Case{"sp4 lasp", {1, 1, 1, 4}}, Recompute::Selective),
        interleaved(
            recomputing(
                Case{"dp2 pp2 × 2 zero1", {2, 1, 2, 1}, false, SequenceParallelKind::Lasp, 1},
                Recompute::Selective),
            2),
        interleaved(Case{"pp4 × 2", {1, 1, 4, 1}}, 2),
        // ZeRO-2 and -3: the hooks' collectives of every micro-batch are the
        // tail's reduction's.
        Case{"dp2 pp2 tied zero3",
             {2, 1, 2, 1},
             false,
             SequenceParallelKind::Lasp,
             3,
             PipelineSchedule::OneFOneB,
             0,
             false,
             true},
        recomputing(
            Case{"dp2 sp2 lasp2 zero2", {2, 1, 1, 2}, false, SequenceParallelKind::Lasp2, 2},
            Recompute::Full),
        interleaved(Case{"dp2 pp2 × 2 zero3", {2, 1, 2, 1}, false, SequenceParallelKind::Lasp, 3},
                    2),
        recomputing(
            Case{"tp2 tp-sp sp2 ulysses", {1, 2, 1, 2}, true, SequenceParallelKind::Ulysses},
            Recompute::Full)}) {
    expect_the_plan_runs(c);
  }
}

// The CUDA kernels (bf16, f32 masters) run the same plan, op by op.
TEST(OpPlanRunCudaNp1, OneGpuRunsItsPlanOpByOp) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device on this machine";
  expect_the_plan_runs(Case{"one gpu", {1, 1, 1, 1}}, Device::CUDA, DType::BF16);
  expect_the_plan_runs(Case{"one gpu lrpe",
                            {1, 1, 1, 1},
                            false,
                            SequenceParallelKind::Lasp,
                            0,
                            PipelineSchedule::OneFOneB,
                            0,
                            true},
                       Device::CUDA, DType::BF16);
  for (Recompute r : {Recompute::Selective, Recompute::Full}) {
    expect_the_plan_runs(recomputing(Case{"one gpu lrpe",
                                          {1, 1, 1, 1},
                                          false,
                                          SequenceParallelKind::Lasp,
                                          0,
                                          PipelineSchedule::OneFOneB,
                                          0,
                                          true},
                                     r),
                         Device::CUDA, DType::BF16);
  }
}

TEST(OpPlanRunCudaNp2, TwoGpusRunTheirPlansOpByOp) {
  if (!cuda::available() || cuda::device_count() < 2) GTEST_SKIP() << "fewer than 2 CUDA devices";
  for (const Case& c : {Case{"tp2 tp-sp", {1, 2, 1, 1}, true}, Case{"sp2 lasp", {1, 1, 1, 2}},
                        Case{"pp2", {1, 1, 2, 1}}}) {
    expect_the_plan_runs(c, Device::CUDA, DType::BF16);
  }
}

// The diff can fail: one FLOP or one byte more in one planned op, a product
// planned as a memory-bound op, a collective moved to the next op, or an op
// renamed, and the run no longer matches.
TEST(OpPlanRunNp2, AWrongPlanEntryIsFound) {
  ProcessGrid grid({1, 2, 1, 1}, MPI_COMM_WORLD);
  TrainOptions o = quick_options(1, 0);
  o.layout = with_degrees(o.layout, {1, 2, 1, 1});
  o.layout.global_batch = 2 * o.layout.micro_batch;
  Trainer trainer(o, grid);
  std::vector<RecordedOp> ran;
  {
    const OpRecorder recorder;
    trainer.train_step();
    ran = ran_step(recorder);
  }
  const std::vector<PlannedOp> right = expected_step(o, grid, trainer);
  ASSERT_EQ(diff(ran, right), "");
  // The step's tail too: a byte more for the optimizer, a norm without its
  // TP all-reduce.
  auto named = [](std::vector<PlannedOp>& ops, const std::string& name) -> PlannedOp& {
    for (PlannedOp& op : ops) {
      if (op.name == name) return op;
    }
    throw std::runtime_error("no op " + name);
  };
  std::vector<PlannedOp> wrong = right;
  named(wrong, "optimizer").bytes_written += 1;
  EXPECT_NE(diff(ran, wrong), "");
  wrong = right;
  named(wrong, "grad_norm").collectives.clear();
  EXPECT_NE(diff(ran, wrong), "");
  wrong = right;
  wrong[7].flops += 1;
  EXPECT_NE(diff(ran, wrong), "");
  wrong = right;
  for (size_t i = 0; i + 1 < wrong.size(); ++i) {
    if (wrong[i].collectives.empty()) continue;
    wrong[i + 1].collectives.push_back(wrong[i].collectives.back());
    wrong[i].collectives.pop_back();
    break;
  }
  EXPECT_NE(diff(ran, wrong), "");
  wrong = right;
  wrong[3].name += "x";
  EXPECT_NE(diff(ran, wrong), "");
  for (bool read : {true, false}) {
    wrong = right;
    (read ? wrong[5].bytes_read : wrong[5].bytes_written) += 1;
    EXPECT_NE(diff(ran, wrong), "");
  }
  wrong = right;
  for (PlannedOp& op : wrong) {
    if (op.kind != OpKind::Matmul) continue;
    op.kind = OpKind::Memory;
    break;
  }
  EXPECT_NE(diff(ran, wrong), "");
  // The fields the simulator prices by: a product's weight (a profile's
  // key) and shape, an attention op's key width, an op's layer.
  auto first_of = [](std::vector<PlannedOp>& ops, OpKind kind) -> PlannedOp& {
    for (PlannedOp& op : ops) {
      if (op.kind == kind) return op;
    }
    throw std::runtime_error("no op of that kind");
  };
  wrong = right;
  first_of(wrong, OpKind::Matmul).matmul.weight = ProductWeight::Other;
  EXPECT_NE(diff(ran, wrong), "");
  wrong = right;
  first_of(wrong, OpKind::Matmul).matmul.k += 1;
  EXPECT_NE(diff(ran, wrong), "");
  wrong = right;
  first_of(wrong, OpKind::Attention).core.head_dim += 1;
  EXPECT_NE(diff(ran, wrong), "");
  wrong = right;
  wrong[4].layer += 1;
  EXPECT_NE(diff(ran, wrong), "");
}

}  // namespace linpar
