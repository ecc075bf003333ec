// One training step of a layout on a cluster, as a discrete-event schedule
// (sim/engine.h) built from the shared op plan, in two phases:
//
// micro_batch_costs: what one micro-batch's forward and backward take on each
//   pipeline stage. The stage's SP ranks are simulated op by op (each has its
//   own plan: LASP's first rank receives no state, its last sends none), with
//   the TP collectives the plan carries on the critical path, LASP's state
//   hops as send/recv tasks between neighbouring ranks (a rank waits for its
//   predecessor's state before the inter-chunk term, and in backward for its
//   successor's state gradient), and LASP-2's, all-gather's and Ulysses'
//   collectives over all SP ranks. Recomputation re-runs the layer's forward
//   (full) or its attention core (selective) before the layer's backward.
//   The stage's micro-batch time is the last SP rank's finish.
// schedule_step: the step over the stages: forward and backward of every
//   micro-batch in the pipeline schedule's order (GPipe or 1F1B) with the
//   activations and their gradients sent between stages, the gradient
//   reduction over the dp·sp ranks of a shard in per-layer buckets
//   overlapping the last micro-batch's backward, with compute and
//   collectives slowing each other while they overlap (sim/engine.h's
//   interference); ZeRO-1 as the runtime runs it, after the backward: the
//   gradients flattened, one reduce-scatter, the update of 1/(dp·sp), the
//   all-gather of the values; the optimizer;
//   with CO2 no per-step reduction over dp but the outer all-reduce of the
//   parameters, started at a round's first step and hidden behind the τ
//   inner steps as far as they last.
// The DP and TP ranks of a stage are identical, so one rank per stage is
// scheduled in the second phase (the SP ranks in the first).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/layout.h"
#include "model/pipeline_schedule.h"
#include "model/recompute.h"
#include "model/sequence_parallel.h"
#include "sim/engine.h"
#include "sim/hardware.h"
#include "sim/memory.h"
#include "sim/model.h"
#include "sim/op_costs.h"
#include "sim/profile_costs.h"

namespace linpar::sim {

// The layout (model/layout.h) and what only the simulator varies.
struct SimLayout : Layout {
  int64_t element_bytes = 2;  // bf16 activations; weights, grads and AdamW f32
  // How the gradients are averaged over the dp·sp ranks (simulated only; the
  // runtime does the defaults): in buckets overlapping the last
  // micro-batch's backward, as linpar's runtime and PyTorch DDP do, or all
  // at once after the whole backward, as Megatron-LM does without
  // --overlap-grad-reduce (its --DDP-impl local of 2021); with f32 elements
  // (linpar; Megatron's --accumulate-allreduce-grads-in-fp32) or 2-byte ones
  // (fp16/bf16 gradients reduced as they are). ZeRO-1 always reduces after
  // backward; its reduce-scatter takes the element size, its all-gather of
  // the values stays f32.
  bool grad_reduce_overlap = true;
  int64_t grad_reduce_bytes = 4;
  // How each micro-batch's weight gradients join the step's (simulated
  // only): false, inside the weight-gradient products (linpar's GEMMs
  // accumulate into the gradient buffer; Megatron-LM's
  // --gradient-accumulation-fusion): no extra cost; true, autograd's
  // AccumulateGrad, as Megatron-LM of 2021 ran (its optimizer sets the
  // gradients to None each step, so the first micro-batch's are assigned and
  // every later one is added in place: each parameter's held gradient and
  // the new one read, the sum written, at grad_reduce_bytes per element, an
  // element-wise kernel at Efficiency::elementwise).
  bool grad_accumulate_add = false;
  // How a LASP rank waits for its neighbour (--sp-kind lasp; simulated only,
  // the runtime overlaps): false, linpar's ring — the intra-chunk kernel
  // runs before the state arrives, only the inter-chunk product waits, and
  // sends go out on their own stream; true, the published LASP code's
  // (OpenNLPLab/LASP, every variant: a blocking dist.recv before the
  // attention kernels, a blocking dist.send after them) — each hop holds
  // the receiver's whole attention kernel, and the sender waits for its send.
  bool lasp_blocking = false;

  ShardSpec shard() const { return ShardSpec{tp, tp_sp, sp, sp_kind}; }
};

// Where op and collective times come from: the roofline (and alpha-beta
// collectives) with these efficiencies, or a measured profile where it has
// the op (sim/profile_costs.h), falling back to them where it has not.
struct CostModel {
  Efficiency efficiency;
  const MeasuredProfile* profile = nullptr;
};

struct StageCost {
  PipelineStage stage;
  double forward = 0, backward = 0;  // one micro-batch, the stage's SP ranks together
  // Backward time of each layer in execution order (the head and embedding
  // count as layers -2 and -1), for the DDP buckets.
  std::vector<std::pair<int64_t, double>> backward_by_layer;
  int64_t tp_bytes = 0, sp_bytes = 0;  // wire bytes one rank sends per micro-batch (largest SP rank)
  int64_t tp_bytes_all = 0, sp_bytes_all = 0;  // the same summed over the stage's SP ranks
  int64_t model_flops = 0;             // one micro-batch, summed over the SP ranks
  int64_t parameters = 0;              // one rank's
  int64_t tied_embedding =
      0;  // of them, a tied embedding's copy (SimModel::tied_embedding_parameters)
  // With trace_ops only: the forward's and the backward's tasks of every SP
  // rank, op by op (process = SP rank; seconds from the pass's start).
  std::vector<TracedTask> forward_ops, backward_ops;
};

struct MicroBatchCosts {
  // One per virtual stage (pipeline stage p's chunk c is c·pp + p; without
  // interleaving, one per stage).
  std::vector<StageCost> stages;
  int64_t boundary_bytes = 0;  // activations sent between stages per micro-batch
  double send_seconds = 0;
};

// A step's time and traffic, what the layout search keeps of each layout.
struct StepTimes {
  double step_seconds = 0;
  double tokens_per_gpu_per_s = 0;
  double mfu = 0;               // model FLOPs (matrix products + attention) / time / bf16 peak
  double compute_seconds = 0;   // busiest stage's compute stream
  double comm_seconds = 0;      // that stage's communication stream (overlapped or not)
  double bubble_seconds = 0;    // that stage's compute stream idle within the step
  int64_t comm_bytes_per_gpu = 0;  // wire bytes the busiest GPU sends in the step (TP, SP, PP, DP)
};

struct StepPrediction : StepTimes {
  int64_t model_flops_per_gpu = 0;
  int64_t comm_bytes_per_step = 0; // wire bytes all GPUs send in the step (the runtime's counters' sum)
  MemoryBreakdown memory;          // the busiest stage's GPU
  bool fits = true;
  std::string memory_message;      // "" when it fits
  Schedule schedule{1};
  // With trace_ops: each stage's first micro-batch, forward and backward, op
  // by op on each SP rank, where the step runs them (op_tracks names the
  // trace processes, one per stage, chunk and SP rank).
  std::vector<TracedTask> op_tasks;
  std::vector<std::string> op_tracks;
  std::string chrome_trace() const { return schedule.chrome_trace(op_tasks, op_tracks); }
};

// UserError for layouts that do not fit the cluster or the model.
void validate_layout(const SimModel& model, const ClusterSpec& cluster, const SimLayout& layout);

// Every SP rank's op plan with each op's cost on the cluster: the part of
// phase 1 that depends on the shard, micro-batch, sequence and recompute only
// (not on pp, dp or the batch), which the layout search computes once per
// shard and reuses. Not copyable: phase 1 keeps pointers into the plans.
struct ShardOps {
  struct Op {
    int64_t layer = 0;   // -1 embedding, -2 head and loss
    OpClass cls = OpClass::Memory;
    bool backward = false;   // run in the backward pass: its own ops and a layer's recomputation
    bool recompute = false;  // of pass Recompute: a forward op run again before a layer's backward
    double compute = 0;     // the op alone
    double tp_seconds = 0;  // its blocking TP collectives
    int64_t tp_bytes = 0, sp_bytes = 0;
    // SP traffic, decided once from the op's collectives and ring edge: a
    // collective over the whole SP group after the op (and its time), a
    // LASP send to the neighbour (and its time), and whether the op is where
    // a LASP rank waits for its neighbour's state (forward) or state
    // gradient (backward).
    bool sp_group = false, sp_send = false, receives_forward = false, receives_backward = false;
    double sp_group_seconds = 0, sp_send_seconds = 0;
  };
  // A run of consecutive ops of one layer in a plan (plan order): a stage
  // takes the runs of its layers without visiting the others' ops.
  struct Run {
    int64_t layer = 0;
    size_t begin = 0, end = 0;
  };
  // One plan per distinct SP rank (SimModel::plan_twin: LASP's first, middle
  // and last ranks; Ulysses' one), its costed ops and runs; rank_plan[r] is
  // SP rank r's index into them.
  std::vector<OpPlan> plans;
  std::vector<std::vector<Op>> ops;   // ops[k][i] describes plans[k].ops()[i]
  std::vector<std::vector<Run>> runs;
  std::vector<int> rank_plan;
  ShardOps() = default;
  ShardOps(ShardOps&&) = default;
  ShardOps& operator=(ShardOps&&) = default;
  ShardOps(const ShardOps&) = delete;
  ShardOps& operator=(const ShardOps&) = delete;
};
ShardOps shard_ops(const SimModel& model, const ClusterSpec& cluster, const SimLayout& layout,
                   const CostModel& cost = {});
// shard_ops in its two halves: the plans of the distinct SP ranks (ops and
// runs empty), and each of their ops costed (the plans as they are: a test
// renames every op in between and gets the same predictions).
ShardOps shard_plans(const SimModel& model, const SimLayout& layout);
void cost_shard_ops(ShardOps& shard, const SimModel& model, const ClusterSpec& cluster,
                    const SimLayout& layout, const CostModel& cost = {});

// Phase 1 (depends on the shard, pp, micro-batch, sequence and recompute, and
// on dp only through where the pipeline's sends go; not on ZeRO, CO2 or the
// global batch). `shard`: shard_ops of the same shard, micro-batch and
// sequence, when the caller has them.
// `trace_ops`: keep every SP rank's op-by-op tasks (StageCost::forward_ops;
// every stage simulated, none copied from a stage of its structure).
MicroBatchCosts micro_batch_costs(const SimModel& model, const ClusterSpec& cluster,
                                  const SimLayout& layout, const CostModel& cost = {},
                                  const ShardOps* shard = nullptr, bool trace_ops = false);
// Phase 2. `trace` keeps the step's schedule for a Chrome trace
// (StepPrediction::schedule); without it the schedule is dropped (the layout
// search's path: the same numbers).
StepPrediction schedule_step(const SimModel& model, const ClusterSpec& cluster, const SimLayout& layout,
                             const MicroBatchCosts& costs, const CostModel& cost = {}, bool trace = true);
// The per-GPU memory of the layout's busiest stage.
MemoryBreakdown layout_memory(const SimModel& model, const SimLayout& layout);

// Both phases and the memory; `trace_ops` adds the SP ranks' op-by-op
// tasks to the trace (StepPrediction::op_tasks; the same numbers).
StepPrediction simulate_step(const SimModel& model, const ClusterSpec& cluster, const SimLayout& layout,
                             const CostModel& cost = {}, bool trace_ops = false);

// Parameters a pipeline stage's rank holds (its TP shard) of a TransNormerLLM.
int64_t stage_parameters(const ModelConfig& model, int stage, int stages, int tp);
// The same in the model's parameter groups, in order (TransNormerLLM::
// parameter_groups: the embedding, each layer, the head), which ZeRO shards
// one by one (parallel/zero.h); they sum to stage_parameters.
std::vector<int64_t> stage_parameter_groups(const ModelConfig& model, int stage, int stages,
                                            int tp);

}  // namespace linpar::sim
